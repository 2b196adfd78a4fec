//! The running HTTP server: built from settings, bound (port 0 in tests), stopped
//! gracefully on SIGTERM or Ctrl-C.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use idm_otp_adapters::{PgStore, build_pool};
use utoipa::OpenApi;

use crate::auth::TokenVerifier;
use crate::config::{ConfigError, Settings};
use crate::error::RetryAfter;
use crate::metrics::Metrics;
use crate::routes::{self, ApiDoc, AppState, CHALLENGE_PATH};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A setting is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// Anything else at start-up.
    #[error("start-up failed: {0}")]
    Other(String),
}

/// A bound, not yet running server.
pub struct Application {
    server: Server,
    port: u16,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Wires ports to the route and binds `settings.server.bind`. Does not connect to the
    /// database yet: the pool connects in the background, so the server starts (and
    /// answers 503) while PostgreSQL is down.
    pub fn build(settings: &Settings) -> Result<Self, StartupError> {
        let address = settings.bind_address()?;
        let verifier = TokenVerifier::from_settings(&settings.auth)?;
        let pool = build_pool(settings.database_url()?, &settings.pool_options())
            .map_err(|e| StartupError::Other(format!("database pool: {e}")))?;
        let store = PgStore::new(pool);
        let openapi_json = ApiDoc::openapi()
            .to_json()
            .map_err(|e| StartupError::Other(format!("OpenAPI document: {e}")))?;
        let metrics =
            Metrics::new().map_err(|e| StartupError::Other(format!("metrics registry: {e}")))?;
        let state = web::Data::new(AppState {
            store,
            metrics,
            verifier,
            retry_after: RetryAfter(settings.server.retry_after_seconds),
            max_body_bytes: settings.server.max_body_bytes,
            openapi_json,
        });
        let listener = TcpListener::bind(address).map_err(|source| StartupError::Bind {
            address: address.to_string(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| StartupError::Other(e.to_string()))?
            .port();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(from_fn(routes::body_limit))
                .wrap(from_fn(routes::observe))
                .wrap(from_fn(routes::request_id))
                .service(
                    web::resource(CHALLENGE_PATH)
                        .route(web::post().to(routes::generate_challenge))
                        .default_service(web::to(routes::method_not_allowed)),
                )
                .route("/openapi.json", web::get().to(routes::openapi_document))
                .route("/health/live", web::get().to(routes::live))
                .route("/health/ready", web::get().to(routes::ready))
                .route("/metrics", web::get().to(routes::metrics))
                .default_service(web::to(routes::unknown_route))
        })
        .shutdown_timeout(settings.server.shutdown_timeout_seconds)
        .keep_alive(Duration::from_secs(settings.server.keep_alive_seconds))
        .client_request_timeout(Duration::from_millis(
            settings.server.client_request_timeout_ms,
        ));
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Bind {
                address: address.to_string(),
                source,
            })?
            .run();
        Ok(Self { server, port })
    }

    /// The bound port (useful when binding port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped by a signal or the handle; in-flight requests finish first.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
