//! Spawning the application and talking to it.

use std::path::PathBuf;

use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use idm_otp_adapters::{CardCodeHasher, fixtures::load_fixtures, run_migrations};
use idm_otp_server::{Application, Settings};
use idm_otp_test_support::TestDatabase;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde_json::{Value, json};

pub const HS256_SECRET: &str = "test-hs256-secret-0123456789-abcdefghij";
pub const HMAC_KEY: &str = "test-card-hmac-key-0123456789";
pub const ISSUER: &str = "https://idm.test";
pub const AUDIENCE: &str = "nevisidm-test";
pub const CLIENT: &str = "client-123";
pub const CHALLENGE_ROUTE: &str = "/nevisidm/api/auth/v1";

pub fn key_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/api/keys")
        .join(name)
}

/// Settings for a test: defaults, then this database, test secrets and port 0.
pub fn settings(database_url: &str) -> Settings {
    let mut settings = Settings::load(None).unwrap();
    settings.server.bind = "127.0.0.1:0".into();
    settings.server.workers = 2;
    settings.database.url = Some(SecretString::from(database_url.to_owned()));
    settings.database.pool_size = 4;
    settings.database.min_idle = 0;
    settings.database.connect_timeout_ms = 1000;
    settings.auth.hs256_secret = Some(SecretString::from(HS256_SECRET.to_owned()));
    settings.auth.issuer = ISSUER.into();
    settings.auth.audience = AUDIENCE.into();
    settings.auth.algorithms = vec!["HS256".into()];
    settings.cards.hmac_key = Some(SecretString::from(HMAC_KEY.to_owned()));
    settings
}

fn codes(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("cc{:04}zz", (i * 7919) % 10_000))
        .collect()
}

/// One target user per case: `u-<state>` holds a 12x14 card in that state, plus users for
/// validity, exhaustion, no card, a 20-row card and a unit outside a caller's data room.
pub fn fixtures() -> Value {
    let states = [
        "initial",
        "active",
        "tmp-locked",
        "fail-locked",
        "reset-code",
        "admin-changed",
        "disabled",
    ];
    let mut users = vec![
        json!({"extId": "helpdesk", "client": CLIENT, "unit": "root", "loginId": "helpdesk"}),
        json!({"extId": "branch-desk", "client": CLIENT, "unit": "root", "loginId": "branchdesk"}),
        json!({"extId": "no-rights", "client": CLIENT, "unit": "root", "loginId": "norights"}),
        json!({"extId": "other-desk", "client": CLIENT, "unit": "root", "loginId": "otherdesk"}),
        json!({"extId": "seq-desk", "client": "client-seq", "unit": "seq-root", "loginId": "seqdesk"}),
    ];
    let mut cards = Vec::new();
    let mut card = |ext: &str, user: &str, extra: Value| {
        let mut c = json!({"extId": ext, "client": CLIENT, "user": user, "state": "active",
                           "created": "2026-01-01T00:00:00Z", "rows": 12, "columns": 14,
                           "codes": codes(168)});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        cards.push(c);
    };
    for state in states {
        users.push(
            json!({"extId": format!("u-{state}"), "client": CLIENT, "unit": "branch",
                          "loginId": format!("l-{state}")}),
        );
        card(
            &format!("card-{state}"),
            &format!("u-{state}"),
            json!({"state": state}),
        );
    }
    for (user, extra) in [
        ("u-expired", json!({"validTo": "2026-01-02T00:00:00Z"})),
        ("u-future", json!({"validFrom": "2099-01-01T00:00:00Z"})),
        (
            "u-exhausted",
            json!({"rows": 2, "columns": 2, "codes": codes(4), "usedCells": [0, 1, 2, 3]}),
        ),
        (
            "u-one-left",
            json!({"rows": 2, "columns": 2, "codes": codes(4), "usedCells": [0, 1, 3]}),
        ),
        (
            "u-tall",
            json!({"rows": 20, "columns": 14, "codes": codes(280)}),
        ),
        ("u-archived", json!({"state": "archived"})),
        (
            "u-newest-disabled",
            json!({"state": "disabled", "created": "2026-06-01T00:00:00Z"}),
        ),
    ] {
        users.push(json!({"extId": user, "client": CLIENT, "unit": "branch", "loginId": format!("l{user}")}));
        card(&format!("card-{user}"), user, extra);
    }
    card(
        "card-older-active",
        "u-newest-disabled",
        json!({"created": "2025-01-01T00:00:00Z"}),
    );
    users.push(json!({"extId": "u-none", "client": CLIENT, "unit": "branch", "loginId": "lnone"}));
    users.push(json!({"extId": "u-side", "client": CLIENT, "unit": "side", "loginId": "lside"}));
    card("card-u-side", "u-side", json!({}));
    users.push(
        json!({"extId": "s-user", "client": "client-seq", "unit": "seq-root", "loginId": "s"}),
    );
    cards.push(
        json!({"extId": "card-s", "client": "client-seq", "user": "s-user",
                      "state": "active", "rows": 12, "columns": 14}),
    );
    json!({
        "clients": [
            {"extId": CLIENT, "name": "Default",
             "otpPolicy": {"coordinateCardFormat": true, "challengeLifetimeSeconds": 120}},
            {"extId": "client-seq", "name": "Sequential",
             "otpPolicy": {"challengeLifetimeSeconds": 0}}
        ],
        "units": [
            {"extId": "root", "client": CLIENT, "name": "Head office"},
            {"extId": "branch", "client": CLIENT, "name": "Branch", "parent": "root"},
            {"extId": "side", "client": CLIENT, "name": "Side office", "parent": "root"},
            {"extId": "seq-root", "client": "client-seq", "name": "Root"}
        ],
        "users": users,
        "otpCards": cards,
        "roles": [
            {"name": "Helpdesk", "rights": ["AccessControl.CredentialView"]},
            {"name": "Reader", "rights": ["AccessControl.UserView"]}
        ],
        "authorizations": [
            {"client": CLIENT, "user": "helpdesk", "role": "Helpdesk",
             "clientDataroom": "*", "unitDataroom": "*"},
            {"client": CLIENT, "user": "branch-desk", "role": "Helpdesk",
             "clientDataroom": [CLIENT], "unitDataroom": ["branch"]},
            {"client": CLIENT, "user": "no-rights", "role": "Reader",
             "clientDataroom": "*", "unitDataroom": "*"},
            {"client": CLIENT, "user": "other-desk", "role": "Helpdesk",
             "clientDataroom": ["client-seq"], "unitDataroom": "*"},
            {"client": "client-seq", "user": "seq-desk", "role": "Helpdesk",
             "clientDataroom": "*", "unitDataroom": "*"}
        ]
    })
}

pub struct TestApp {
    _secrets: crate::logs::SecretsCheck,
    pub db: TestDatabase,
    pub base_url: String,
    pub settings: Settings,
    handle: actix_web::dev::ServerHandle,
    client: awc::Client,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The vendor's error shape, asserted; returns (code, message).
    pub fn error(&self) -> (String, String) {
        assert_eq!(
            self.headers
                .get("content-type")
                .map(|v| v.to_str().unwrap()),
            Some("application/json"),
            "error without JSON content type: {:?}",
            self.body
        );
        let errors = self.body["errors"].as_array().expect("errors array");
        assert_eq!(errors.len(), 1, "{:?}", self.body);
        let entry = errors[0].as_object().unwrap();
        assert_eq!(entry.len(), 2, "only code and message: {entry:?}");
        (
            entry["code"].as_str().unwrap().to_owned(),
            entry["message"].as_str().unwrap().to_owned(),
        )
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDatabase::create();
        let mut conn = db.connect();
        run_migrations(&mut conn).unwrap();
        let hasher = CardCodeHasher::new(HMAC_KEY.as_bytes()).unwrap();
        load_fixtures(&mut conn, &fixtures().to_string(), &hasher).unwrap();
        let mut settings = settings(db.url());
        configure(&mut settings);
        Self::start(db, settings)
    }

    pub fn start(db: TestDatabase, settings: Settings) -> Self {
        crate::logs::capture();
        let app = Application::build(&settings).unwrap();
        let base_url = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        actix_web::rt::spawn(app.run_until_stopped());
        Self {
            _secrets: crate::logs::SecretsCheck,
            db,
            base_url,
            settings,
            handle,
            client: awc::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .finish(),
        }
    }

    /// Stops the server (graceful) and returns its database and settings for a restart.
    pub async fn stop(self) -> (TestDatabase, Settings) {
        self.handle.stop(true).await;
        (self.db, self.settings)
    }

    pub fn token(&self, caller: &str) -> String {
        token_for(CLIENT, caller)
    }

    pub fn challenge_url(&self, client: &str, user: &str) -> String {
        format!(
            "{}{CHALLENGE_ROUTE}/{client}/users/{user}/otp/challenge",
            self.base_url
        )
    }

    pub async fn challenge(&self, caller: &str, user: &str) -> Reply {
        self.challenge_in(CLIENT, caller, user).await
    }

    pub async fn challenge_in(&self, client: &str, caller: &str, user: &str) -> Reply {
        self.challenge_by(CLIENT, caller, client, user).await
    }

    /// A call by `caller` of `caller_client` for `user` of `client`.
    pub async fn challenge_by(
        &self,
        caller_client: &str,
        caller: &str,
        client: &str,
        user: &str,
    ) -> Reply {
        let token = token_for(caller_client, caller);
        self.send(
            self.client
                .post(self.challenge_url(client, user))
                .insert_header(("Authorization", format!("Bearer {token}"))),
        )
        .await
    }

    /// A challenge request for `user` of the default client by `caller`, not yet sent.
    pub fn authorized_post(&self, caller: &str, user: &str) -> awc::ClientRequest {
        self.client
            .post(self.challenge_url(CLIENT, user))
            .insert_header(("Authorization", format!("Bearer {}", self.token(caller))))
    }

    pub async fn send(&self, request: awc::ClientRequest) -> Reply {
        self.send_body(request, "").await
    }

    pub async fn send_body(&self, request: awc::ClientRequest, body: &'static str) -> Reply {
        let mut response = request.send_body(body).await.expect("request failed");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.body().limit(1 << 20).await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn http(&self) -> &awc::Client {
        &self.client
    }

    /// The stored pending challenge cell of a card, straight from the database.
    pub fn stored_cell(&self, card: &str) -> Option<i16> {
        use diesel::prelude::*;
        use idm_otp_adapters::schema::otp_cards;
        otp_cards::table
            .filter(otp_cards::ext_id.eq(card))
            .select(otp_cards::challenge_cell)
            .first::<Option<i16>>(&mut self.db.connect())
            .unwrap()
    }
}

pub fn claims(client: &str, user: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": user, "client": client, "iss": ISSUER, "aud": AUDIENCE,
           "iat": now, "exp": now + 600})
}

pub fn sign(claims: &Value, algorithm: Algorithm, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), claims, key).unwrap()
}

pub fn hs256(claims: &Value, secret: &str) -> String {
    sign(
        claims,
        Algorithm::HS256,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
}

pub fn token_for(client: &str, user: &str) -> String {
    hs256(&claims(client, user), HS256_SECRET)
}

/// A reply read off the wire by [`raw_request`].
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub head: String,
    pub body: Value,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }
}

/// Sends `request` (a whole HTTP/1.1 request head, plus any body bytes) as is over a fresh
/// connection and reads the answer until the server closes it, so tests control every byte.
pub async fn raw_request(port: u16, request: Vec<u8>) -> RawReply {
    tokio::task::spawn_blocking(move || raw_request_blocking(port, &request))
        .await
        .unwrap()
}

/// [`raw_request`], blocking the calling thread (the server runs on its own threads).
pub fn raw_request_blocking(port: u16, request: &[u8]) -> RawReply {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    // The server may answer and close before taking everything (an oversized body).
    let _ = stream.write_all(request);
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body:?}"))
    };
    RawReply {
        status,
        head: head.to_owned(),
        body,
    }
}
