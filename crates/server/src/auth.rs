//! Bearer-token authentication (spec 3.8): who is calling, from a signed JWT.

use std::fmt;

use idm_otp_domain::{Caller, ClientExtId, UserExtId};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::config::{AuthSettings, ConfigError, missing};

/// Longest token accepted; anything longer is refused before it is parsed.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Shortest HS256 secret accepted (the hash's output size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// The claims the service reads.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    client: String,
}

/// Why a request is not authenticated. Never shown to the client beyond "invalid token":
/// the variant goes to the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("no Authorization header")]
    Missing,
    /// More than one `Authorization` header.
    #[error("more than one Authorization header")]
    Repeated,
    /// Not `Bearer <token>`, or not visible ASCII.
    #[error("Authorization header is not a bearer token")]
    NotBearer,
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("token longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    /// Signed with an algorithm that is not configured (including `none`).
    #[error("token algorithm not accepted")]
    AlgorithmNotAllowed,
    /// Malformed, wrongly signed, expired, not yet valid, wrong issuer or audience, or a
    /// required claim missing.
    #[error("token rejected: {0}")]
    Invalid(String),
    /// `sub` or `client` is not a valid ext id.
    #[error("token names an invalid caller")]
    BadCaller,
}

/// Verifies tokens against the configured issuer, audience and keys.
pub struct TokenVerifier {
    keys: Vec<(Algorithm, DecodingKey)>,
    issuer: String,
    audience: String,
    leeway: u64,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field(
                "algorithms",
                &self.keys.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            )
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

fn read_pem(key: &str, path: Option<&std::path::Path>) -> Result<Vec<u8>, ConfigError> {
    let path = path.ok_or_else(|| missing(key))?;
    std::fs::read(path).map_err(|e| {
        ConfigError(format!(
            "invalid setting {key}: cannot read {}: {e}",
            path.display()
        ))
    })
}

impl TokenVerifier {
    /// Builds the verifier; every configured algorithm needs its key.
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, ConfigError> {
        if settings.algorithms.is_empty() {
            return Err(ConfigError("invalid setting auth.algorithms: empty".into()));
        }
        let bad_key = |key: &str, e: jsonwebtoken::errors::Error| {
            ConfigError(format!("invalid setting {key}: {e}"))
        };
        let mut keys = Vec::new();
        for name in &settings.algorithms {
            let (algorithm, key) = match name.as_str() {
                "HS256" => {
                    let secret = settings
                        .hs256_secret
                        .as_ref()
                        .map(|s| s.expose_secret().as_bytes())
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| missing("auth.hs256_secret"))?;
                    if secret.len() < MIN_HS256_SECRET_BYTES {
                        return Err(ConfigError(format!(
                            "invalid setting auth.hs256_secret (environment variable IDM_OTP_JWT_HS256_SECRET): at least {MIN_HS256_SECRET_BYTES} bytes required, got {}",
                            secret.len()
                        )));
                    }
                    let key = DecodingKey::from_secret(secret)
                        .map_err(|e| bad_key("auth.hs256_secret", e))?;
                    (Algorithm::HS256, key)
                }
                "RS256" => {
                    let k = "auth.rs256_public_key_file";
                    let pem = read_pem(k, settings.rs256_public_key_file.as_deref())?;
                    (
                        Algorithm::RS256,
                        DecodingKey::from_rsa_pem(&pem).map_err(|e| bad_key(k, e))?,
                    )
                }
                "ES256" => {
                    let k = "auth.es256_public_key_file";
                    let pem = read_pem(k, settings.es256_public_key_file.as_deref())?;
                    (
                        Algorithm::ES256,
                        DecodingKey::from_ec_pem(&pem).map_err(|e| bad_key(k, e))?,
                    )
                }
                "EdDSA" => {
                    let k = "auth.eddsa_public_key_file";
                    let pem = read_pem(k, settings.eddsa_public_key_file.as_deref())?;
                    (
                        Algorithm::EdDSA,
                        DecodingKey::from_ed_pem(&pem).map_err(|e| bad_key(k, e))?,
                    )
                }
                other => {
                    return Err(ConfigError(format!(
                        "invalid setting auth.algorithms: '{other}' is not one of HS256, RS256, ES256, EdDSA"
                    )));
                }
            };
            keys.push((algorithm, key));
        }
        Ok(Self {
            keys,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway: settings.leeway_seconds,
        })
    }

    /// Reads the caller from the raw `Authorization` header values of a request.
    pub fn authenticate<'a>(
        &self,
        mut headers: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Caller, AuthError> {
        let header = headers.next().ok_or(AuthError::Missing)?;
        if headers.next().is_some() {
            return Err(AuthError::Repeated);
        }
        let header = std::str::from_utf8(header).map_err(|_| AuthError::NotBearer)?;
        let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::NotBearer)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(AuthError::NotBearer);
        }
        self.verify(token)
    }

    /// Verifies a token and returns the caller it names.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLong);
        }
        // `alg: none` and unknown algorithms fail to parse here.
        let header = decode_header(token).map_err(|_| AuthError::AlgorithmNotAllowed)?;
        // The key is chosen by the configured algorithm, never by what the token claims to
        // be: an HS256 token cannot be checked against an RSA public key.
        let (algorithm, key) = self
            .keys
            .iter()
            .find(|(alg, _)| *alg == header.alg)
            .ok_or(AuthError::AlgorithmNotAllowed)?;
        let mut validation = Validation::new(*algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway;
        let data = decode::<Claims>(token, key, &validation)
            .map_err(|e| AuthError::Invalid(format!("{:?}", e.kind())))?;
        Ok(Caller {
            client: ClientExtId::parse(data.claims.client).map_err(|_| AuthError::BadCaller)?,
            user: UserExtId::parse(data.claims.sub).map_err(|_| AuthError::BadCaller)?,
        })
    }
}

/// Development helper: signs an HS256 token for a caller (`idm-otp dev-token`).
pub fn sign_hs256(
    settings: &AuthSettings,
    caller_client: &str,
    caller_user: &str,
    valid_for: chrono::Duration,
) -> Result<String, ConfigError> {
    let secret = settings
        .hs256_secret
        .as_ref()
        .ok_or_else(|| missing("auth.hs256_secret"))?;
    let key = jsonwebtoken::EncodingKey::from_secret(secret.expose_secret().as_bytes())
        .map_err(|e| ConfigError(format!("invalid setting auth.hs256_secret: {e}")))?;
    let now = chrono::Utc::now();
    let claims = serde_json::json!({
        "sub": caller_user,
        "client": caller_client,
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": now.timestamp(),
        "exp": (now + valid_for).timestamp(),
    });
    jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::HS256), &claims, &key)
        .map_err(|e| ConfigError(format!("cannot sign token: {e}")))
}
