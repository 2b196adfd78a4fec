//! The use case: generate a challenge for a user's most recent OTP card (spec 3.1 steps 2-10).

use chrono::{DateTime, Utc};

use crate::access::{Caller, CallerGrants, DataroomAccess, Grants, Right};
use crate::card::CellIndex;
use crate::error::ChallengeError;
use crate::ids::{ClientExtId, CredentialExtId, UserExtId};
use crate::label::ChallengeLabel;
use crate::policy::{OtpPolicy, PendingChallenge};
use crate::ports::{
    ChallengeRepository, Clock, OtpCredential, PermissionChecker, PortError, RandomSource,
    StoreOutcome, TargetLookup,
};
use crate::state::CredentialState;
use crate::validity::Validity;

/// How often the service loads and tries to store before giving up under contention. A
/// conflict is normally resolved on the second attempt by re-serving the winner's challenge.
pub const MAX_STORE_ATTEMPTS: usize = 4;

/// One request: who asks, for which user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRequest {
    /// The authenticated caller.
    pub caller: Caller,
    /// The target user's client.
    pub client: ClientExtId,
    /// The target user.
    pub user: UserExtId,
}

/// Why a call answered with a null challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullReason {
    /// The credential's state does not allow a login (`tmp-locked`, `fail-locked`).
    StateForbidsLogin,
    /// Every cell of the card is used.
    CardExhausted,
}

/// What a successful call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// A new cell was drawn and stored.
    Issued,
    /// The still-pending stored challenge was returned again (spec 3.6).
    ReServed,
    /// No challenge could be generated; nothing was stored.
    Null(NullReason),
}

impl OutcomeKind {
    /// A short name for logs and metrics: `issued`, `re-served` or `null`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::ReServed => "re-served",
            Self::Null(_) => "null",
        }
    }
}

/// The answer to a successful call: the `200` body plus what the audit trail needs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChallengeOutcome {
    /// The challenge, or `None` when none could be generated.
    pub challenge: Option<ChallengeLabel>,
    /// The credential's state.
    pub status: CredentialState,
    /// Which credential was used.
    pub credential: CredentialExtId,
    /// What happened.
    pub kind: OutcomeKind,
    /// Unused cells left on the card.
    pub unused_cells: u16,
    /// Fewer unused cells than the policy's `lowOnChallengesThreshold`.
    pub low_on_challenges: bool,
}

/// The challenge use case, generic over its ports.
#[derive(Debug, Clone)]
pub struct ChallengeService<R, P, C, G> {
    repository: R,
    permissions: P,
    clock: C,
    random: G,
}

enum Decision {
    Null(NullReason),
    ReServe(CellIndex),
    Issue(CellIndex),
}

impl<R, P, C, G> ChallengeService<R, P, C, G>
where
    R: ChallengeRepository,
    P: PermissionChecker,
    C: Clock,
    G: RandomSource,
{
    /// Wires the service to its ports.
    pub fn new(repository: R, permissions: P, clock: C, random: G) -> Self {
        Self {
            repository,
            permissions,
            clock,
            random,
        }
    }

    /// Runs spec 3.1 steps 2 to 10 for an authenticated caller (step 1 is the transport's).
    ///
    /// # Errors
    /// One [`ChallengeError`] variant per failing step, in the spec's order; port failures
    /// as [`ChallengeError::Port`], including contention that outlasted
    /// [`MAX_STORE_ATTEMPTS`].
    pub async fn generate_challenge(
        &self,
        request: &ChallengeRequest,
    ) -> Result<ChallengeOutcome, ChallengeError> {
        let now = self.clock.now();
        let right = Right::CREDENTIAL_VIEW;
        let grants = match self.permissions.grants(&request.caller, right).await? {
            CallerGrants::UnknownCaller => return Err(ChallengeError::UnknownCaller),
            CallerGrants::Known(grants) => {
                Grants::holding(grants).ok_or(ChallengeError::InsufficientRights { right })?
            }
        };

        // After a lost race: the pending challenge as it was before the race.
        let mut lost_race_over: Option<Option<PendingChallenge>> = None;
        for _ in 0..MAX_STORE_ATTEMPTS {
            let (policy, credential, access) = self.load(request, &grants).await?;
            let decision = self.decide(&access, &credential, &policy, now, lost_race_over)?;
            let cell = match decision {
                Decision::Null(reason) => {
                    return Ok(outcome(
                        &credential,
                        &policy,
                        None,
                        OutcomeKind::Null(reason),
                    ));
                }
                Decision::ReServe(cell) => {
                    return Ok(outcome(
                        &credential,
                        &policy,
                        Some(cell),
                        OutcomeKind::ReServed,
                    ));
                }
                Decision::Issue(cell) => cell,
            };
            let challenge = PendingChallenge {
                cell,
                issued_at: now,
            };
            match self
                .repository
                .store_challenge(credential.id, credential.version, challenge)
                .await?
            {
                StoreOutcome::Stored => {
                    let mut issued = credential;
                    issued.pending = Some(challenge);
                    return Ok(outcome(&issued, &policy, Some(cell), OutcomeKind::Issued));
                }
                StoreOutcome::Conflict => lost_race_over = Some(credential.pending),
            }
        }
        Err(PortError::unavailable(format!(
            "credential kept changing: {MAX_STORE_ATTEMPTS} attempts lost"
        ))
        .into())
    }

    /// Steps 3 to 6: client, user, data room, most recent card.
    async fn load(
        &self,
        request: &ChallengeRequest,
        grants: &Grants,
    ) -> Result<(OtpPolicy, OtpCredential, DataroomAccess), ChallengeError> {
        let lookup = self
            .repository
            .load_target(&request.client, &request.user)
            .await?;
        let (client, user, credential) = match lookup {
            TargetLookup::ClientNotFound => {
                return Err(ChallengeError::ClientNotFound {
                    client: request.client.clone(),
                });
            }
            TargetLookup::UserNotFound { client } => {
                return Err(ChallengeError::UserNotFound {
                    user: request.user.clone(),
                    client_name: client.name,
                });
            }
            TargetLookup::Found {
                client,
                user,
                credential,
            } => (client, user, credential),
        };
        let access = grants
            .authorize(&user.scope)
            .ok_or(ChallengeError::DataroomDenied {
                right: Right::CREDENTIAL_VIEW,
            })?;
        let credential = credential.ok_or_else(|| ChallengeError::NoOtpCredential {
            user: request.user.clone(),
        })?;
        Ok((client.policy, credential, access))
    }

    /// Steps 7 to 10 short of storing. `lost_race_over` is set after a failed store: a stored
    /// challenge that differs from it was written by the winner and is re-served whatever the
    /// lifetime, so overlapping calls agree.
    fn decide(
        &self,
        _access: &DataroomAccess,
        credential: &OtpCredential,
        policy: &OtpPolicy,
        now: DateTime<Utc>,
        lost_race_over: Option<Option<PendingChallenge>>,
    ) -> Result<Decision, ChallengeError> {
        if credential.state == CredentialState::Disabled {
            return Err(ChallengeError::CredentialDisabled);
        }
        match credential.validity.check(now) {
            Validity::NotYetValid => return Err(ChallengeError::CredentialNotYetValid),
            Validity::Expired => return Err(ChallengeError::CredentialExpired),
            Validity::Valid => {}
        }
        if !credential.state.allows_login() {
            return Ok(Decision::Null(NullReason::StateForbidsLogin));
        }
        if let Some(pending) = credential
            .pending
            .filter(|p| !credential.card.is_used(p.cell))
        {
            let written_by_winner = lost_race_over.is_some_and(|before| before != Some(pending));
            if written_by_winner || pending.is_pending(now, policy.challenge_lifetime) {
                return Ok(Decision::ReServe(pending.cell));
            }
        }
        Ok(match credential.card.pick_unused(&self.random) {
            Some(cell) => Decision::Issue(cell),
            None => Decision::Null(NullReason::CardExhausted),
        })
    }
}

fn outcome(
    credential: &OtpCredential,
    policy: &OtpPolicy,
    cell: Option<CellIndex>,
    kind: OutcomeKind,
) -> ChallengeOutcome {
    let grid = credential.card.grid();
    let unused_cells = credential.card.unused_count();
    ChallengeOutcome {
        challenge: cell.map(|cell| ChallengeLabel::new(cell, grid, policy.label_format())),
        status: credential.state,
        credential: credential.ext_id.clone(),
        kind,
        unused_cells,
        low_on_challenges: unused_cells < policy.low_on_challenges_threshold,
    }
}
