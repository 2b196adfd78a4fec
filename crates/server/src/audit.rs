//! The audit trail (spec 3.7): one structured event per authenticated call, on its own log
//! target so it can be shipped separately. Never a token, never a cell code.

use idm_otp_domain::{Caller, ChallengeError, ChallengeOutcome, ChallengeRequest};

/// The `tracing` target of audit events.
pub const TARGET: &str = "idm_otp::audit";

/// The outcome's name in audit events and metrics: `issued`, `re-served`, `null`, or the
/// vendor error code.
pub fn outcome_label(result: &Result<ChallengeOutcome, ChallengeError>) -> &'static str {
    match result {
        Ok(outcome) => outcome.kind.as_str(),
        Err(err) => err.vendor_error().code,
    }
}

/// Records one call's result.
pub fn record(
    request_id: &str,
    request: &ChallengeRequest,
    result: &Result<ChallengeOutcome, ChallengeError>,
) {
    let outcome = outcome_label(result);
    let credential = result.as_ref().ok().map(|o| o.credential.as_str());
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

/// Records an authenticated call refused before the use case ran (a path parameter that is
/// not a valid ext id). The raw parameters are not logged: they are the caller's input and
/// may be anything.
pub fn record_rejected(request_id: &str, caller: &Caller, code: &'static str) {
    tracing::info!(
        target: TARGET,
        request_id,
        caller_client = caller.client.as_str(),
        caller_user = caller.user.as_str(),
        client = "",
        user = "",
        credential = "",
        outcome = code,
        "otp challenge"
    );
}
