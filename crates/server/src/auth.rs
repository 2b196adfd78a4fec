//! Bearer-token authentication (spec 3.8): who is calling, from a signed JWT.

use std::fmt;

use idm_otp_domain::{Caller, ClientExtId, UserExtId};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
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
    /// Names a `kid` that no configured key has (for its algorithm).
    #[error("token names an unknown key id")]
    UnknownKey,
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
    keys: Vec<VerificationKey>,
    issuer: String,
    audience: String,
    leeway: u64,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field(
                "algorithms",
                &self
                    .keys
                    .iter()
                    .map(|k| (k.algorithm, k.kid.as_deref()))
                    .collect::<Vec<_>>(),
            )
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// One key a token may be verified with: its algorithm, and its `kid` when it came from the
/// key set (a token naming a `kid` is checked against that key only).
struct VerificationKey {
    algorithm: Algorithm,
    kid: Option<String>,
    key: DecodingKey,
}

fn read_file(key: &str, path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| {
        ConfigError(format!(
            "invalid setting {key}: cannot read {}: {e}",
            path.display()
        ))
    })
}

/// The public keys of a JSON Web Key Set file: each needs a `kid` and an `alg` that is in the
/// allow-list; symmetric keys are refused (a shared secret is never published in a key set).
fn key_set(
    path: &std::path::Path,
    allowed: &[Algorithm],
) -> Result<Vec<VerificationKey>, ConfigError> {
    const SETTING: &str = "auth.jwks_file";
    let invalid = |why: String| ConfigError(format!("invalid setting {SETTING}: {why}"));
    let bytes = read_file(SETTING, path)?;
    let set: JwkSet = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(format!("{} is not a JSON Web Key Set: {e}", path.display())))?;
    let mut keys = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        let kid = jwk
            .common
            .key_id
            .clone()
            .filter(|kid| !kid.is_empty())
            .ok_or_else(|| invalid(format!("keys[{i}] has no kid")))?;
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            return Err(invalid(format!(
                "key '{kid}' is symmetric; only public keys belong in a key set"
            )));
        }
        let algorithm = jwk
            .common
            .key_algorithm
            .and_then(|alg| Algorithm::try_from(alg).ok())
            .ok_or_else(|| invalid(format!("key '{kid}' has no supported alg")))?;
        if !allowed.contains(&algorithm) {
            return Err(invalid(format!(
                "key '{kid}' is for {algorithm:?}, which auth.algorithms does not allow"
            )));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| invalid(format!("key '{kid}': {e}")))?;
        keys.push(VerificationKey {
            algorithm,
            kid: Some(kid),
            key,
        });
    }
    Ok(keys)
}

impl TokenVerifier {
    /// Builds the verifier; every configured algorithm needs a key: the HS256 secret, a PEM
    /// file, or a key of that algorithm in the key set.
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, ConfigError> {
        if settings.algorithms.is_empty() {
            return Err(ConfigError("invalid setting auth.algorithms: empty".into()));
        }
        let mut allowed = Vec::new();
        for name in &settings.algorithms {
            allowed.push(match name.as_str() {
                "HS256" => Algorithm::HS256,
                "RS256" => Algorithm::RS256,
                "ES256" => Algorithm::ES256,
                "EdDSA" => Algorithm::EdDSA,
                other => {
                    return Err(ConfigError(format!(
                        "invalid setting auth.algorithms: '{other}' is not one of HS256, RS256, ES256, EdDSA"
                    )));
                }
            });
        }
        let mut keys = match &settings.jwks_file {
            Some(path) => key_set(path, &allowed)?,
            None => Vec::new(),
        };
        let bad_key = |key: &str, e: jsonwebtoken::errors::Error| {
            ConfigError(format!("invalid setting {key}: {e}"))
        };
        for &algorithm in &allowed {
            let in_key_set = keys.iter().any(|k| k.algorithm == algorithm);
            let key = match algorithm {
                Algorithm::HS256 => {
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
                    Some(
                        DecodingKey::from_secret(secret)
                            .map_err(|e| bad_key("auth.hs256_secret", e))?,
                    )
                }
                _ => {
                    let (setting, path) = match algorithm {
                        Algorithm::RS256 => (
                            "auth.rs256_public_key_file",
                            &settings.rs256_public_key_file,
                        ),
                        Algorithm::ES256 => (
                            "auth.es256_public_key_file",
                            &settings.es256_public_key_file,
                        ),
                        _ => (
                            "auth.eddsa_public_key_file",
                            &settings.eddsa_public_key_file,
                        ),
                    };
                    match path {
                        Some(path) => {
                            let pem = read_file(setting, path)?;
                            let key = match algorithm {
                                Algorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
                                Algorithm::ES256 => DecodingKey::from_ec_pem(&pem),
                                _ => DecodingKey::from_ed_pem(&pem),
                            };
                            Some(key.map_err(|e| bad_key(setting, e))?)
                        }
                        None if in_key_set => None,
                        None => return Err(missing(setting)),
                    }
                }
            };
            if let Some(key) = key {
                keys.push(VerificationKey {
                    algorithm,
                    kid: None,
                    key,
                });
            }
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
        if !self.keys.iter().any(|k| k.algorithm == header.alg) {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        // The key is chosen by the configured algorithm (and kid), never by what the token
        // claims to be: an HS256 token cannot be checked against an RSA public key. A token
        // without a kid is checked against the key configured outside the key set.
        let key = self
            .keys
            .iter()
            .find(|k| k.algorithm == header.alg && k.kid == header.kid)
            .ok_or(AuthError::UnknownKey)?;
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway;
        let data = decode::<Claims>(token, &key.key, &validation)
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
