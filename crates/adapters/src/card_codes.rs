//! Card codes are secret: they are stored only as keyed hashes.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// Hashes cell codes with HMAC-SHA256 under a key from configuration. The message binds the
/// code to its card and cell, so equal codes on different cells hash differently.
#[derive(Clone)]
pub struct CardCodeHasher {
    /// HMAC state already keyed; cloned for each digest.
    keyed: HmacSha256,
}

impl std::fmt::Debug for CardCodeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardCodeHasher(<redacted>)")
    }
}

/// The key is too short to be a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the card HMAC key must be at least {MIN_KEY_BYTES} bytes, got {0}")]
pub struct WeakKey(pub usize);

/// Shortest key accepted.
pub const MIN_KEY_BYTES: usize = 16;

impl CardCodeHasher {
    /// A hasher with this key (at least [`MIN_KEY_BYTES`] bytes).
    pub fn new(key: &[u8]) -> Result<Self, WeakKey> {
        if key.len() < MIN_KEY_BYTES {
            return Err(WeakKey(key.len()));
        }
        let keyed = HmacSha256::new_from_slice(key).map_err(|_| WeakKey(key.len()))?;
        Ok(Self { keyed })
    }

    fn mac(&self, card: Uuid, cell: u16, code: &str) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(card.as_bytes());
        mac.update(&cell.to_be_bytes());
        mac.update(code.as_bytes());
        mac
    }

    /// The digest stored for `code` in `cell` of `card`.
    pub fn hash(&self, card: Uuid, cell: u16, code: &str) -> Vec<u8> {
        self.mac(card, cell, code).finalize().into_bytes().to_vec()
    }

    /// Whether `code` is the one stored as `digest` (constant-time comparison), for the login
    /// service that checks a user's answer.
    pub fn matches(&self, card: Uuid, cell: u16, code: &str, digest: &[u8]) -> bool {
        self.mac(card, cell, code).verify_slice(digest).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_bind_code_to_card_and_cell_and_verify() {
        let hasher = CardCodeHasher::new(b"0123456789abcdef").unwrap();
        let card = Uuid::from_u128(7);
        let digest = hasher.hash(card, 3, "0421");
        assert_eq!(digest.len(), 32);
        assert!(hasher.matches(card, 3, "0421", &digest));
        assert!(!hasher.matches(card, 3, "0422", &digest));
        assert!(!hasher.matches(card, 4, "0421", &digest));
        assert!(!hasher.matches(Uuid::from_u128(8), 3, "0421", &digest));
        let other_key = CardCodeHasher::new(b"fedcba9876543210").unwrap();
        assert!(!other_key.matches(card, 3, "0421", &digest));
        assert_eq!(CardCodeHasher::new(b"short").unwrap_err(), WeakKey(5));
        assert_eq!(format!("{hasher:?}"), "CardCodeHasher(<redacted>)");
    }
}
