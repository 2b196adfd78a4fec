//! Layered configuration: `config/default.toml`, then an optional file named by `--config`,
//! then environment variables. Secrets are wrapped so they cannot be printed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use idm_otp_adapters::PoolOptions;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The defaults, compiled in so the binary runs from any directory.
const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// Environment variables with fixed names (a contract with deployments and the test
/// harness) and the setting each one sets.
pub const ENV_NAMES: [(&str, &str); 5] = [
    ("DATABASE_URL", "database.url"),
    ("IDM_OTP_JWT_HS256_SECRET", "auth.hs256_secret"),
    ("IDM_OTP_JWT_ISSUER", "auth.issuer"),
    ("IDM_OTP_JWT_AUDIENCE", "auth.audience"),
    ("IDM_OTP_CARD_HMAC_KEY", "cards.hmac_key"),
];

/// Every setting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// HTTP server.
    pub server: ServerSettings,
    /// PostgreSQL.
    pub database: DatabaseSettings,
    /// Bearer-token authentication.
    pub auth: AuthSettings,
    /// Card-code hashing.
    pub cards: CardSettings,
    /// Logging.
    pub log: LogSettings,
}

/// HTTP server settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen address.
    pub bind: String,
    /// Worker threads; 0 = one per core.
    pub workers: usize,
    /// Seconds in-flight requests get to finish after SIGTERM/Ctrl-C.
    pub shutdown_timeout_seconds: u64,
    /// Requests declaring a larger body are refused with 413 (bodies are never read).
    pub max_body_bytes: u64,
    /// Idle keep-alive connections are closed after this many seconds.
    pub keep_alive_seconds: u64,
    /// A client must send its request head within this many milliseconds.
    pub client_request_timeout_ms: u64,
    /// Seconds a client is told to wait (`Retry-After`) when the database is unavailable.
    pub retry_after_seconds: u32,
}

/// PostgreSQL settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Connection URL (may hold a password).
    pub url: Option<SecretString>,
    /// Most pooled connections.
    pub pool_size: u32,
    /// Idle connections kept open.
    pub min_idle: u32,
    /// How long a request waits for a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// PostgreSQL statement timeout, in milliseconds.
    pub statement_timeout_ms: u64,
}

/// Token verification settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Required `iss` claim.
    pub issuer: String,
    /// Required `aud` claim.
    pub audience: String,
    /// Accepted algorithms: any of HS256, RS256, ES256, EdDSA.
    pub algorithms: Vec<String>,
    /// Shared secret for HS256 (development and tests), at least 32 bytes.
    pub hs256_secret: Option<SecretString>,
    /// PEM file with the RS256 public key.
    pub rs256_public_key_file: Option<PathBuf>,
    /// PEM file with the ES256 (P-256) public key.
    pub es256_public_key_file: Option<PathBuf>,
    /// PEM file with the EdDSA (Ed25519) public key.
    pub eddsa_public_key_file: Option<PathBuf>,
    /// JSON Web Key Set file of public keys, each with `kid` and `alg`: tokens naming a `kid`
    /// are checked against that key only (several keys per algorithm, for rotation).
    pub jwks_file: Option<PathBuf>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
}

/// Card-code settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardSettings {
    /// HMAC-SHA256 key for card codes, at least 16 bytes.
    pub hmac_key: Option<SecretString>,
}

/// Log settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` (for people) or `json` (for log shippers).
    pub format: LogFormat,
    /// `tracing` filter, e.g. `info` or `idm_otp=debug,info`; `RUST_LOG` overrides it.
    pub filter: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A setting is missing or invalid. `Display` is one line naming it.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

fn env_hint(key: &str) -> String {
    ENV_NAMES
        .iter()
        .find(|(_, setting)| *setting == key)
        .map(|(env, _)| format!(" (environment variable {env})"))
        .unwrap_or_default()
}

/// A required setting that is absent.
pub fn missing(key: &str) -> ConfigError {
    ConfigError(format!("missing setting {key}{}", env_hint(key)))
}

impl Settings {
    /// Loads the layers. `extra` is the file named by `--config`.
    pub fn load(extra: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(extra, Env::raw())
    }

    fn load_from(extra: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = extra {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        let named = env
            .clone()
            .only(&ENV_NAMES.map(|(name, _)| name))
            .map(|key| {
                let key = key.as_str().to_ascii_uppercase();
                ENV_NAMES
                    .iter()
                    .find(|(name, _)| *name == key)
                    .map_or(key.clone(), |(_, setting)| (*setting).to_owned())
                    .into()
            });
        // Any other setting: IDM_OTP_<SECTION>__<KEY>, e.g. IDM_OTP_DATABASE__POOL_SIZE.
        let generic = env.filter_map(|key| {
            let key = key.as_str().to_ascii_lowercase();
            key.strip_prefix("idm_otp_")
                .filter(|rest| rest.contains("__"))
                .map(|rest| rest.replace("__", ".").into())
        });
        figment
            .merge(named)
            .merge(generic)
            .extract()
            .map_err(|err| {
                let key = if err.path.is_empty() {
                    String::new()
                } else {
                    err.path.join(".")
                };
                match &err.kind {
                    figment::error::Kind::MissingField(field) => {
                        let full = if key.is_empty() {
                            field.to_string()
                        } else {
                            format!("{key}.{field}")
                        };
                        missing(&full)
                    }
                    kind => ConfigError(format!("invalid setting {key}{}: {kind}", env_hint(&key))),
                }
            })
    }

    /// The listen address.
    pub fn bind_address(&self) -> Result<SocketAddr, ConfigError> {
        self.server.bind.parse().map_err(|_| {
            ConfigError(format!(
                "invalid setting server.bind: '{}' is not HOST:PORT with a numeric host",
                self.server.bind
            ))
        })
    }

    /// The database URL; required by every command.
    pub fn database_url(&self) -> Result<&str, ConfigError> {
        match &self.database.url {
            Some(url) if !url.expose_secret().is_empty() => Ok(url.expose_secret()),
            _ => Err(missing("database.url")),
        }
    }

    /// Pool settings.
    pub fn pool_options(&self) -> PoolOptions {
        PoolOptions {
            max_size: self.database.pool_size,
            min_idle: self.database.min_idle,
            connection_timeout: Duration::from_millis(self.database.connect_timeout_ms),
            statement_timeout: Duration::from_millis(self.database.statement_timeout_ms),
        }
    }

    /// The card HMAC key; required to load fixtures.
    pub fn card_hasher(&self) -> Result<idm_otp_adapters::CardCodeHasher, ConfigError> {
        let key = match &self.cards.hmac_key {
            Some(key) if !key.expose_secret().is_empty() => key,
            _ => return Err(missing("cards.hmac_key")),
        };
        idm_otp_adapters::CardCodeHasher::new(key.expose_secret().as_bytes()).map_err(|e| {
            ConfigError(format!(
                "invalid setting cards.hmac_key{}: {e}",
                env_hint("cards.hmac_key")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Jail;

    #[allow(clippy::result_large_err)]
    fn load_in(jail_env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut result = None;
        Jail::expect_with(|jail| {
            jail.clear_env();
            for (k, v) in jail_env {
                jail.set_env(k, v);
            }
            result = Some(Settings::load(None));
            Ok(())
        });
        result.unwrap()
    }

    #[test]
    fn defaults_load_and_named_variables_override_them() {
        let s = load_in(&[
            ("DATABASE_URL", "postgres://u:pw@h/db"),
            ("IDM_OTP_JWT_ISSUER", "https://issuer"),
            ("IDM_OTP_CARD_HMAC_KEY", "0123456789abcdef"),
            ("IDM_OTP_DATABASE__POOL_SIZE", "3"),
        ])
        .unwrap();
        assert_eq!(s.database_url().unwrap(), "postgres://u:pw@h/db");
        assert_eq!(s.auth.issuer, "https://issuer");
        assert_eq!(s.database.pool_size, 3);
        assert_eq!(s.bind_address().unwrap().port(), 8080);
        assert!(s.card_hasher().is_ok());
        // Secrets never show in Debug output.
        let debug = format!("{s:?}");
        assert!(!debug.contains("pw@"), "{debug}");
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
    }

    #[test]
    fn missing_and_invalid_settings_name_themselves_in_one_line() {
        let s = load_in(&[]).unwrap();
        let err = s.database_url().unwrap_err().to_string();
        assert_eq!(
            err,
            "configuration error: missing setting database.url (environment variable DATABASE_URL)"
        );
        let err = s.card_hasher().unwrap_err().to_string();
        assert!(err.contains("IDM_OTP_CARD_HMAC_KEY"), "{err}");
        let err = load_in(&[("IDM_OTP_DATABASE__POOL_SIZE", "many")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("configuration error: invalid setting database.pool_size"),
            "{err}"
        );
        assert!(!err.contains('\n'));
        let short = load_in(&[("IDM_OTP_CARD_HMAC_KEY", "short")]).unwrap();
        assert!(
            short
                .card_hasher()
                .unwrap_err()
                .to_string()
                .contains("at least 16 bytes")
        );
    }
}
