//! The audit trail (spec 3.7): one structured event per authenticated call, on its own log
//! target so it can be shipped separately. Never a token, never a cell code.

use idm_otp_domain::{ChallengeError, ChallengeOutcome, ChallengeRequest};

/// The `tracing` target of audit events.
pub const TARGET: &str = "idm_otp::audit";

/// Records one call's result.
pub fn record(
    request_id: &str,
    request: &ChallengeRequest,
    result: &Result<ChallengeOutcome, ChallengeError>,
) {
    let (outcome, credential) = match result {
        Ok(outcome) => (outcome.kind.as_str(), Some(outcome.credential.as_str())),
        Err(err) => (err.vendor_error().code, None),
    };
    tracing::info!(
        target: TARGET,
        request_id,
        caller_client = request.caller.client.as_str(),
        caller_user = request.caller.user.as_str(),
        client = request.client.as_str(),
        user = request.user.as_str(),
        credential = credential.unwrap_or(""),
        outcome,
        "otp challenge"
    );
}
