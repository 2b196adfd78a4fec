//! Every error response, in one place: the vendor's body
//! `{"errors": [{"code": "...", "message": "..."}]}` as `application/json`.

use std::error::Error as _;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use idm_otp_domain::{ChallengeError, ErrorCategory, VendorError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;

/// The vendor's error body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"errors": [{"code": "errors.noRecord", "message": "Client doesn't exist with extId 'client-9'"}]}))]
pub struct ErrorBody {
    /// One entry per error (this service always sends one).
    pub errors: Vec<ErrorEntry>,
}

/// One error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEntry {
    /// The vendor's error code, e.g. `errors.noRecord`.
    pub code: String,
    /// A human-readable message.
    pub message: String,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Step 1: no valid bearer token.
    #[error("unauthenticated: {0}")]
    Unauthenticated(#[from] AuthError),
    /// Steps 2 to 10, and infrastructure; with the `Retry-After` seconds for a 503.
    #[error("challenge failed")]
    Challenge(#[source] ChallengeError, RetryAfter),
    /// A path parameter is not a valid ext id.
    #[error("invalid parameter {field}: {reason}")]
    InvalidParameter {
        /// The parameter's wire name.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No route at this path.
    #[error("no route for this path")]
    UnknownRoute,
    /// The route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The declared body is larger than allowed.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: u64,
    },
}

const INVALID_PARAMETER: &str = "errors.invalidParameter";
const INVALID_URI: &str = "errors.invalidUri";
const UNSUPPORTED_OPERATION: &str = "errors.unsupportedOperation";
const INVALID_DATA: &str = "errors.invalidData";

/// Seconds a client is told to wait before retrying after a 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u32);

impl ApiError {
    /// The vendor error code this error answers with, e.g. `errors.invalidJWTToken`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => VendorError::invalid_jwt_token().code,
            Self::Challenge(err, _) => err.vendor_error().code,
            Self::InvalidParameter { .. } => INVALID_PARAMETER,
            Self::UnknownRoute => INVALID_URI,
            Self::MethodNotAllowed => UNSUPPORTED_OPERATION,
            Self::PayloadTooLarge { .. } => INVALID_DATA,
        }
    }

    fn vendor_error(&self) -> VendorError {
        match self {
            Self::Unauthenticated(_) => VendorError::invalid_jwt_token(),
            Self::Challenge(err, _) => err.vendor_error(),
            Self::InvalidParameter { field, reason } => VendorError {
                code: INVALID_PARAMETER,
                message: format!("Invalid path parameter {field}: {reason}"),
            },
            Self::UnknownRoute => VendorError {
                code: INVALID_URI,
                message: "No resource exists at this path".to_owned(),
            },
            Self::MethodNotAllowed => VendorError {
                code: UNSUPPORTED_OPERATION,
                message: "This method is not supported on this resource; use POST".to_owned(),
            },
            Self::PayloadTooLarge { limit } => VendorError {
                code: INVALID_DATA,
                message: format!(
                    "The request body must not exceed {limit} bytes; this endpoint takes no body"
                ),
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Challenge(err, _) => match err.category() {
                ErrorCategory::Unauthenticated => StatusCode::UNAUTHORIZED,
                ErrorCategory::Forbidden => StatusCode::FORBIDDEN,
                ErrorCategory::NotFound => StatusCode::NOT_FOUND,
                ErrorCategory::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                ErrorCategory::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::InvalidParameter { .. } => StatusCode::BAD_REQUEST,
            Self::UnknownRoute => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            // The cause chain goes to the log; the client gets a generic message.
            let mut chain = self.to_string();
            let mut source = self.source();
            while let Some(cause) = source {
                // Some errors repeat their source in their own message; say each part once.
                let text = cause.to_string();
                if !chain.contains(&text) {
                    chain.push_str(": ");
                    chain.push_str(&text);
                }
                source = cause.source();
            }
            tracing::error!(status = status.as_u16(), error = %chain, "request failed");
        }
        let vendor = self.vendor_error();
        let mut response = HttpResponse::build(status);
        match self {
            Self::Unauthenticated(_) | Self::Challenge(ChallengeError::UnknownCaller, _) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"nevisidm\", error=\"invalid_token\""),
                ));
            }
            Self::MethodNotAllowed => {
                response.insert_header((header::ALLOW, HeaderValue::from_static("POST")));
            }
            _ => {}
        }
        if let (Self::Challenge(_, RetryAfter(seconds)), StatusCode::SERVICE_UNAVAILABLE) =
            (self, status)
        {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(ErrorBody {
            errors: vec![ErrorEntry {
                code: vendor.code.to_owned(),
                message: vendor.message,
            }],
        })
    }
}
