//! Hostile input, byte for byte over raw TCP: every case gets its status and a body in the
//! vendor's shape, never a 5xx, and the service answers normally afterwards with its data
//! intact.

use diesel::RunQueryDsl;
use diesel::dsl::sql;
use diesel::sql_types::BigInt;

use proptest::prelude::*;

use crate::support::{CLIENT, TestApp, raw_request, raw_request_blocking, token_for};

const PREFIX: &str = "/nevisidm/api/auth/v1";

struct Case {
    name: String,
    request: Vec<u8>,
    status: u16,
    /// The vendor error code; `None` for a 200 with a challenge.
    code: Option<&'static str>,
}

fn route(client: &str, user: &str) -> String {
    format!("{PREFIX}/{client}/users/{user}/otp/challenge")
}

/// A request head (with `Connection: close`) and body.
fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

struct Cases {
    bearer: String,
    cases: Vec<Case>,
}

impl Cases {
    fn add(
        &mut self,
        name: impl Into<String>,
        request: Vec<u8>,
        status: u16,
        code: Option<&'static str>,
    ) {
        self.cases.push(Case {
            name: name.into(),
            request,
            status,
            code,
        });
    }

    /// An authenticated POST to `path`.
    fn post(
        &mut self,
        name: impl Into<String>,
        path: &str,
        status: u16,
        code: Option<&'static str>,
    ) {
        let auth = self.bearer.clone();
        self.add(
            name,
            request("POST", path, &[("Authorization", &auth)], b""),
            status,
            code,
        );
    }

    /// An authenticated POST to the route with these path parameters.
    fn params(
        &mut self,
        name: &str,
        client: &str,
        user: &str,
        status: u16,
        code: Option<&'static str>,
    ) {
        self.post(format!("path: {name}"), &route(client, user), status, code);
    }

    /// A POST to the valid route with this `Authorization` header value (or none).
    fn auth(&mut self, name: &str, value: Option<&str>, status: u16, code: Option<&'static str>) {
        let path = route(CLIENT, "u-active");
        let headers: Vec<(&str, &str)> = value.map(|v| ("Authorization", v)).into_iter().collect();
        self.add(
            format!("auth: {name}"),
            request("POST", &path, &headers, b""),
            status,
            code,
        );
    }
}

const INVALID_PARAMETER: Option<&str> = Some("errors.invalidParameter");
const NO_RECORD: Option<&str> = Some("errors.noRecord");
const INVALID_URI: Option<&str> = Some("errors.invalidUri");
const INVALID_JWT: Option<&str> = Some("errors.invalidJWTToken");
const UNSUPPORTED: Option<&str> = Some("errors.unsupportedOperation");
const INVALID_DATA: Option<&str> = Some("errors.invalidData");
const OK: Option<&str> = None;

fn cases() -> Vec<Case> {
    let token = token_for(CLIENT, "helpdesk");
    let mut c = Cases {
        bearer: format!("Bearer {token}"),
        cases: Vec::new(),
    };
    let long = "x".repeat(10_000);
    let max = "m".repeat(255);
    let over = "m".repeat(256);

    // Path parameters.
    c.post(
        "path: empty client",
        &format!("{PREFIX}//users/u-active/otp/challenge"),
        404,
        INVALID_URI,
    );
    c.post(
        "path: empty user",
        &format!("{PREFIX}/{CLIENT}/users//otp/challenge"),
        404,
        INVALID_URI,
    );
    c.params(
        "10 000 character client",
        &long,
        "u-active",
        400,
        INVALID_PARAMETER,
    );
    c.params(
        "10 000 character user",
        CLIENT,
        &long,
        400,
        INVALID_PARAMETER,
    );
    c.params("255 byte client", &max, "u-active", 404, NO_RECORD);
    c.params("256 byte client", &over, "u-active", 400, INVALID_PARAMETER);
    c.params("256 byte user", CLIENT, &over, 400, INVALID_PARAMETER);
    c.params(
        "unicode client",
        "Z%C3%BCrich-%E6%9D%B1%E4%BA%AC",
        "u-active",
        404,
        NO_RECORD,
    );
    c.params(
        "unicode user",
        CLIENT,
        "%F0%9F%94%91-j%C3%B6rg",
        404,
        NO_RECORD,
    );
    c.params(
        "right-to-left override",
        CLIENT,
        "abc%E2%80%AEdef",
        404,
        NO_RECORD,
    );
    c.params(
        "percent-encoded slash in client",
        "client%2F123",
        "u-active",
        404,
        NO_RECORD,
    );
    c.params(
        "percent-encoded slash in user",
        CLIENT,
        "u%2Factive",
        404,
        NO_RECORD,
    );
    c.params(
        "percent-encoded dot-dot user",
        CLIENT,
        "%2E%2E",
        404,
        NO_RECORD,
    );
    c.params(
        "NUL in client",
        "client%00123",
        "u-active",
        400,
        INVALID_PARAMETER,
    );
    c.params("NUL in user", CLIENT, "u-active%00", 400, INVALID_PARAMETER);
    c.params(
        "CR LF in user",
        CLIENT,
        "u%0D%0AX-Injected:%201",
        400,
        INVALID_PARAMETER,
    );
    c.params("tab in user", CLIENT, "u%09active", 400, INVALID_PARAMETER);
    c.params("DEL in user", CLIENT, "u%7F", 400, INVALID_PARAMETER);
    c.params(
        "invalid UTF-8 in user",
        CLIENT,
        "%FF%FE",
        400,
        INVALID_PARAMETER,
    );
    c.params(
        "overlong UTF-8 slash",
        CLIENT,
        "%C0%AF",
        400,
        INVALID_PARAMETER,
    );
    c.params(
        "SQL in client",
        "x'%3B%20DROP%20TABLE%20clients%3B--",
        "u-active",
        404,
        NO_RECORD,
    );
    c.params("SQL in user", CLIENT, "'%20OR%20'1'%3D'1", 404, NO_RECORD);
    c.params("SQL comment in user", CLIENT, "u-active'--", 404, NO_RECORD);
    c.params(
        "JSON in client",
        "%7B%22a%22%3A%22b%22%7D",
        "u-active",
        404,
        NO_RECORD,
    );
    c.params(
        "JSON quote and backslash in user",
        CLIENT,
        "%22%5C%22%5Cu0000",
        404,
        NO_RECORD,
    );
    c.params("percent sign in user", CLIENT, "100%25", 404, NO_RECORD);
    c.params("LIKE wildcards in user", CLIENT, "u-%25", 404, NO_RECORD);
    c.params("dot-dot client", "..", "u-active", 404, NO_RECORD);
    c.post(
        "path: traversal out of the route",
        &format!("{PREFIX}/{CLIENT}/users/../../../etc/passwd/otp/challenge"),
        404,
        INVALID_URI,
    );
    c.post(
        "path: trailing slash",
        &format!("{}/", route(CLIENT, "u-active")),
        404,
        INVALID_URI,
    );
    c.post(
        "path: extra segment",
        &format!("{}/x", route(CLIENT, "u-active")),
        404,
        INVALID_URI,
    );
    c.post(
        "path: upper-case prefix",
        &route(CLIENT, "u-active").to_uppercase(),
        404,
        INVALID_URI,
    );
    c.post(
        "path: query string is ignored",
        &format!("{}?user=u-none", route(CLIENT, "u-active")),
        200,
        OK,
    );
    c.post(
        "path: 10 000 character unknown path",
        &format!("/{long}"),
        404,
        INVALID_URI,
    );
    c.post("path: root", "/", 404, INVALID_URI);

    // Headers.
    let big = format!("Bearer {}", "a".repeat(20_000));
    c.auth("20 kB Authorization", Some(&big), 401, INVALID_JWT);
    c.auth("missing", None, 401, INVALID_JWT);
    c.auth("empty", Some(""), 401, INVALID_JWT);
    c.auth("scheme only", Some("Bearer"), 401, INVALID_JWT);
    c.auth("scheme and space", Some("Bearer "), 401, INVALID_JWT);
    c.auth(
        "Basic scheme",
        Some("Basic aGVscGRlc2s6c2VjcmV0"),
        401,
        INVALID_JWT,
    );
    c.auth(
        "Token scheme",
        Some(&format!("Token {token}")),
        401,
        INVALID_JWT,
    );
    c.auth("no scheme", Some(&token), 401, INVALID_JWT);
    c.auth(
        "lower-case scheme",
        Some(&format!("bearer {token}")),
        200,
        OK,
    );
    c.auth(
        "upper-case scheme",
        Some(&format!("BEARER {token}")),
        200,
        OK,
    );
    c.auth("two spaces", Some(&format!("Bearer  {token}")), 200, OK);
    c.auth(
        "trailing garbage",
        Some(&format!("Bearer {token} x")),
        401,
        INVALID_JWT,
    );
    c.auth(
        "three garbage parts",
        Some("Bearer a.b.c"),
        401,
        INVALID_JWT,
    );
    c.auth(
        "JSON as token",
        Some("Bearer {\"alg\":\"none\"}"),
        401,
        INVALID_JWT,
    );
    c.auth("SQL as token", Some("Bearer ' OR 1=1 --"), 401, INVALID_JWT);
    let path = route(CLIENT, "u-active");
    c.add(
        "auth: two Authorization headers",
        request(
            "POST",
            &path,
            &[
                ("Authorization", &c.bearer.clone()),
                ("Authorization", &c.bearer.clone()),
            ],
            b"",
        ),
        401,
        INVALID_JWT,
    );
    c.add(
        "auth: non-ASCII bytes",
        {
            let mut r = request("POST", &path, &[], b"");
            let at = r.len() - 2;
            r.splice(
                at..at,
                b"Authorization: Bearer \xff\xfe\xfd\r\n".iter().copied(),
            );
            r
        },
        401,
        INVALID_JWT,
    );
    c.add(
        "auth: lower-case header name",
        request("POST", &path, &[("authorization", &c.bearer.clone())], b""),
        200,
        OK,
    );
    c.add(
        "header: hostile X-Request-Id is replaced",
        request(
            "POST",
            &path,
            &[
                ("Authorization", &c.bearer.clone()),
                ("X-Request-Id", "<script>alert(1)</script>"),
            ],
            b"",
        ),
        200,
        OK,
    );
    c.add(
        "path: bad path without a token is 401 first",
        request("POST", &route(&long, "u"), &[], b""),
        401,
        INVALID_JWT,
    );

    // Methods.
    for method in [
        "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "FOO",
    ] {
        let auth = c.bearer.clone();
        c.add(
            format!("method: {method}"),
            request(method, &path, &[("Authorization", &auth)], b""),
            405,
            UNSUPPORTED,
        );
    }

    // Bodies (the endpoint takes none; a declared body over the limit is refused unread).
    let auth = c.bearer.clone();
    let json = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    c.add("body: none", request("POST", &path, &json, b""), 200, OK);
    c.add(
        "body: malformed JSON",
        request("POST", &path, &json, b"{\"challenge\": "),
        200,
        OK,
    );
    c.add(
        "body: JSON null",
        request("POST", &path, &json, b"null"),
        200,
        OK,
    );
    c.add(
        "body: binary",
        request(
            "POST",
            &path,
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/octet-stream"),
            ],
            &[0, 159, 146, 150, 255],
        ),
        200,
        OK,
    );
    let mut ten_mb = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: {auth}\r\nContent-Length: 10485760\r\n\r\n"
    )
    .into_bytes();
    // Only the first 64 kB are sent: the answer must come without the server waiting for the
    // rest, i.e. without reading the body.
    ten_mb.extend(std::iter::repeat_n(b'x', 65_536));
    c.add("body: 10 MB declared", ten_mb, 413, INVALID_DATA);
    c.add(
        "body: 10 MB declared without a token",
        format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 10485760\r\n\r\n").into_bytes(),
        413,
        INVALID_DATA,
    );
    c.cases
}

#[actix_web::test]
async fn hostile_requests_get_a_4xx_in_the_vendor_shape_and_change_nothing() {
    let app = TestApp::spawn().await;
    let port: u16 = app.base_url.rsplit(':').next().unwrap().parse().unwrap();
    let count = |table: &str| {
        sql::<BigInt>(&format!("SELECT count(*) FROM {table}"))
            .get_result::<i64>(&mut app.db.connect())
            .unwrap()
    };
    let before: Vec<i64> = ["clients", "units", "users", "otp_cards", "authorizations"]
        .iter()
        .map(|t| count(t))
        .collect();
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let reply = raw_request(port, case.request.clone()).await;
        let verdict = check(case, &reply);
        if let Err(why) = verdict {
            failures.push(format!(
                "{}: {why}\n  got {} {}",
                case.name, reply.status, reply.body
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Nothing changed but the challenges the valid requests issued, and the service still
    // answers normally.
    let after: Vec<i64> = ["clients", "units", "users", "otp_cards", "authorizations"]
        .iter()
        .map(|t| count(t))
        .collect();
    assert_eq!(before, after);
    let reply = app.challenge("helpdesk", "u-active").await;
    assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
    println!("hostile input: {} cases, 0 5xx", cases.len());
}

fn check(case: &Case, reply: &crate::support::RawReply) -> Result<(), String> {
    if reply.status >= 500 {
        return Err("a 5xx".into());
    }
    if reply.status != case.status {
        return Err(format!("expected status {}", case.status));
    }
    if reply.header("x-request-id").is_none() {
        return Err("no X-Request-Id".into());
    }
    match case.code {
        None => {
            let challenge = reply.body["challenge"].as_str().unwrap_or("");
            if challenge.is_empty() || reply.body["status"] != "active" {
                return Err("expected a challenge".into());
            }
        }
        Some(code) => {
            if reply.header("content-type").as_deref() != Some("application/json") {
                return Err("error without application/json".into());
            }
            let errors = reply.body["errors"].as_array().ok_or("no errors array")?;
            let [entry] = errors.as_slice() else {
                return Err("not exactly one error".into());
            };
            let object = entry.as_object().ok_or("error entry not an object")?;
            if object.len() != 2 || object.get("code").and_then(|c| c.as_str()) != Some(code) {
                return Err(format!("expected exactly code {code} and a message"));
            }
            let message = object.get("message").and_then(|m| m.as_str()).unwrap_or("");
            if message.is_empty() || message.chars().any(char::is_control) {
                return Err("empty message or control characters in it".into());
            }
        }
    }
    Ok(())
}

fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

/// Fuzzing the HTTP layer: random bytes as path parameters (percent-encoded) and as the
/// token never produce a 5xx or a body outside the vendor's shape. `just fuzz` runs it with
/// many more cases.
#[actix_web::test]
async fn fuzzed_path_parameters_and_tokens_get_a_4xx_in_the_vendor_shape() {
    use proptest::test_runner::{Config, TestRunner};
    let app = TestApp::spawn().await;
    let port: u16 = app.base_url.rsplit(':').next().unwrap().parse().unwrap();
    let bearer = format!("Bearer {}", token_for(CLIENT, "helpdesk"));
    let statuses = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            failure_persistence: None,
            ..Config::default()
        });
        // Raw bytes, or printable text that passes the ext-id rules and reaches the database.
        let segment = || {
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..300),
                "\\PC{1,60}".prop_map(String::into_bytes),
            ]
        };
        let strategy = (segment(), segment(), "[ -~]{0,200}", any::<bool>());
        let seen = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
        runner
            .run(&strategy, |(client, user, token, with_valid_token)| {
                let path = route(&percent_encode(&client), &percent_encode(&user));
                let auth = if with_valid_token {
                    bearer.clone()
                } else {
                    format!("Bearer {token}")
                };
                let reply = raw_request_blocking(
                    port,
                    &request("POST", &path, &[("Authorization", &auth)], b""),
                );
                *seen.borrow_mut().entry(reply.status).or_default() += 1;
                prop_assert!(reply.status < 500, "{} for {path}", reply.status);
                if reply.status != 200 {
                    let code = reply.body["errors"][0]["code"].as_str().unwrap_or("");
                    prop_assert!(code.starts_with("errors."), "{}", reply.body);
                    prop_assert!(reply.body["errors"][0]["message"].is_string());
                }
                Ok(())
            })
            .unwrap();
        seen.into_inner()
    })
    .await
    .unwrap();
    println!("HTTP fuzz: statuses {statuses:?}");
    assert!(statuses.keys().all(|s| *s < 500));
    // The service still answers normally.
    assert_eq!(
        app.challenge("helpdesk", "u-active").await.status.as_u16(),
        200
    );
}
