//! Step 1: the bearer token (spec 3.8).

use actix_web::http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::support::{
    AUDIENCE, CLIENT, HS256_SECRET, ISSUER, Reply, TestApp, claims, hs256, key_file, sign,
};

fn assert_unauthorized(reply: &Reply, case: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{case}: {:?}",
        reply.body
    );
    assert!(
        reply
            .headers
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("Bearer"),
        "{case}"
    );
    assert_eq!(
        reply.error(),
        ("errors.invalidJWTToken".into(), "Invalid JWT token".into()),
        "{case}"
    );
}

async fn post_with(app: &TestApp, authorization: Option<&str>) -> Reply {
    let mut request = app.http().post(app.challenge_url(CLIENT, "u-active"));
    if let Some(value) = authorization {
        request = request.insert_header(("Authorization", value.to_owned()));
    }
    app.send(request).await
}

fn b64(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

fn with(mut claims: Value, key: &str, value: Option<Value>) -> Value {
    match value {
        Some(v) => claims[key] = v,
        None => {
            claims.as_object_mut().unwrap().remove(key);
        }
    }
    claims
}

#[actix_web::test]
async fn bad_tokens_get_401_in_the_vendor_shape() {
    let app = TestApp::spawn().await;
    let good = claims(CLIENT, "helpdesk");
    let now = chrono::Utc::now().timestamp();
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good)
    );
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("empty bearer", Some("Bearer ".into())),
        ("malformed", Some("Bearer not.a.jwt".into())),
        (
            "wrong scheme",
            Some(format!("Basic {}", hs256(&good, HS256_SECRET))),
        ),
        (
            "wrong signature",
            Some(format!(
                "Bearer {}",
                hs256(&good, "another-secret-of-sufficient-length-1234")
            )),
        ),
        ("alg none", Some(format!("Bearer {unsigned}"))),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                hs256(
                    &with(good.clone(), "exp", Some(json!(now - 3600))),
                    HS256_SECRET
                )
            )),
        ),
        (
            "no exp",
            Some(format!(
                "Bearer {}",
                hs256(&with(good.clone(), "exp", None), HS256_SECRET)
            )),
        ),
        (
            "wrong iss",
            Some(format!(
                "Bearer {}",
                hs256(
                    &with(good.clone(), "iss", Some(json!("https://evil"))),
                    HS256_SECRET
                )
            )),
        ),
        (
            "wrong aud",
            Some(format!(
                "Bearer {}",
                hs256(
                    &with(good.clone(), "aud", Some(json!("other"))),
                    HS256_SECRET
                )
            )),
        ),
        (
            "no sub",
            Some(format!(
                "Bearer {}",
                hs256(&with(good.clone(), "sub", None), HS256_SECRET)
            )),
        ),
        (
            "no client",
            Some(format!(
                "Bearer {}",
                hs256(&with(good.clone(), "client", None), HS256_SECRET)
            )),
        ),
        (
            "nbf in future",
            Some(format!(
                "Bearer {}",
                hs256(
                    &with(good.clone(), "nbf", Some(json!(now + 3600))),
                    HS256_SECRET
                )
            )),
        ),
        (
            "unknown caller",
            Some(format!(
                "Bearer {}",
                hs256(
                    &with(good.clone(), "sub", Some(json!("ghost"))),
                    HS256_SECRET
                )
            )),
        ),
        (
            "RS256 when only HS256 is allowed",
            Some(format!(
                "Bearer {}",
                sign(
                    &good,
                    Algorithm::RS256,
                    &EncodingKey::from_rsa_pem(
                        &std::fs::read(key_file("rs256-private.pem")).unwrap()
                    )
                    .unwrap()
                )
            )),
        ),
        ("oversized", Some(format!("Bearer {}", "a".repeat(9000)))),
    ];
    for (case, header) in &cases {
        assert_unauthorized(&post_with(&app, header.as_deref()).await, case);
    }
    // Odd casing of the scheme is accepted.
    let token = hs256(&good, HS256_SECRET);
    let reply = post_with(&app, Some(&format!("bEaReR {token}"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
}

#[actix_web::test]
async fn public_key_algorithms_work_when_configured_and_confusion_fails() {
    let app = TestApp::spawn_with(|s| {
        s.auth.algorithms = vec!["RS256".into(), "ES256".into(), "EdDSA".into()];
        s.auth.rs256_public_key_file = Some(key_file("rs256-public.pem"));
        s.auth.es256_public_key_file = Some(key_file("es256-public.pem"));
        s.auth.eddsa_public_key_file = Some(key_file("eddsa-public.pem"));
    })
    .await;
    let good = claims(CLIENT, "helpdesk");
    let read = |name: &str| std::fs::read(key_file(name)).unwrap();
    for (algorithm, key) in [
        (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&read("rs256-private.pem")).unwrap(),
        ),
        (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&read("es256-private.pem")).unwrap(),
        ),
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&read("eddsa-private.pem")).unwrap(),
        ),
    ] {
        let reply = post_with(
            &app,
            Some(&format!("Bearer {}", sign(&good, algorithm, &key))),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{algorithm:?}: {:?}",
            reply.body
        );
    }
    // Algorithm confusion: HS256 signed with the RSA public key's PEM as the secret.
    let public_pem = String::from_utf8(read("rs256-public.pem")).unwrap();
    let confused = hs256(&good, &public_pem);
    assert_unauthorized(
        &post_with(&app, Some(&format!("Bearer {confused}"))).await,
        "confusion",
    );
    // HS256 is not configured here at all.
    let hs = hs256(&good, HS256_SECRET);
    assert_unauthorized(
        &post_with(&app, Some(&format!("Bearer {hs}"))).await,
        "hs256 off",
    );
    let _ = (ISSUER, AUDIENCE);
}

#[actix_web::test]
async fn two_authorization_headers_are_refused() {
    let app = TestApp::spawn().await;
    let token = hs256(&claims(CLIENT, "helpdesk"), HS256_SECRET);
    let request = app
        .http()
        .post(app.challenge_url(CLIENT, "u-active"))
        .append_header(("Authorization", format!("Bearer {token}")))
        .append_header(("Authorization", format!("Bearer {token}")));
    assert_unauthorized(&app.send(request).await, "two headers");
}

fn sign_with_kid(claims: &Value, algorithm: Algorithm, key: &EncodingKey, kid: &str) -> String {
    let header = jsonwebtoken::Header {
        kid: Some(kid.to_owned()),
        ..jsonwebtoken::Header::new(algorithm)
    };
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

#[actix_web::test]
async fn key_ids_select_the_key_and_unknown_or_truncated_tokens_are_refused() {
    let app = TestApp::spawn_with(|s| {
        s.auth.algorithms = vec!["RS256".into(), "ES256".into(), "EdDSA".into()];
        s.auth.rs256_public_key_file = Some(key_file("rs256-public.pem"));
        s.auth.jwks_file = Some(key_file("jwks.json"));
    })
    .await;
    let good = claims(CLIENT, "helpdesk");
    let read = |name: &str| std::fs::read(key_file(name)).unwrap();
    let rsa = EncodingKey::from_rsa_pem(&read("rs256-private.pem")).unwrap();
    let ec = EncodingKey::from_ec_pem(&read("es256-private.pem")).unwrap();
    let ed = EncodingKey::from_ed_pem(&read("eddsa-private.pem")).unwrap();
    let accepted = [
        (
            "RS256 by kid",
            sign_with_kid(&good, Algorithm::RS256, &rsa, "rsa-2026"),
        ),
        (
            "ES256 by kid",
            sign_with_kid(&good, Algorithm::ES256, &ec, "ec-2026"),
        ),
        (
            "EdDSA by kid",
            sign_with_kid(&good, Algorithm::EdDSA, &ed, "ed-2026"),
        ),
        (
            "RS256 without kid: the PEM key",
            sign(&good, Algorithm::RS256, &rsa),
        ),
    ];
    for (case, token) in &accepted {
        let reply = post_with(&app, Some(&format!("Bearer {token}"))).await;
        assert_eq!(reply.status, StatusCode::OK, "{case}: {:?}", reply.body);
    }
    let full = sign_with_kid(&good, Algorithm::RS256, &rsa, "rsa-2026");
    let (signed, _) = full.rsplit_once('.').unwrap();
    let public_pem = String::from_utf8(read("rs256-public.pem")).unwrap();
    let refused = [
        (
            "unknown kid",
            sign_with_kid(&good, Algorithm::RS256, &rsa, "rsa-2025"),
        ),
        (
            "kid of another algorithm",
            sign_with_kid(&good, Algorithm::RS256, &rsa, "ec-2026"),
        ),
        (
            "ES256 without kid (only in the key set)",
            sign(&good, Algorithm::ES256, &ec),
        ),
        (
            "HS256 with the RSA key's kid, the public key as secret",
            sign_with_kid(
                &good,
                Algorithm::HS256,
                &EncodingKey::from_secret(public_pem.as_bytes()).unwrap(),
                "rsa-2026",
            ),
        ),
        ("truncated signature", full[..full.len() - 10].to_owned()),
        ("signature removed", format!("{signed}.")),
        ("two parts", signed.to_owned()),
        ("header only", full.split('.').next().unwrap().to_owned()),
        ("oversized", format!("{full}{}", "A".repeat(9000))),
    ];
    for (case, token) in &refused {
        assert_unauthorized(
            &post_with(&app, Some(&format!("Bearer {token}"))).await,
            case,
        );
    }
}

#[test]
fn a_key_set_must_name_allowed_algorithms_and_hold_only_public_keys() {
    use idm_otp_server::auth::TokenVerifier;
    let base = crate::support::settings("postgres://unused@127.0.0.1:1/none").auth;
    let dir = std::env::temp_dir().join(format!("idm-otp-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let attempt = |algorithms: &[&str], jwks: &Value| {
        let path = dir.join(format!("{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, jwks.to_string()).unwrap();
        let mut settings = base.clone();
        settings.algorithms = algorithms.iter().map(|a| (*a).to_owned()).collect();
        settings.jwks_file = Some(path);
        TokenVerifier::from_settings(&settings)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let real: Value =
        serde_json::from_slice(&std::fs::read(key_file("jwks.json")).unwrap()).unwrap();
    assert_eq!(attempt(&["RS256", "ES256", "EdDSA"], &real), Ok(()));
    let err = attempt(&["RS256"], &real).unwrap_err();
    assert!(err.contains("'ec-2026' is for ES256"), "{err}");
    let mut no_kid = real.clone();
    no_kid["keys"][0].as_object_mut().unwrap().remove("kid");
    let err = attempt(&["RS256", "ES256", "EdDSA"], &no_kid).unwrap_err();
    assert!(err.contains("keys[0] has no kid"), "{err}");
    let symmetric = json!({"keys": [{"kty": "oct", "kid": "s", "alg": "HS256", "k": "c2VjcmV0"}]});
    let err = attempt(&["HS256"], &symmetric).unwrap_err();
    assert!(err.contains("symmetric"), "{err}");
    let err = attempt(&["RS256"], &json!({"not": "a key set"})).unwrap_err();
    assert!(err.contains("not a JSON Web Key Set"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
