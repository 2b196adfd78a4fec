//! Spec 3.1 row by row, the states of 3.3, exhausted cards (3.4), both label formats and
//! re-serving (3.6).

use actix_web::http::StatusCode;
use futures::future::join_all;

use crate::support::{CLIENT, TestApp};

async fn expect_error(
    app: &TestApp,
    caller: &str,
    user: &str,
    status: u16,
    code: &str,
    message: &str,
) {
    let reply = app.challenge(caller, user).await;
    assert_eq!(reply.status.as_u16(), status, "{user}: {:?}", reply.body);
    assert_eq!(
        reply.error(),
        (code.to_owned(), message.to_owned()),
        "{user}"
    );
}

fn execute(app: &TestApp, sql: &str) {
    diesel::RunQueryDsl::execute(diesel::sql_query(sql), &mut app.db.connect()).unwrap();
}

/// Moves a card's pending challenge past its 120 s lifetime.
fn age_pending_challenge(app: &TestApp, card: &str) {
    execute(
        app,
        &format!(
            "UPDATE otp_cards SET challenge_issued_at = challenge_issued_at - interval '121 seconds' \
             WHERE ext_id = '{card}'"
        ),
    );
}

fn is_coordinate_label(label: &str, rows: u32, columns: u8) -> bool {
    let mut chars = label.chars();
    let letter = chars.next().unwrap();
    let row: u32 = chars.as_str().parse().unwrap();
    ('A'..(b'A' + columns) as char).contains(&letter) && (1..=rows).contains(&row)
}

#[actix_web::test]
async fn issues_a_coordinate_challenge_and_stores_it() {
    let app = TestApp::spawn().await;
    let reply = app.challenge("helpdesk", "u-active").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        reply.headers.get("content-type").unwrap(),
        "application/json"
    );
    let body = reply.body.as_object().unwrap();
    assert_eq!(body.len(), 2);
    assert_eq!(body["status"], "active");
    let label = body["challenge"].as_str().unwrap();
    assert!(is_coordinate_label(label, 12, 14), "{label}");
    // The stored cell is the one named: column letter + row number.
    let cell = app.stored_cell("card-active").unwrap();
    let expected = format!("{}{}", (b'A' + (cell % 14) as u8) as char, cell / 14 + 1);
    assert_eq!(label, expected);
}

#[actix_web::test]
async fn row_2_caller_without_the_right() {
    let app = TestApp::spawn().await;
    expect_error(&app, "no-rights", "u-active", 403, "errors.insufficientRightsFunction",
        "Permission denied: Caller does not have the required right 'AccessControl.CredentialView' to perform this action").await;
    // Step 2 comes before step 3: an unknown client still answers 403.
    let reply = app
        .challenge_in("no-such-client", "no-rights", "u-active")
        .await;
    let reply_for_other_client = reply.status;
    assert_eq!(reply_for_other_client, StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn row_3_unknown_client() {
    let app = TestApp::spawn().await;
    let reply = app.challenge_in("client-9", "helpdesk", "u-active").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.error(),
        (
            "errors.noRecord".into(),
            "Client doesn't exist with extId 'client-9'".into()
        )
    );
}

#[actix_web::test]
async fn row_4_unknown_user() {
    let app = TestApp::spawn().await;
    expect_error(
        &app,
        "helpdesk",
        "user-9",
        404,
        "errors.noRecord",
        "A user with extId 'user-9' doesn't exist on client with name Default",
    )
    .await;
}

#[actix_web::test]
async fn row_5_data_room() {
    let app = TestApp::spawn().await;
    let message = "Permission denied: AccessControl.CredentialView";
    // branch-desk covers the branch unit only: a user in the side office is outside.
    expect_error(
        &app,
        "branch-desk",
        "u-side",
        403,
        "errors.combinedDataroomDenied",
        message,
    )
    .await;
    // other-desk: every unit, but only the other client.
    expect_error(
        &app,
        "other-desk",
        "u-active",
        403,
        "errors.combinedDataroomDenied",
        message,
    )
    .await;
    // branch-desk inside its room is fine.
    assert_eq!(
        app.challenge("branch-desk", "u-active").await.status,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn row_6_no_otp_card() {
    let app = TestApp::spawn().await;
    for user in ["u-none", "u-archived"] {
        expect_error(
            &app,
            "helpdesk",
            user,
            404,
            "errors.noRecord",
            &format!("There is no OTP credential defined for user '{user}'"),
        )
        .await;
    }
}

#[actix_web::test]
async fn row_7_disabled_most_recent_card_without_fallback() {
    let app = TestApp::spawn().await;
    for user in ["u-disabled", "u-newest-disabled"] {
        expect_error(
            &app,
            "helpdesk",
            user,
            403,
            "errors.userLoginFailed",
            "Wrong state: 102 for Credential disabled",
        )
        .await;
    }
}

#[actix_web::test]
async fn row_8_validity_period() {
    let app = TestApp::spawn().await;
    expect_error(
        &app,
        "helpdesk",
        "u-expired",
        403,
        "errors.userLoginFailed",
        "Wrong state: 103 for Credential expired",
    )
    .await;
    expect_error(
        &app,
        "helpdesk",
        "u-future",
        403,
        "errors.userLoginFailed",
        "Wrong state: 103 for Credential not yet valid",
    )
    .await;
}

#[actix_web::test]
async fn row_9_every_state_and_exhausted_cards() {
    let app = TestApp::spawn().await;
    for state in ["initial", "active", "reset-code", "admin-changed"] {
        let reply = app.challenge("helpdesk", &format!("u-{state}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{state}");
        assert_eq!(reply.body["status"], state);
        assert!(
            reply.body["challenge"].is_string(),
            "{state}: {:?}",
            reply.body
        );
        assert!(app.stored_cell(&format!("card-{state}")).is_some());
    }
    for state in ["tmp-locked", "fail-locked"] {
        let reply = app.challenge("helpdesk", &format!("u-{state}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{state}");
        assert_eq!(
            reply.body,
            serde_json::json!({"challenge": null, "status": state})
        );
        assert_eq!(
            app.stored_cell(&format!("card-{state}")),
            None,
            "{state} stored"
        );
    }
    let reply = app.challenge("helpdesk", "u-exhausted").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        serde_json::json!({"challenge": null, "status": "active"})
    );
    assert_eq!(app.stored_cell("card-u-exhausted"), None);
}

#[actix_web::test]
async fn row_10_only_unused_cells_are_drawn() {
    let app = TestApp::spawn().await;
    // 2x2 card with cells 0, 1 and 3 used: only A2 is left.
    let reply = app.challenge("helpdesk", "u-one-left").await;
    assert_eq!(reply.body["challenge"], "A2");
    assert_eq!(app.stored_cell("card-u-one-left"), Some(2));
}

#[actix_web::test]
async fn a_twenty_row_card_uses_two_digit_rows() {
    let app = TestApp::spawn().await;
    let mut rows_seen = std::collections::HashSet::new();
    // Lifetime 120 re-serves; clear the stored challenge between draws to see several.
    for _ in 0..40 {
        let reply = app.challenge("helpdesk", "u-tall").await;
        let label = reply.body["challenge"].as_str().unwrap().to_owned();
        assert!(is_coordinate_label(&label, 20, 14), "{label}");
        rows_seen.insert(label[1..].parse::<u32>().unwrap());
        execute(
            &app,
            "UPDATE otp_cards SET challenge_cell = NULL, challenge_issued_at = NULL, \
             version = version + 1 WHERE ext_id = 'card-u-tall'",
        );
    }
    assert!(
        rows_seen.iter().any(|r| *r > 12),
        "no row past 12 in 40 draws: {rows_seen:?}"
    );
}

#[actix_web::test]
async fn sequential_format_and_lifetime_zero() {
    let app = TestApp::spawn().await;
    let mut labels = std::collections::HashSet::new();
    for _ in 0..8 {
        let reply = app
            .challenge_by("client-seq", "seq-desk", "client-seq", "s-user")
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let label = reply.body["challenge"].as_str().unwrap().to_owned();
        assert_eq!(label.len(), 3, "{label}");
        let number: u32 = label.parse().unwrap();
        assert!((1..=168).contains(&number));
        assert_eq!(app.stored_cell("card-s"), Some((number - 1) as i16));
        labels.insert(label);
    }
    assert!(labels.len() > 1, "lifetime 0 must draw anew: {labels:?}");
}

#[actix_web::test]
async fn a_pending_challenge_is_re_served() {
    let app = TestApp::spawn().await;
    let first = app.challenge("helpdesk", "u-active").await.body;
    for _ in 0..5 {
        assert_eq!(app.challenge("helpdesk", "u-active").await.body, first);
    }
    // Once its lifetime is over, a new cell may be drawn.
    age_pending_challenge(&app, "card-active");
    let before = app.stored_cell("card-active");
    let mut renewed = false;
    for _ in 0..5 {
        let reply = app.challenge("helpdesk", "u-active").await;
        renewed |= reply.body != first;
        age_pending_challenge(&app, "card-active");
    }
    assert!(
        renewed,
        "an expired challenge was never replaced (stored {before:?})"
    );
}

#[actix_web::test]
async fn thirty_two_concurrent_requests_on_one_card_agree() {
    let app = TestApp::spawn_with(|s| s.database.pool_size = 8).await;
    let replies = join_all((0..32).map(|_| app.challenge("helpdesk", "u-initial"))).await;
    let mut bodies = std::collections::HashSet::new();
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        bodies.insert(reply.body.to_string());
    }
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let cell = app.stored_cell("card-initial").unwrap();
    let label = replies[0].body["challenge"].as_str().unwrap();
    assert_eq!(
        label,
        format!("{}{}", (b'A' + (cell % 14) as u8) as char, cell / 14 + 1)
    );
}

#[actix_web::test]
async fn a_pending_challenge_survives_a_restart() {
    let app = TestApp::spawn().await;
    let first = app.challenge("helpdesk", "u-reset-code").await.body;
    let (db, settings) = app.stop().await;
    let app = TestApp::start(db, settings);
    assert_eq!(app.challenge("helpdesk", "u-reset-code").await.body, first);
    assert_eq!(first["status"], "reset-code");
    let _ = CLIENT;
}
