//! Everything around the route: error shapes for unknown routes, methods, bodies, path
//! parameters, the database being down, and the OpenAPI document.

use actix_web::http::StatusCode;

use crate::support::{CLIENT, TestApp, settings};

#[actix_web::test]
async fn unknown_routes_and_methods_answer_in_the_vendor_shape() {
    let app = TestApp::spawn().await;
    let reply = app
        .send(app.http().get(format!("{}/nope", app.base_url)))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error().0, "errors.invalidUri");
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let request = app.http().request(
            actix_web::http::Method::from_bytes(method.as_bytes()).unwrap(),
            app.challenge_url(CLIENT, "u-active"),
        );
        let reply = app.send(request).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(reply.headers.get("allow").unwrap(), "POST");
        assert_eq!(reply.error().0, "errors.unsupportedOperation");
    }
}

#[actix_web::test]
async fn a_body_is_ignored_and_an_oversized_one_refused() {
    let app = TestApp::spawn().await;
    let request = app
        .authorized_post("helpdesk", "u-active")
        .insert_header(("Content-Type", "application/json"));
    let reply = app.send_body(request, "{not json").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let request = app.authorized_post("helpdesk", "u-active");
    let big: &'static str = Box::leak("x".repeat(70_000).into_boxed_str());
    let reply = app.send_body(request, big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.error().0, "errors.invalidData");
}

#[actix_web::test]
async fn invalid_path_parameters_are_400_after_authentication() {
    let app = TestApp::spawn().await;
    let long = "x".repeat(300);
    for (client, user, field) in [
        (long.as_str(), "u-active", "clientExtId"),
        (CLIENT, long.as_str(), "userExtId"),
        (CLIENT, "a%00b", "userExtId"),
    ] {
        let reply = app.challenge_in(client, "helpdesk", user).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{field}");
        let (code, message) = reply.error();
        assert_eq!(code, "errors.invalidParameter");
        assert!(message.contains(field), "{message}");
    }
    // Without a token the same request is 401: authentication comes first.
    let reply = app
        .send(app.http().post(app.challenge_url(&long, "u")))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn an_unreachable_database_is_503_with_retry_after() {
    let mut settings = settings("postgres://idm_otp@127.0.0.1:1/none");
    settings.database.connect_timeout_ms = 300;
    let app = TestApp::start(idm_otp_test_support::TestDatabase::create(), settings);
    let reply = app.challenge("helpdesk", "u-active").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
    let (code, message) = reply.error();
    assert_eq!(code, "errors.fatalError");
    assert!(!message.to_lowercase().contains("connect"), "{message}");
}

#[actix_web::test]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::spawn().await;
    let request = app
        .authorized_post("helpdesk", "u-active")
        .insert_header(("X-Request-Id", "abc-123"));
    assert_eq!(
        app.send(request).await.headers.get("x-request-id").unwrap(),
        "abc-123"
    );
    let reply = app
        .send(app.http().get(format!("{}/nope", app.base_url)))
        .await;
    assert_eq!(reply.headers.get("x-request-id").unwrap().len(), 36);
}

#[actix_web::test]
async fn the_openapi_document_describes_the_route() {
    let app = TestApp::spawn().await;
    let reply = app
        .send(app.http().get(format!("{}/openapi.json", app.base_url)))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let op = &doc["paths"]["/nevisidm/api/auth/v1/{clientExtId}/users/{userExtId}/otp/challenge"]["post"];
    for status in ["200", "401", "403", "404", "503"] {
        assert!(
            op["responses"][status].is_object(),
            "response {status} missing"
        );
    }
    assert_eq!(op["security"][0]["bearer"], serde_json::json!([]));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}
