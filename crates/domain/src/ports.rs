//! The ports the challenge service needs: storage, permissions, time and randomness.
//!
//! Adapters implement these traits. Their errors are [`PortError`]s: an opaque cause plus
//! whether retrying later may help. Storage-specific error types never cross this boundary.

use std::error::Error as StdError;
use std::fmt;
use std::num::NonZeroU32;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::RngExt;

use crate::access::{Caller, CallerGrants, Right, TargetScope};
use crate::card::OtpCard;
use crate::ids::{ClientExtId, ClientId, CredentialExtId, CredentialId, UserExtId};
use crate::policy::{OtpPolicy, PendingChallenge};
use crate::state::CredentialState;
use crate::validity::ValidityPeriod;

/// An infrastructure failure reported by a port.
#[derive(Debug)]
pub struct PortError {
    kind: PortErrorKind,
    source: Box<dyn StdError + Send + Sync + 'static>,
}

/// Whether a [`PortError`] is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortErrorKind {
    /// The backing service is unreachable, overloaded or timed out; retrying later may work
    /// (HTTP 503).
    Unavailable,
    /// Anything else: a bug, corrupt data, a constraint the caller cannot fix (HTTP 500).
    Failed,
}

impl PortError {
    /// The backing service is unreachable, out of connections or timed out.
    pub fn unavailable(source: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        Self {
            kind: PortErrorKind::Unavailable,
            source: source.into(),
        }
    }

    /// Any other failure.
    pub fn failed(source: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        Self {
            kind: PortErrorKind::Failed,
            source: source.into(),
        }
    }

    /// Whether retrying later may help.
    pub fn kind(&self) -> PortErrorKind {
        self.kind
    }
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PortErrorKind::Unavailable => write!(f, "storage unavailable: {}", self.source),
            PortErrorKind::Failed => write!(f, "storage failed: {}", self.source),
        }
    }
}

impl StdError for PortError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.source.as_ref())
    }
}

/// A client as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    /// Storage identity, for data-room checks.
    pub id: ClientId,
    /// External id.
    pub ext_id: ClientExtId,
    /// Display name, quoted in the "user not found" message.
    pub name: String,
    /// The OTP policy of the client's credentials.
    pub policy: OtpPolicy,
}

/// A target user as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// External id within the client.
    pub ext_id: UserExtId,
    /// Client and unit path, for data-room checks.
    pub scope: TargetScope,
}

/// An opaque version of a stored credential, changed by every write to it. The service hands
/// it back unchanged to [`ChallengeRepository::store_challenge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CardVersion(pub i64);

/// An OTP card credential as loaded for a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpCredential {
    /// Storage identity.
    pub id: CredentialId,
    /// External id, for the audit trail.
    pub ext_id: CredentialExtId,
    /// Current state.
    pub state: CredentialState,
    /// Validity period.
    pub validity: ValidityPeriod,
    /// The card's grid and used cells.
    pub card: OtpCard,
    /// The stored challenge, if any.
    pub pending: Option<PendingChallenge>,
    /// Version as loaded.
    pub version: CardVersion,
}

/// What [`ChallengeRepository::load_target`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetLookup {
    /// No client with that ext id.
    ClientNotFound,
    /// The client exists but has no user with that ext id.
    UserNotFound {
        /// The client found.
        client: ClientRecord,
    },
    /// Client and user exist.
    Found {
        /// The client.
        client: ClientRecord,
        /// The user.
        user: UserRecord,
        /// The user's most recent non-archived OTP card, if any.
        credential: Option<OtpCredential>,
    },
}

/// Result of a conditional challenge write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Written: the credential was still at the expected version.
    Stored,
    /// Not written: the credential changed since it was loaded (another request stored a
    /// challenge, a login used a cell, an administrator changed it, or it is gone).
    Conflict,
}

/// Storage of clients, users and OTP card credentials.
///
/// # Concurrency contract
/// The service uses optimistic concurrency: it loads a credential with its [`CardVersion`],
/// decides, and writes with [`store_challenge`](Self::store_challenge), which must be an
/// atomic compare-and-set on that version. On [`StoreOutcome::Conflict`] the service loads
/// again and, when the fresh credential carries a challenge written since its first load,
/// returns that one, so overlapping calls all answer with the one stored challenge. An
/// implementation therefore must:
/// - return a credential's current version with it from `load_target`, and change the
///   version on every write to that credential (not only challenge writes);
/// - make `store_challenge` write only when the version still matches, and report
///   `Conflict` otherwise, never an error;
/// - hold no lock between calls: each call is complete in itself.
#[async_trait]
pub trait ChallengeRepository: Send + Sync {
    /// Loads the client, the user in it, and the user's most recent OTP card credential that
    /// is not archived: latest creation time, ties broken by later insertion (spec 3.2).
    ///
    /// # Errors
    /// [`PortError`] only for infrastructure failures; absent records are [`TargetLookup`]
    /// variants.
    async fn load_target(
        &self,
        client: &ClientExtId,
        user: &UserExtId,
    ) -> Result<TargetLookup, PortError>;

    /// Stores `challenge` on the credential if it is still at version `expected`, replacing
    /// any earlier challenge and changing the version.
    ///
    /// # Errors
    /// [`PortError`] only for infrastructure failures; a version mismatch is
    /// [`StoreOutcome::Conflict`].
    async fn store_challenge(
        &self,
        credential: CredentialId,
        expected: CardVersion,
        challenge: PendingChallenge,
    ) -> Result<StoreOutcome, PortError>;
}

/// Answers authorization questions about callers (spec 2.3).
///
/// The two questions of spec 3.1 — does the caller hold the right at all (step 2), and does
/// one authorization granting it cover the target's client and unit (step 5) — are both
/// answered from the grants this port returns; the rule itself lives in
/// [`Grants`](crate::access::Grants), so every adapter applies it alike.
#[async_trait]
pub trait PermissionChecker: Send + Sync {
    /// The caller's authorizations whose role includes `right`, each with its client and
    /// unit data rooms; [`CallerGrants::UnknownCaller`] when no such user exists.
    ///
    /// # Errors
    /// [`PortError`] only for infrastructure failures.
    async fn grants(&self, caller: &Caller, right: Right) -> Result<CallerGrants, PortError>;
}

/// The current time, injected so expiry is testable.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A source of uniformly distributed random numbers, injected so tests are deterministic.
///
/// Production sources must be cryptographically secure: the chosen cell must not be
/// predictable by a caller who has seen earlier ones.
pub trait RandomSource: Send + Sync {
    /// A number in `[0, upper)`, every value equally likely (no modulo bias).
    fn uniform_below(&self, upper: NonZeroU32) -> u32;
}

/// The thread-local CSPRNG of `rand` (ChaCha, seeded and periodically reseeded from the
/// operating system).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRandom;

impl RandomSource for SystemRandom {
    fn uniform_below(&self, upper: NonZeroU32) -> u32 {
        rand::rng().random_range(0..upper.get())
    }
}

impl<T: Clock + ?Sized> Clock for std::sync::Arc<T> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

impl<T: RandomSource + ?Sized> RandomSource for std::sync::Arc<T> {
    fn uniform_below(&self, upper: NonZeroU32) -> u32 {
        (**self).uniform_below(upper)
    }
}

#[async_trait]
impl<T: ChallengeRepository + ?Sized> ChallengeRepository for std::sync::Arc<T> {
    async fn load_target(
        &self,
        client: &ClientExtId,
        user: &UserExtId,
    ) -> Result<TargetLookup, PortError> {
        (**self).load_target(client, user).await
    }

    async fn store_challenge(
        &self,
        credential: CredentialId,
        expected: CardVersion,
        challenge: PendingChallenge,
    ) -> Result<StoreOutcome, PortError> {
        (**self)
            .store_challenge(credential, expected, challenge)
            .await
    }
}

#[async_trait]
impl<T: PermissionChecker + ?Sized> PermissionChecker for std::sync::Arc<T> {
    async fn grants(&self, caller: &Caller, right: Right) -> Result<CallerGrants, PortError> {
        (**self).grants(caller, right).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_random_stays_below_the_bound() {
        let upper = NonZeroU32::new(7).unwrap();
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let n = SystemRandom.uniform_below(upper);
            seen[n as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(SystemRandom.uniform_below(NonZeroU32::MIN), 0);
    }

    #[test]
    fn port_errors_keep_kind_and_cause() {
        let err = PortError::unavailable("pool timed out");
        assert_eq!(err.kind(), PortErrorKind::Unavailable);
        assert_eq!(err.to_string(), "storage unavailable: pool timed out");
        assert_eq!(err.source().unwrap().to_string(), "pool timed out");
        assert_eq!(PortError::failed("x").kind(), PortErrorKind::Failed);
    }
}
