//! The use case's errors and the vendor's code and message for each, in one place.

use crate::access::Right;
use crate::ids::{ClientExtId, UserExtId};
use crate::ports::{PortError, PortErrorKind};

/// Why no challenge answer could be given: one variant per failing row of spec 3.1, plus the
/// unknown caller and infrastructure failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeError {
    /// The token is valid but names no existing user (treated like a bad token).
    #[error("the caller named by the token does not exist")]
    UnknownCaller,
    /// Step 2: the caller holds the right in no authorization.
    #[error("caller lacks the right {right}")]
    InsufficientRights {
        /// The right required.
        right: Right,
    },
    /// Step 3: no client with that ext id.
    #[error("client '{client}' not found")]
    ClientNotFound {
        /// The ext id asked for.
        client: ClientExtId,
    },
    /// Step 4: no user with that ext id in the client.
    #[error("user '{user}' not found in client '{client_name}'")]
    UserNotFound {
        /// The ext id asked for.
        user: UserExtId,
        /// The client's display name.
        client_name: String,
    },
    /// Step 5: no single authorization covers both the user's client and unit.
    #[error("data room denies {right}")]
    DataroomDenied {
        /// The right required.
        right: Right,
    },
    /// Step 6: the user has no OTP card that is not archived.
    #[error("user '{user}' has no OTP credential")]
    NoOtpCredential {
        /// The user asked about.
        user: UserExtId,
    },
    /// Step 7: the most recent card is disabled.
    #[error("the OTP credential is disabled")]
    CredentialDisabled,
    /// Step 8: at or after the end of the validity period.
    #[error("the OTP credential has expired")]
    CredentialExpired,
    /// Step 8: before the start of the validity period.
    #[error("the OTP credential is not yet valid")]
    CredentialNotYetValid,
    /// A port failed; see [`PortErrorKind`] for whether retrying may help.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// How a [`ChallengeError`] is answered, independent of the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCategory {
    /// The caller is not authenticated (HTTP 401).
    Unauthenticated,
    /// The caller may not do this, or the credential refuses it (HTTP 403).
    Forbidden,
    /// A referenced record does not exist (HTTP 404).
    NotFound,
    /// Infrastructure is temporarily unavailable; retry later (HTTP 503).
    Unavailable,
    /// An unexpected failure (HTTP 500).
    Internal,
}

/// One entry of the vendor's error body: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorError {
    /// The vendor's error code, e.g. `errors.noRecord`.
    pub code: &'static str,
    /// The vendor's message text.
    pub message: String,
}

impl VendorError {
    /// The answer to a missing, malformed, expired or wrongly signed token.
    pub fn invalid_jwt_token() -> Self {
        Self {
            code: "errors.invalidJWTToken",
            message: "Invalid JWT token".to_owned(),
        }
    }

    /// The answer to an unexpected failure; says nothing about its cause.
    pub fn fatal_internal() -> Self {
        Self {
            code: "errors.fatalError",
            message: "An unexpected error occurred".to_owned(),
        }
    }

    /// The answer when infrastructure is temporarily unavailable.
    pub fn fatal_unavailable() -> Self {
        Self {
            code: "errors.fatalError",
            message: "The service is temporarily unavailable, please retry later".to_owned(),
        }
    }
}

impl ChallengeError {
    /// How this error is answered.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Self::UnknownCaller => ErrorCategory::Unauthenticated,
            Self::InsufficientRights { .. }
            | Self::DataroomDenied { .. }
            | Self::CredentialDisabled
            | Self::CredentialExpired
            | Self::CredentialNotYetValid => ErrorCategory::Forbidden,
            Self::ClientNotFound { .. }
            | Self::UserNotFound { .. }
            | Self::NoOtpCredential { .. } => ErrorCategory::NotFound,
            Self::Port(err) => match err.kind() {
                PortErrorKind::Unavailable => ErrorCategory::Unavailable,
                PortErrorKind::Failed => ErrorCategory::Internal,
            },
        }
    }

    /// The vendor's code and exact message text for this error. Infrastructure failures get
    /// a generic message: their cause belongs in the log, not in a response.
    pub fn vendor_error(&self) -> VendorError {
        let (code, message) = match self {
            Self::UnknownCaller => return VendorError::invalid_jwt_token(),
            Self::InsufficientRights { right } => (
                "errors.insufficientRightsFunction",
                format!(
                    "Permission denied: Caller does not have the required right '{right}' to perform this action"
                ),
            ),
            Self::ClientNotFound { client } => (
                "errors.noRecord",
                format!("Client doesn't exist with extId '{client}'"),
            ),
            Self::UserNotFound { user, client_name } => (
                "errors.noRecord",
                format!(
                    "A user with extId '{user}' doesn't exist on client with name {client_name}"
                ),
            ),
            Self::DataroomDenied { right } => (
                "errors.combinedDataroomDenied",
                format!("Permission denied: {right}"),
            ),
            Self::NoOtpCredential { user } => (
                "errors.noRecord",
                format!("There is no OTP credential defined for user '{user}'"),
            ),
            Self::CredentialDisabled => (
                "errors.userLoginFailed",
                "Wrong state: 102 for Credential disabled".to_owned(),
            ),
            Self::CredentialExpired => (
                "errors.userLoginFailed",
                "Wrong state: 103 for Credential expired".to_owned(),
            ),
            Self::CredentialNotYetValid => (
                "errors.userLoginFailed",
                "Wrong state: 103 for Credential not yet valid".to_owned(),
            ),
            Self::Port(err) => {
                return match err.kind() {
                    PortErrorKind::Unavailable => VendorError::fatal_unavailable(),
                    PortErrorKind::Failed => VendorError::fatal_internal(),
                };
            }
        };
        VendorError { code, message }
    }
}
