//! The HTTP surface: the challenge route, the OpenAPI document and the JSON answers for
//! unknown routes and methods.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use idm_otp_adapters::PgStore;
use idm_otp_domain::{
    ChallengeError, ChallengeOutcome, ChallengeRequest, ChallengeService, ClientExtId, SystemClock,
    SystemRandom, UserExtId,
};
use serde::Serialize;
use tracing::Instrument;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::audit;
use crate::auth::TokenVerifier;
use crate::error::{ApiError, ErrorBody, ErrorEntry, RetryAfter};
use crate::metrics::Metrics;

/// The route, as the vendor names it.
pub const CHALLENGE_PATH: &str =
    "/nevisidm/api/auth/v1/{clientExtId}/users/{userExtId}/otp/challenge";

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    /// Token verification.
    pub verifier: TokenVerifier,
    /// `Retry-After` on 503.
    pub retry_after: RetryAfter,
    /// Largest declared body accepted.
    pub max_body_bytes: u64,
    /// The OpenAPI document, rendered once.
    pub openapi_json: String,
    /// The store: each challenge runs in one of its sessions; also readiness and pool metrics.
    pub store: PgStore,
    /// Prometheus metrics.
    pub metrics: Metrics,
}

/// The 200 body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"challenge": "B7", "status": "active"}))]
pub struct ChallengeResponse {
    /// The cell to ask for, e.g. `B7` (coordinate format) or `019` (sequential format);
    /// `null` when no challenge can be generated (locked credential, exhausted card).
    pub challenge: Option<String>,
    /// The credential's state: initial, active, tmp-locked, fail-locked, reset-code,
    /// admin-changed.
    pub status: String,
}

impl From<&ChallengeOutcome> for ChallengeResponse {
    fn from(outcome: &ChallengeOutcome) -> Self {
        Self {
            challenge: outcome.challenge.map(|label| label.to_string()),
            status: outcome.status.as_str().to_owned(),
        }
    }
}

/// The request id of a request (from `X-Request-Id`, or generated).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The header carrying the request id.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn acceptable_request_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Takes the request id from `X-Request-Id` (when short and plain) or makes one, and echoes
/// it on the response.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable_request_id(v))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    // Every line logged while serving the request carries its id (error logs included).
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.call(req).instrument(span).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    Ok(response)
}

/// Refuses a request whose declared body exceeds the limit, without reading it.
pub async fn body_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map_or(0, |state| state.max_body_bytes);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        let response = ApiError::PayloadTooLarge { limit }.error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Generate an OTP challenge.
///
/// Picks a random unused cell of the user's most recent OTP card, stores it on the
/// credential and returns it. A still-pending challenge is returned again instead of a new
/// one. Requires `AccessControl.CredentialView` with a data room covering the user.
#[utoipa::path(
    post,
    path = "/nevisidm/api/auth/v1/{clientExtId}/users/{userExtId}/otp/challenge",
    tag = "OTP",
    params(
        ("clientExtId" = String, Path, example = "client-123", min_length = 1, max_length = 255,
         pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]+$",
         description = "External ID of the client: 1 to 255 bytes of UTF-8, no control characters."),
        ("userExtId" = String, Path, example = "user-123", min_length = 1, max_length = 255,
         pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]+$",
         description = "External ID of the user: 1 to 255 bytes of UTF-8, no control characters."),
    ),
    responses(
        (status = 200, description = "OTP challenge generated. The challenge value may be null if generation was not possible.",
         body = ChallengeResponse,
         examples(
            ("Coordinate format" = (value = json!({"challenge": "B19", "status": "active"}))),
            ("Sequential format" = (value = json!({"challenge": "019", "status": "initial"}))),
            ("Locked or exhausted" = (value = json!({"challenge": null, "status": "tmp-locked"})))
         )),
        (status = 400, description = "A path parameter is not a valid external ID.", body = ErrorBody,
         example = json!({"errors": [{"code": "errors.invalidParameter", "message": "Invalid path parameter clientExtId: clientExtId must be at most 255 bytes, got 300"}]})),
        (status = 401, description = "Missing, malformed, expired or wrongly signed bearer token.", body = ErrorBody,
         example = json!({"errors": [{"code": "errors.invalidJWTToken", "message": "Invalid JWT token"}]})),
        (status = 403, description = "Operation restricted.", body = ErrorBody,
         examples(
            ("Credential not in validity period" = (value = json!({"errors": [{"code": "errors.userLoginFailed", "message": "Wrong state: 103 for Credential expired"}]}))),
            ("Credential disabled" = (value = json!({"errors": [{"code": "errors.userLoginFailed", "message": "Wrong state: 102 for Credential disabled"}]}))),
            ("Permission denied" = (value = json!({"errors": [{"code": "errors.insufficientRightsFunction", "message": "Permission denied: Caller does not have the required right 'AccessControl.CredentialView' to perform this action"}]}))),
            ("Dataroom permission denied" = (value = json!({"errors": [{"code": "errors.combinedDataroomDenied", "message": "Permission denied: AccessControl.CredentialView"}]})))
         )),
        (status = 404, description = "Referenced resource not found.", body = ErrorBody,
         examples(
            ("Client not found" = (value = json!({"errors": [{"code": "errors.noRecord", "message": "Client doesn't exist with extId 'client-9'"}]}))),
            ("User not found" = (value = json!({"errors": [{"code": "errors.noRecord", "message": "A user with extId 'user-9' doesn't exist on client with name Default"}]}))),
            ("OTP credential not found" = (value = json!({"errors": [{"code": "errors.noRecord", "message": "There is no OTP credential defined for user 'user-123'"}]})))
         )),
        (status = 413, description = "A request body was declared larger than allowed; this endpoint takes none.", body = ErrorBody),
        (status = 500, description = "Unexpected failure.", body = ErrorBody,
         example = json!({"errors": [{"code": "errors.fatalError", "message": "An unexpected error occurred"}]})),
        (status = 503, description = "The database is unavailable; retry after the Retry-After header's seconds.", body = ErrorBody,
         example = json!({"errors": [{"code": "errors.fatalError", "message": "The service is temporarily unavailable, please retry later"}]})),
    ),
    security(("bearer" = []))
)]
pub async fn generate_challenge(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let authorization = req
        .headers()
        .get_all(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let caller = state
        .verifier
        .authenticate(authorization)
        .map_err(|reason| {
            tracing::info!(request_id, reason = %reason, "authentication failed");
            let err = ApiError::from(reason);
            state.metrics.observe_challenge(err.code());
            err
        })?;
    let (client, user) = parse_target(&req).await.inspect_err(|err| {
        audit::record_rejected(&request_id, &caller, err.code());
        state.metrics.observe_challenge(err.code());
    })?;
    let request = ChallengeRequest {
        caller,
        client,
        user,
    };
    let outcome = run_use_case(&state.store, request.clone()).await;
    audit::record(&request_id, &request, &outcome);
    state
        .metrics
        .observe_challenge(audit::outcome_label(&outcome));
    match outcome {
        Ok(outcome) => Ok(HttpResponse::Ok().json(ChallengeResponse::from(&outcome))),
        Err(err) => Err(ApiError::Challenge(err, state.retry_after)),
    }
}

/// The use case on one pooled connection: one checkout and one thread hand-off for all its
/// statements.
async fn run_use_case(
    store: &PgStore,
    request: ChallengeRequest,
) -> Result<ChallengeOutcome, ChallengeError> {
    store
        .in_session(move |session| async move {
            ChallengeService::new(session.clone(), session, SystemClock, SystemRandom)
                .generate_challenge(&request)
                .await
        })
        .await?
}

/// The positions of `{clientExtId}` and `{userExtId}` among the route's `/`-separated segments.
const CLIENT_SEGMENT: usize = 5;
const USER_SEGMENT: usize = 7;

async fn parse_target(req: &HttpRequest) -> Result<(ClientExtId, UserExtId), ApiError> {
    // actix decodes path parameters lossily (invalid UTF-8 becomes U+FFFD, so different
    // inputs would name the same ext id): refuse them from the raw path instead.
    let raw: Vec<&str> = req.uri().path().split('/').collect();
    for (index, field) in [(CLIENT_SEGMENT, "clientExtId"), (USER_SEGMENT, "userExtId")] {
        let segment = raw.get(index).copied().unwrap_or("");
        if percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .is_err()
        {
            return Err(ApiError::InvalidParameter {
                field,
                reason: "not valid UTF-8".to_owned(),
            });
        }
    }
    let path = web::Path::<(String, String)>::extract(req)
        .await
        .map_err(|_| ApiError::InvalidParameter {
            field: "path",
            reason: "not valid UTF-8".to_owned(),
        })?;
    let (client, user) = path.into_inner();
    let client = ClientExtId::parse(client).map_err(|e| ApiError::InvalidParameter {
        field: "clientExtId",
        reason: e.to_string(),
    })?;
    let user = UserExtId::parse(user).map_err(|e| ApiError::InvalidParameter {
        field: "userExtId",
        reason: e.to_string(),
    })?;
    Ok((client, user))
}

/// Counts and logs every request: one line with method, route template, status, latency and
/// request id (target `idm_otp::http`).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.metrics.clone());
    let method = req.method().to_string();
    let response = next.call(req).await?;
    let seconds = started.elapsed().as_secs_f64();
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16();
    let request_id = response
        .request()
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    if let Some(metrics) = metrics {
        metrics.observe_request(&method, &route, status, seconds);
    }
    tracing::info!(
        target: "idm_otp::http",
        request_id,
        method,
        route,
        status,
        latency_ms = seconds * 1000.0,
        "request"
    );
    Ok(response)
}

/// `GET /health/live`: the process is up.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "up"}))
}

/// `GET /health/ready`: a pooled database connection answers; 503 otherwise.
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state
        .store
        .ping()
        .await
        .map_err(|e| ApiError::Challenge(e.into(), state.retry_after))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"})))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match state.metrics.render(state.store.pool_status()) {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(err) => {
            tracing::error!(error = %err, "metrics rendering failed");
            ApiError::Challenge(
                idm_otp_domain::PortError::failed(err).into(),
                state.retry_after,
            )
            .error_response()
        }
    }
}

/// `GET /openapi.json`.
pub async fn openapi_document(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi_json.clone())
}

/// Any other path.
pub async fn unknown_route() -> ApiError {
    ApiError::UnknownRoute
}

/// Any method but POST on the challenge route.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;
    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        self.error_response()
    }
}

/// The OpenAPI 3 document of the service.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "idm-otp",
        description = "Nevis IDM compatible endpoint: Generate an OTP challenge for a user's most recent OTP card."
    ),
    paths(generate_challenge),
    components(schemas(ChallengeResponse, ErrorBody, ErrorEntry)),
    modifiers(&BearerAuth)
)]
#[derive(Debug)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT naming the caller: `sub` = user extId, `client` = client extId; `exp`, `iss` and `aud` required.",
                    ))
                    .build(),
            ),
        );
    }
}
