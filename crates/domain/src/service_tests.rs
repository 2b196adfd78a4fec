//! The use case against in-memory ports: one test per row of spec 3.1 and per state of 3.3,
//! re-serving (3.6) and the lost race.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::TimeDelta;
use futures::executor::block_on;

use crate::access::{DataRoom, Grant};
use crate::card::GridSize;
use crate::error::{ChallengeError, ErrorCategory};
use crate::ids::{ClientExtId, UserExtId};
use crate::ports::PortError;
use crate::service::{ChallengeOutcome, NullReason, OutcomeKind};
use crate::state::{ALL_STATES, CredentialState};
use crate::testing::{Scenario, t0};
use crate::validity::ValidityPeriod;

fn run(scenario: &Scenario) -> Result<ChallengeOutcome, ChallengeError> {
    block_on(scenario.service(7).generate_challenge(&scenario.request()))
}

fn expect_error(scenario: &Scenario, category: ErrorCategory, code: &str, message: &str) {
    let err = run(scenario).unwrap_err();
    assert_eq!(err.category(), category, "{err:?}");
    let vendor = err.vendor_error();
    assert_eq!(vendor.code, code);
    assert_eq!(vendor.message, message);
    assert_eq!(scenario.repository.stores.load(Ordering::SeqCst), 0);
}

#[test]
fn row_2_caller_without_the_right_is_refused_before_any_lookup() {
    let s = Scenario::new();
    s.add_card("card-1", CredentialState::Active, 1);
    s.permissions.set(&s.caller, vec![]);
    expect_error(
        &s,
        ErrorCategory::Forbidden,
        "errors.insufficientRightsFunction",
        "Permission denied: Caller does not have the required right 'AccessControl.CredentialView' to perform this action",
    );
    assert_eq!(s.repository.loads.load(Ordering::SeqCst), 0);
}

#[test]
fn unknown_caller_is_unauthenticated() {
    let mut s = Scenario::new();
    s.caller.user = UserExtId::parse("ghost").unwrap();
    expect_error(
        &s,
        ErrorCategory::Unauthenticated,
        "errors.invalidJWTToken",
        "Invalid JWT token",
    );
}

#[test]
fn row_3_unknown_client() {
    let s = Scenario::new();
    let mut request = s.request();
    request.client = ClientExtId::parse("nope").unwrap();
    let err = block_on(s.service(1).generate_challenge(&request)).unwrap_err();
    assert_eq!(err.category(), ErrorCategory::NotFound);
    assert_eq!(err.vendor_error().code, "errors.noRecord");
    assert_eq!(
        err.vendor_error().message,
        "Client doesn't exist with extId 'nope'"
    );
}

#[test]
fn row_4_unknown_user_names_the_client() {
    let s = Scenario::new();
    let mut request = s.request();
    request.user = UserExtId::parse("nobody").unwrap();
    let err = block_on(s.service(1).generate_challenge(&request)).unwrap_err();
    assert_eq!(err.category(), ErrorCategory::NotFound);
    assert_eq!(err.vendor_error().code, "errors.noRecord");
    assert_eq!(
        err.vendor_error().message,
        "A user with extId 'nobody' doesn't exist on client with name Default"
    );
}

#[test]
fn row_5_data_room_must_cover_client_and_unit_in_one_authorization() {
    let s = Scenario::new();
    s.add_card("card-1", CredentialState::Active, 1);
    let other_unit = crate::ids::UnitId(uuid::Uuid::from_u128(99));
    s.permissions.set(
        &s.caller,
        vec![
            Grant {
                clients: DataRoom::Only(vec![s.client_id]),
                units: DataRoom::Only(vec![other_unit]),
            },
            Grant {
                clients: DataRoom::Only(vec![]),
                units: DataRoom::Global,
            },
        ],
    );
    expect_error(
        &s,
        ErrorCategory::Forbidden,
        "errors.combinedDataroomDenied",
        "Permission denied: AccessControl.CredentialView",
    );
}

#[test]
fn row_5_a_grant_on_an_ancestor_unit_covers_the_user() {
    let s = Scenario::new();
    s.add_card("card-1", CredentialState::Active, 1);
    s.permissions.set(
        &s.caller,
        vec![Grant {
            clients: DataRoom::Only(vec![s.client_id]),
            units: DataRoom::Only(vec![s.units[1]]),
        }],
    );
    assert_eq!(run(&s).unwrap().kind, OutcomeKind::Issued);
}

#[test]
fn row_6_no_card_or_only_archived_cards() {
    let s = Scenario::new();
    let message = "There is no OTP credential defined for user 'user-123'";
    expect_error(&s, ErrorCategory::NotFound, "errors.noRecord", message);
    s.add_card("card-old", CredentialState::Archived, 1);
    expect_error(&s, ErrorCategory::NotFound, "errors.noRecord", message);
}

#[test]
fn row_7_disabled_most_recent_card_is_refused_without_fallback() {
    let s = Scenario::new();
    s.add_card("card-old", CredentialState::Active, 30);
    s.add_card("card-new", CredentialState::Disabled, 1);
    expect_error(
        &s,
        ErrorCategory::Forbidden,
        "errors.userLoginFailed",
        "Wrong state: 102 for Credential disabled",
    );
}

#[test]
fn row_8_validity_period_is_enforced_at_its_bounds() {
    let s = Scenario::new();
    s.add_card("card-1", CredentialState::Active, 1);
    let to = t0() + TimeDelta::seconds(10);
    let from = t0() - TimeDelta::seconds(10);
    s.repository.update("card-1", |c| {
        c.validity = ValidityPeriod::new(Some(from), Some(to)).unwrap();
    });
    s.clock.set(to);
    expect_error(
        &s,
        ErrorCategory::Forbidden,
        "errors.userLoginFailed",
        "Wrong state: 103 for Credential expired",
    );
    s.clock.set(from - TimeDelta::nanoseconds(1));
    expect_error(
        &s,
        ErrorCategory::Forbidden,
        "errors.userLoginFailed",
        "Wrong state: 103 for Credential not yet valid",
    );
    s.clock.set(from);
    assert_eq!(run(&s).unwrap().kind, OutcomeKind::Issued);
}

#[test]
fn row_8_is_checked_before_the_state_of_a_locked_card() {
    let s = Scenario::new();
    s.add_card("card-1", CredentialState::TmpLocked, 1);
    s.repository.update("card-1", |c| {
        c.validity = ValidityPeriod::new(None, Some(t0())).unwrap();
    });
    let err = run(&s).unwrap_err();
    assert!(matches!(err, ChallengeError::CredentialExpired));
}

#[test]
fn row_9_and_3_3_every_state_answers_as_specified() {
    for state in ALL_STATES {
        let s = Scenario::new();
        s.add_card("card-1", state, 1);
        let result = run(&s);
        match state {
            CredentialState::Initial
            | CredentialState::Active
            | CredentialState::ResetCode
            | CredentialState::AdminChanged => {
                let outcome = result.unwrap();
                assert_eq!(outcome.kind, OutcomeKind::Issued, "{state}");
                assert_eq!(outcome.status, state);
                assert!(outcome.challenge.is_some());
                assert_eq!(s.repository.stores.load(Ordering::SeqCst), 1);
            }
            CredentialState::TmpLocked | CredentialState::FailLocked => {
                let outcome = result.unwrap();
                assert_eq!(
                    outcome.kind,
                    OutcomeKind::Null(NullReason::StateForbidsLogin)
                );
                assert_eq!(outcome.challenge, None);
                assert_eq!(outcome.status, state);
                assert_eq!(s.repository.stores.load(Ordering::SeqCst), 0);
                assert_eq!(s.repository.credential("card-1").pending, None);
            }
            CredentialState::Disabled => {
                assert!(matches!(result, Err(ChallengeError::CredentialDisabled)));
            }
            CredentialState::Archived => {
                assert!(matches!(
                    result,
                    Err(ChallengeError::NoOtpCredential { .. })
                ));
            }
        }
    }
}

#[test]
fn row_9_exhausted_card_answers_null_and_stores_nothing() {
    let s = Scenario::new();
    s.add_card_with(
        "card-1",
        CredentialState::Active,
        1,
        GridSize::new(2, 3).unwrap(),
        &[0, 1, 2, 3, 4, 5],
    );
    let outcome = run(&s).unwrap();
    assert_eq!(outcome.challenge, None);
    assert_eq!(outcome.kind, OutcomeKind::Null(NullReason::CardExhausted));
    assert_eq!(outcome.status, CredentialState::Active);
    assert_eq!(s.repository.stores.load(Ordering::SeqCst), 0);
}

#[test]
fn row_10_issues_an_unused_cell_stores_it_and_labels_it_by_policy() {
    let s = Scenario::new();
    s.add_card_with(
        "card-1",
        CredentialState::Active,
        1,
        GridSize::new(2, 2).unwrap(),
        &[0, 1, 3],
    );
    let outcome = run(&s).unwrap();
    // Only cell 2 (row 2, column A) is unused.
    assert_eq!(outcome.challenge.unwrap().to_string(), "003");
    let stored = s.repository.credential("card-1").pending.unwrap();
    assert_eq!(stored.cell.get(), 2);
    assert_eq!(stored.issued_at, t0());
    assert_eq!(outcome.unused_cells, 1);
    assert!(outcome.low_on_challenges);

    let s = Scenario::new();
    s.set_policy(|p| p.coordinate_card_format = true);
    s.add_card_with(
        "card-1",
        CredentialState::Active,
        1,
        GridSize::new(2, 2).unwrap(),
        &[0, 1, 3],
    );
    assert_eq!(run(&s).unwrap().challenge.unwrap().to_string(), "A2");
}

#[test]
fn most_recent_card_wins_and_ties_go_to_the_later_insertion() {
    let s = Scenario::new();
    s.add_card("card-old", CredentialState::Active, 30);
    s.add_card("card-a", CredentialState::Active, 1);
    s.add_card("card-b", CredentialState::TmpLocked, 1);
    s.add_card("card-newest-archived", CredentialState::Archived, 0);
    let outcome = run(&s).unwrap();
    assert_eq!(outcome.credential.as_str(), "card-b");
    assert_eq!(outcome.status, CredentialState::TmpLocked);
}

#[test]
fn pending_challenge_is_re_served_until_its_lifetime_ends() {
    let s = Scenario::new();
    s.add_card("card-1", CredentialState::Active, 1);
    let first = run(&s).unwrap();
    assert_eq!(first.kind, OutcomeKind::Issued);
    for seed in 0..20 {
        let again = block_on(s.service(seed).generate_challenge(&s.request())).unwrap();
        assert_eq!(again.kind, OutcomeKind::ReServed);
        assert_eq!(again.challenge, first.challenge);
    }
    s.clock
        .advance(TimeDelta::seconds(120) - TimeDelta::nanoseconds(1));
    assert_eq!(run(&s).unwrap().kind, OutcomeKind::ReServed);
    s.clock.advance(TimeDelta::nanoseconds(1));
    let renewed = run(&s).unwrap();
    assert_eq!(renewed.kind, OutcomeKind::Issued);
    assert_eq!(s.repository.stores.load(Ordering::SeqCst), 2);
    let stored = s.repository.credential("card-1").pending.unwrap();
    assert_eq!(Some(stored.cell), renewed.challenge.map(|l| l.cell()));
}

#[test]
fn lifetime_zero_draws_anew_on_every_call() {
    let s = Scenario::new();
    s.set_policy(|p| p.challenge_lifetime = Duration::ZERO);
    s.add_card("card-1", CredentialState::Active, 1);
    let mut labels = std::collections::HashSet::new();
    for seed in 0..10 {
        let outcome = block_on(s.service(seed).generate_challenge(&s.request())).unwrap();
        assert_eq!(outcome.kind, OutcomeKind::Issued);
        labels.insert(outcome.challenge.unwrap().to_string());
    }
    assert_eq!(s.repository.stores.load(Ordering::SeqCst), 10);
    assert!(labels.len() > 1, "ten draws from 168 cells all equal");
}

#[test]
fn a_pending_challenge_on_a_cell_since_used_is_not_re_served() {
    let s = Scenario::new();
    s.add_card("card-1", CredentialState::Active, 1);
    let first = run(&s).unwrap().challenge.unwrap();
    s.repository
        .update("card-1", |c| c.card.mark_used(first.cell()));
    let second = run(&s).unwrap();
    assert_eq!(second.kind, OutcomeKind::Issued);
    assert_ne!(second.challenge.unwrap().cell(), first.cell());
}

#[test]
fn the_loser_of_a_race_returns_the_winners_challenge() {
    let s = Scenario::new();
    s.set_policy(|p| p.challenge_lifetime = Duration::ZERO);
    s.add_card("card-1", CredentialState::Active, 1);
    let winner_cell = GridSize::DEFAULT.cell(42).unwrap();
    let winner_time = t0();
    s.repository.race_on_store(Box::new(move |credential| {
        credential.pending = Some(crate::policy::PendingChallenge {
            cell: winner_cell,
            issued_at: winner_time,
        });
    }));
    let outcome = run(&s).unwrap();
    assert_eq!(outcome.kind, OutcomeKind::ReServed);
    assert_eq!(outcome.challenge.unwrap().cell(), winner_cell);
    let stored = s.repository.credential("card-1").pending.unwrap();
    assert_eq!(stored.cell, winner_cell);
    assert_eq!(s.repository.stores.load(Ordering::SeqCst), 0);
    assert_eq!(s.repository.loads.load(Ordering::SeqCst), 2);
}

#[test]
fn a_race_lost_to_a_change_without_challenge_draws_again() {
    let s = Scenario::new();
    s.add_card("card-1", CredentialState::Active, 1);
    s.repository.race_on_store(Box::new(|credential| {
        credential
            .card
            .mark_used(GridSize::DEFAULT.cell(0).unwrap())
    }));
    let outcome = run(&s).unwrap();
    assert_eq!(outcome.kind, OutcomeKind::Issued);
    assert_eq!(s.repository.stores.load(Ordering::SeqCst), 1);
}

#[test]
fn unavailable_storage_maps_to_the_unavailable_category() {
    let s = Scenario::new();
    s.add_card("card-1", CredentialState::Active, 1);
    *s.repository.fail_with.lock().unwrap() = Some(|| PortError::unavailable("pool timed out"));
    let err = run(&s).unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Unavailable);
    assert_eq!(err.vendor_error().code, "errors.fatalError");
    assert!(!err.vendor_error().message.contains("pool"));
    *s.repository.fail_with.lock().unwrap() = Some(|| PortError::failed("syntax error"));
    assert_eq!(run(&s).unwrap_err().category(), ErrorCategory::Internal);
}

#[test]
fn endless_contention_gives_up_as_unavailable_without_storing() {
    let s = Scenario::new();
    s.add_card("card-1", CredentialState::Active, 1);
    // Every store loses: some other writer bumps the version each time.
    let repository = std::sync::Arc::clone(&s.repository);
    fn always_race(repository: std::sync::Arc<crate::testing::MemoryRepository>) {
        let again = std::sync::Arc::clone(&repository);
        repository.race_on_store(Box::new(move |_| {
            always_race(std::sync::Arc::clone(&again))
        }));
    }
    always_race(repository);
    let err = run(&s).unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Unavailable);
    assert_eq!(s.repository.stores.load(Ordering::SeqCst), 0);
    assert_eq!(
        s.repository.loads.load(Ordering::SeqCst),
        crate::service::MAX_STORE_ATTEMPTS
    );
}
