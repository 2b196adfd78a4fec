//! What operators rely on: health checks, Prometheus metrics, the request log line and the
//! audit event (spec 3.7).

use actix_web::http::StatusCode;

use crate::logs::capture;
use crate::support::{CLIENT, TestApp, settings};

const ROUTE: &str = "/nevisidm/api/auth/v1/{clientExtId}/users/{userExtId}/otp/challenge";

async fn metrics_text(app: &TestApp) -> String {
    let mut response = app
        .http()
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    String::from_utf8(response.body().await.unwrap().to_vec()).unwrap()
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}

#[actix_web::test]
async fn liveness_and_readiness_answer_without_a_token() {
    let app = TestApp::spawn().await;
    let live = app
        .send(app.http().get(format!("{}/health/live", app.base_url)))
        .await;
    assert_eq!(live.status, StatusCode::OK);
    assert_eq!(live.body["status"], "up");
    let ready = app
        .send(app.http().get(format!("{}/health/ready", app.base_url)))
        .await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["status"], "ready");
}

#[actix_web::test]
async fn readiness_is_503_while_the_database_is_unreachable_and_liveness_stays_up() {
    let mut settings = settings("postgres://idm_otp@127.0.0.1:1/none");
    settings.database.connect_timeout_ms = 300;
    let app = TestApp::start(idm_otp_test_support::TestDatabase::create(), settings);
    let request = app
        .http()
        .get(format!("{}/health/ready", app.base_url))
        .insert_header(("X-Request-Id", "ready-probe-1"));
    let ready = app.send(request).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.error().0, "errors.fatalError");
    assert!(ready.headers.get("retry-after").is_some());
    let live = app
        .send(app.http().get(format!("{}/health/live", app.base_url)))
        .await;
    assert_eq!(live.status, StatusCode::OK);
    // The error log line names the request it belongs to, and its cause.
    let lines = capture().lines_of("ready-probe-1");
    let error = lines
        .iter()
        .find(|line| line["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no error line in {lines:?}"));
    assert_eq!(error["status"], 503);
    let cause = error["error"].as_str().unwrap();
    assert!(cause.contains("storage unavailable"), "{cause}");
    assert!(cause.contains("port 1 failed"), "{cause}");
    assert_eq!(cause.matches("Connection refused").count(), 1, "{cause}");
}

#[actix_web::test]
async fn metrics_count_requests_and_challenge_outcomes() {
    let app = TestApp::spawn().await;
    let before = metrics_text(&app).await;
    assert_eq!(
        sample(
            &before,
            &format!(
                "idm_otp_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&before, "idm_otp_db_pool_max_connections"),
        Some(4.0)
    );
    assert_eq!(sample(&before, "idm_otp_db_pool_waiting"), Some(0.0));
    assert!(sample(&before, "idm_otp_db_pool_connections{state=\"idle\"}").is_some());
    assert_eq!(
        sample(&before, "idm_otp_challenges_total{outcome=\"issued\"}"),
        None
    );

    for (caller, user, status) in [
        ("helpdesk", "u-active", StatusCode::OK),
        ("helpdesk", "u-active", StatusCode::OK),
        ("helpdesk", "u-exhausted", StatusCode::OK),
        ("helpdesk", "nobody", StatusCode::NOT_FOUND),
        ("no-rights", "u-active", StatusCode::FORBIDDEN),
    ] {
        assert_eq!(app.challenge(caller, user).await.status, status, "{user}");
    }
    let anonymous = app
        .send(app.http().post(app.challenge_url(CLIENT, "u-active")))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let after = metrics_text(&app).await;
    for (outcome, count) in [
        ("issued", 1.0),
        ("re-served", 1.0),
        ("null", 1.0),
        ("errors.noRecord", 1.0),
        ("errors.insufficientRightsFunction", 1.0),
        ("errors.invalidJWTToken", 1.0),
    ] {
        assert_eq!(
            sample(
                &after,
                &format!("idm_otp_challenges_total{{outcome=\"{outcome}\"}}")
            ),
            Some(count),
            "{outcome}"
        );
    }
    let by_route = |status: u16| {
        sample(
            &after,
            &format!(
                "idm_otp_http_requests_total{{method=\"POST\",route=\"{ROUTE}\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(by_route(200), Some(3.0));
    assert_eq!(by_route(404), Some(1.0));
    assert_eq!(by_route(401), Some(1.0));
    assert_eq!(
        sample(
            &after,
            &format!(
                "idm_otp_http_request_duration_seconds_count{{method=\"POST\",route=\"{ROUTE}\",status=\"200\"}}"
            )
        ),
        Some(3.0)
    );
    // The first scrape itself was counted; unknown paths share one label, not one each.
    assert_eq!(
        sample(
            &after,
            "idm_otp_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"}"
        ),
        Some(1.0)
    );
    for i in 0..3 {
        app.send(app.http().get(format!("{}/nope-{i}", app.base_url)))
            .await;
    }
    assert_eq!(
        sample(
            &metrics_text(&app).await,
            "idm_otp_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"
        ),
        Some(3.0)
    );
}

#[actix_web::test]
async fn one_request_line_and_one_audit_event_per_call_without_the_token() {
    let app = TestApp::spawn().await;
    let token = app.token("helpdesk");
    let request = app
        .authorized_post("helpdesk", "u-active")
        .insert_header(("X-Request-Id", "audit-issued-1"));
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body["challenge"].is_string());

    let lines = capture().lines_of("audit-issued-1");
    let request_lines: Vec<_> = lines
        .iter()
        .filter(|l| l["target"] == "idm_otp::http")
        .collect();
    assert_eq!(request_lines.len(), 1, "{lines:?}");
    let line = request_lines[0];
    assert_eq!(line["method"], "POST");
    assert_eq!(line["route"], ROUTE);
    assert_eq!(line["status"], 200);
    assert!(line["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(line["timestamp"].is_string());

    let audits: Vec<_> = lines
        .iter()
        .filter(|l| l["target"] == "idm_otp::audit")
        .collect();
    assert_eq!(audits.len(), 1, "{lines:?}");
    let audit = audits[0];
    assert_eq!(audit["caller_client"], CLIENT);
    assert_eq!(audit["caller_user"], "helpdesk");
    assert_eq!(audit["client"], CLIENT);
    assert_eq!(audit["user"], "u-active");
    assert_eq!(audit["credential"], "card-active");
    assert_eq!(audit["outcome"], "issued");
    assert!(audit["timestamp"].is_string());

    for line in &lines {
        let text = line.to_string();
        assert!(!text.contains(&token), "token logged: {text}");
        assert!(!text.contains("Bearer"), "authorization logged: {text}");
    }
}

#[actix_web::test]
async fn refused_calls_are_audited_with_their_error_code() {
    let app = TestApp::spawn().await;
    for (id, caller, user, outcome, credential) in [
        (
            "audit-403",
            "no-rights",
            "u-active",
            "errors.insufficientRightsFunction",
            "",
        ),
        ("audit-404", "helpdesk", "u-none", "errors.noRecord", ""),
        (
            "audit-400",
            "helpdesk",
            "a%00b",
            "errors.invalidParameter",
            "",
        ),
        (
            "audit-null",
            "helpdesk",
            "u-exhausted",
            "null",
            "card-u-exhausted",
        ),
    ] {
        let request = app
            .authorized_post(caller, user)
            .insert_header(("X-Request-Id", id));
        app.send(request).await;
        let lines = capture().lines_of(id);
        let audits: Vec<_> = lines
            .iter()
            .filter(|l| l["target"] == "idm_otp::audit")
            .collect();
        assert_eq!(audits.len(), 1, "{id}: {lines:?}");
        assert_eq!(audits[0]["outcome"], outcome, "{id}");
        assert_eq!(audits[0]["caller_user"], caller, "{id}");
        assert_eq!(audits[0]["credential"], credential, "{id}");
    }
    // An unauthenticated call is not an audit event (there is no caller), but its request
    // line is logged.
    let request = app
        .http()
        .post(app.challenge_url(CLIENT, "u-active"))
        .insert_header(("X-Request-Id", "audit-401"));
    assert_eq!(app.send(request).await.status, StatusCode::UNAUTHORIZED);
    let lines = capture().lines_of("audit-401");
    assert!(
        lines.iter().all(|l| l["target"] != "idm_otp::audit"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["target"] == "idm_otp::http" && l["status"] == 401)
    );
}

#[actix_web::test]
async fn no_token_card_code_or_secret_reaches_the_debug_log() {
    let app = TestApp::spawn().await;
    let token = app.token("helpdesk");
    // Every kind of answer, each carrying a token.
    for (caller, user) in [
        ("helpdesk", "u-active"),
        ("helpdesk", "u-active"),
        ("no-rights", "u-active"),
        ("helpdesk", "nobody"),
        ("ghost", "u-active"),
        ("helpdesk", "u-exhausted"),
        ("helpdesk", "a%00b"),
    ] {
        app.challenge(caller, user).await;
    }
    let expired = crate::support::hs256(
        &serde_json::json!({"sub": "helpdesk", "client": CLIENT, "exp": 1}),
        crate::support::HS256_SECRET,
    );
    for value in [
        format!("Bearer {expired}"),
        format!("Basic {token}"),
        token.clone(),
    ] {
        let request = app
            .http()
            .post(app.challenge_url(CLIENT, "u-active"))
            .insert_header(("Authorization", value));
        assert_eq!(app.send(request).await.status, StatusCode::UNAUTHORIZED);
    }
    let text = capture().text();
    assert!(
        text.lines().count() > 10,
        "too little was logged to mean anything"
    );
    assert!(text.contains("\"level\":\"DEBUG\""), "not at debug level");
    assert!(!text.contains(&token));
    assert!(!text.contains(&expired));
    for line in text.lines() {
        assert_eq!(crate::logs::secret_in(line), None, "{line}");
    }
    // The check itself finds what it should.
    assert_eq!(
        crate::logs::secret_in(&format!("x {token} y")),
        Some("a JWT")
    );
    assert_eq!(crate::logs::secret_in("code cc0042zz"), Some("a card code"));
}
