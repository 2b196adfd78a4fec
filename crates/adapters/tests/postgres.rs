//! The adapters against a real PostgreSQL: one fresh database per test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout
)]

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::Text;
use idm_otp_adapters::fixtures::{FixtureError, load_fixtures};
use idm_otp_adapters::migrate::revert_all_migrations;
use idm_otp_adapters::{CardCodeHasher, PgStore, PoolOptions, build_pool, run_migrations};
use idm_otp_domain::{
    Caller, CallerGrants, ChallengeRepository, ChallengeRequest, ChallengeService, ClientExtId,
    CredentialState, ErrorCategory, Grants, OutcomeKind, PendingChallenge, PermissionChecker,
    PortErrorKind, Right, StoreOutcome, SystemClock, SystemRandom, TargetLookup, UserExtId,
};
use idm_otp_test_support::TestDatabase;
use proptest::prelude::*;
use serde_json::{Value, json};

const HMAC_KEY: &[u8] = b"test-card-hmac-key-0123456789";

fn hasher() -> CardCodeHasher {
    CardCodeHasher::new(HMAC_KEY).unwrap()
}

struct Db {
    db: TestDatabase,
}

impl Db {
    fn migrated() -> Self {
        let db = TestDatabase::create();
        run_migrations(&mut db.connect()).unwrap();
        Self { db }
    }

    fn load(&self, doc: &Value) -> Result<(), FixtureError> {
        load_fixtures(&mut self.db.connect(), &doc.to_string(), &hasher()).map(|_| ())
    }

    fn store(&self, options: PoolOptions) -> PgStore {
        PgStore::new(build_pool(self.db.url(), &options).unwrap())
    }

    /// Every row of every table, as text, for "nothing changed" comparisons.
    fn snapshot(&self) -> String {
        #[derive(QueryableByName)]
        struct Dump {
            #[diesel(sql_type = Text)]
            dump: String,
        }
        let tables = [
            "clients",
            "units",
            "users",
            "otp_cards",
            "roles",
            "role_rights",
            "authorizations",
            "authorization_clients",
            "authorization_units",
        ];
        let mut conn = self.db.connect();
        tables
            .iter()
            .map(|t| {
                diesel::sql_query(format!(
                    "SELECT coalesce(string_agg(t::text, '\n' ORDER BY t::text), '') AS dump FROM {t} t"
                ))
                .get_result::<Dump>(&mut conn)
                .unwrap()
                .dump
            })
            .collect::<Vec<_>>()
            .join("\n--\n")
    }

    fn exec(&self, sql: &str) {
        diesel::sql_query(sql)
            .execute(&mut self.db.connect())
            .unwrap();
    }
}

fn codes(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:04}")).collect()
}

/// The example file, completed: two clients, a unit tree, a target user with
/// cards, and callers with different data rooms.
fn example() -> Value {
    json!({
      "clients": [
        {"extId": "client-123", "name": "Default",
         "otpPolicy": {"coordinateCardFormat": true, "challengeLifetimeSeconds": 120}},
        {"extId": "client-456", "name": "Other"}
      ],
      "units": [
        {"extId": "u-branch", "client": "client-123", "name": "Branch", "parent": "u-root"},
        {"extId": "u-root", "client": "client-123", "name": "Head office"},
        {"extId": "u-desk", "client": "client-123", "name": "Desk", "parent": "u-branch"},
        {"extId": "u-side", "client": "client-123", "name": "Side", "parent": "u-root"},
        {"extId": "o-root", "client": "client-456", "name": "Other root"}
      ],
      "users": [
        {"extId": "user-123", "client": "client-123", "unit": "u-desk", "loginId": "jdoe"},
        {"extId": "admin-1", "client": "client-123", "unit": "u-root", "loginId": "helpdesk1"},
        {"extId": "admin-2", "client": "client-123", "unit": "u-root", "loginId": "helpdesk2"},
        {"extId": "admin-3", "client": "client-123", "unit": "u-root", "loginId": "helpdesk3"},
        {"extId": "nobody", "client": "client-123", "unit": "u-root", "loginId": "nobody"},
        {"extId": "other-user", "client": "client-456", "unit": "o-root", "loginId": "o"}
      ],
      "otpCards": [
        {"extId": "card-old", "client": "client-123", "user": "user-123", "state": "active",
         "created": "2025-01-01T00:00:00Z", "rows": 12, "columns": 14,
         "codes": codes(168, "O")},
        {"extId": "card-1", "client": "client-123", "user": "user-123", "state": "active",
         "created": "2026-01-01T00:00:00Z",
         "validFrom": "2026-01-01T00:00:00Z", "validTo": "2036-01-01T00:00:00Z",
         "rows": 12, "columns": 14, "codes": codes(168, "Q"), "usedCells": [0, 5]},
        {"extId": "card-archived", "client": "client-123", "user": "user-123",
         "state": "archived", "created": "2026-06-01T00:00:00Z", "rows": 2, "columns": 2}
      ],
      "roles": [
        {"name": "Helpdesk", "rights": ["AccessControl.CredentialView"]},
        {"name": "Viewer", "rights": ["AccessControl.UserView"]}
      ],
      "authorizations": [
        {"client": "client-123", "user": "admin-1", "role": "Helpdesk",
         "clientDataroom": "*", "unitDataroom": ["u-branch"]},
        {"client": "client-123", "user": "admin-2", "role": "Helpdesk",
         "clientDataroom": ["client-456"], "unitDataroom": "*"},
        {"client": "client-123", "user": "admin-3", "role": "Helpdesk",
         "clientDataroom": ["client-123"], "unitDataroom": ["u-side"]},
        {"client": "client-123", "user": "admin-3", "role": "Viewer",
         "clientDataroom": "*", "unitDataroom": "*"}
      ]
    })
}

fn client() -> ClientExtId {
    ClientExtId::parse("client-123").unwrap()
}

fn user(ext: &str) -> UserExtId {
    UserExtId::parse(ext).unwrap()
}

fn caller(ext: &str) -> Caller {
    Caller {
        client: client(),
        user: user(ext),
    }
}

fn request(caller_ext: &str) -> ChallengeRequest {
    ChallengeRequest {
        caller: caller(caller_ext),
        client: client(),
        user: user("user-123"),
    }
}

fn service(store: &PgStore) -> ChallengeService<PgStore, PgStore, SystemClock, SystemRandom> {
    ChallengeService::new(store.clone(), store.clone(), SystemClock, SystemRandom)
}

#[test]
fn migrations_apply_revert_and_apply_again() {
    let db = TestDatabase::create();
    let mut conn = db.connect();
    assert_eq!(run_migrations(&mut conn).unwrap().len(), 1);
    assert!(run_migrations(&mut conn).unwrap().is_empty());
    revert_all_migrations(&mut conn).unwrap();
    assert_eq!(run_migrations(&mut conn).unwrap().len(), 1);
}

#[test]
fn loading_the_example_twice_changes_nothing() {
    let db = Db::migrated();
    db.load(&example()).unwrap();
    let first = db.snapshot();
    assert!(first.contains("client-123"));
    db.load(&example()).unwrap();
    assert_eq!(db.snapshot(), first);
}

#[test]
fn generated_codes_survive_a_reload_and_no_plaintext_code_is_stored() {
    let db = Db::migrated();
    let mut doc = example();
    doc["otpCards"][2].as_object_mut().unwrap().remove("codes");
    db.load(&doc).unwrap();
    let first = db.snapshot();
    db.load(&doc).unwrap();
    assert_eq!(db.snapshot(), first, "random codes regenerated on reload");
    // The given codes (Q0000.., O0000..) appear nowhere; their digests do.
    for code in codes(168, "Q").iter().chain(codes(168, "O").iter()) {
        assert!(
            !first.contains(code.as_str()),
            "plaintext code {code} stored"
        );
    }
    #[derive(QueryableByName)]
    struct Card {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: uuid::Uuid,
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        digest: Vec<u8>,
    }
    let card: Card = diesel::sql_query(
        "SELECT id, code_hashes[8] AS digest FROM otp_cards WHERE ext_id = 'card-1'",
    )
    .get_result(&mut db.db.connect())
    .unwrap();
    assert!(hasher().matches(card.id, 7, "Q0007", &card.digest));
    assert!(!hasher().matches(card.id, 7, "Q0008", &card.digest));
}

/// Bad files: each refused with a message naming the entry and value; nothing written.
#[test]
fn bad_fixture_files_are_refused_whole() {
    let db = Db::migrated();
    db.load(&json!({"clients": [{"extId": "pre", "name": "Existing"}]}))
        .unwrap();
    let before = db.snapshot();
    let base = example();
    let with = |pointer: &str, value: Value| {
        let mut doc = base.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        doc.pointer_mut(parent).unwrap()[key] = value;
        doc.to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        (
            with("/authorizations/3/role", json!("NoSuchRole")),
            "authorizations[3]: unknown role 'NoSuchRole'",
        ),
        (
            with("/otpCards/1/codes", json!(["1", "2", "3"])),
            "otpCards[1]: expected 168 codes (12 x 14), got 3",
        ),
        (
            with("/otpCards/0/state", json!("frozen")),
            "otpCards[0]: unknown credential state 'frozen'",
        ),
        ("{\"clients\": [".to_owned(), "malformed fixture file"),
        (
            with("/users/0/unit", json!("u-nowhere")),
            "users[0]: unknown unit 'u-nowhere' in client 'client-123'",
        ),
        (
            with("/users/0/client", json!("client-999")),
            "users[0]: unknown client 'client-999'",
        ),
        (
            with("/otpCards/1/usedCells", json!([0, 168])),
            "otpCards[1]: usedCells: cell index 168 is outside a card of 168 cells",
        ),
        (
            with("/otpCards/1/rows", json!(100)),
            "otpCards[1]: rows must be between 1 and 99, got 100",
        ),
        (
            with("/otpCards/1/validTo", json!("2025-01-01T00:00:00Z")),
            "otpCards[1]: validity period is empty",
        ),
        (
            with("/units/0/parent", json!("u-missing")),
            "units[0]: unknown parent 'u-missing' in client 'client-123'",
        ),
        (
            with("/authorizations/0/clientDataroom", json!("all")),
            "authorizations[0]: clientDataroom must be \"*\" or a list, got 'all'",
        ),
        (
            with("/authorizations/1/unitDataroom", json!(["u-gone"])),
            "authorizations[1]: unitDataroom: unknown unit 'u-gone' in client 'client-123'",
        ),
        (
            with("/clients/1/extId", json!("")),
            "clients[1]: extId '': clientExtId must not be empty",
        ),
        (
            with("/users/1/extId", json!("user-123")),
            "users[1]: duplicate user 'user-123' in client 'client-123' (first in users[0])",
        ),
        (
            with("/otpCards/0/rows", json!("twelve")),
            "malformed fixture file at otpCards[0].rows: invalid type: string \"twelve\"",
        ),
        (
            with("/clients/0/colour", json!("red")),
            "malformed fixture file at clients[0].colour: unknown field `colour`",
        ),
        (
            with("/units/1/parent", json!("u-desk")),
            "units[0]: parent 'u-root' in client 'client-123' is part of a cycle",
        ),
    ];
    assert!(cases.len() >= 10);
    for (file, expected) in &cases {
        let err = load_fixtures(&mut db.db.connect(), file, &hasher()).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(expected),
            "expected {expected:?}, got {message:?}"
        );
        assert_eq!(
            db.snapshot(),
            before,
            "database changed by a refused file: {expected}"
        );
    }
}

#[test]
fn a_third_card_that_is_not_archived_is_refused_by_the_database() {
    let db = Db::migrated();
    let mut doc = example();
    doc["otpCards"][2]["state"] = json!("initial");
    let err = db.load(&doc).unwrap_err().to_string();
    assert_eq!(
        err,
        "otpCards[2]: user 'user-123' already holds two OTP cards that are not archived"
    );
    assert_eq!(db.snapshot().matches("card-").count(), 0);
}

#[tokio::test]
async fn load_target_selects_the_most_recent_card_that_is_not_archived() {
    let db = Db::migrated();
    db.load(&example()).unwrap();
    let store = db.store(PoolOptions::default());
    let TargetLookup::Found {
        client: c,
        user: u,
        credential,
    } = store
        .load_target(&client(), &user("user-123"))
        .await
        .unwrap()
    else {
        panic!("not found")
    };
    assert_eq!(c.name, "Default");
    assert!(c.policy.coordinate_card_format);
    assert_eq!(u.scope.unit_path.len(), 3, "root > branch > desk");
    let card = credential.unwrap();
    assert_eq!(card.ext_id.as_str(), "card-1");
    assert_eq!(card.state, CredentialState::Active);
    assert_eq!(card.card.unused_count(), 166);
    assert!(card.pending.is_none());

    // Ties on creation time go to the later insertion; archived cards never count.
    db.exec("UPDATE otp_cards SET created_at = '2026-01-01T00:00:00Z'");
    let TargetLookup::Found { credential, .. } = store
        .load_target(&client(), &user("user-123"))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(credential.unwrap().ext_id.as_str(), "card-1");
    db.exec("UPDATE otp_cards SET state = 'archived'");
    let TargetLookup::Found { credential, .. } = store
        .load_target(&client(), &user("user-123"))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(credential.is_none());

    assert_eq!(
        store
            .load_target(&ClientExtId::parse("nope").unwrap(), &user("user-123"))
            .await
            .unwrap(),
        TargetLookup::ClientNotFound
    );
    assert!(matches!(
        store.load_target(&client(), &user("other-user")).await.unwrap(),
        TargetLookup::UserNotFound { client } if client.name == "Default"
    ));
}

#[tokio::test]
async fn data_rooms_global_lists_sub_units_and_combined() {
    let db = Db::migrated();
    db.load(&example()).unwrap();
    let store = db.store(PoolOptions::default());
    let TargetLookup::Found { user: target, .. } = store
        .load_target(&client(), &user("user-123"))
        .await
        .unwrap()
    else {
        panic!()
    };
    let right = Right::CREDENTIAL_VIEW;
    let decide = |grants: CallerGrants| match grants {
        CallerGrants::Known(list) => {
            Grants::holding(list).map(|g| g.authorize(&target.scope).is_some())
        }
        CallerGrants::UnknownCaller => panic!("unknown"),
    };
    // admin-1: all clients, unit branch: covers the desk below it.
    assert_eq!(
        decide(store.grants(&caller("admin-1"), right).await.unwrap()),
        Some(true)
    );
    // admin-2: all units but only client-456.
    assert_eq!(
        decide(store.grants(&caller("admin-2"), right).await.unwrap()),
        Some(false)
    );
    // admin-3: client-123 but only unit u-side; its global Viewer role lacks the right.
    assert_eq!(
        decide(store.grants(&caller("admin-3"), right).await.unwrap()),
        Some(false)
    );
    // nobody: exists, no authorization at all.
    assert_eq!(
        decide(store.grants(&caller("nobody"), right).await.unwrap()),
        None
    );
    assert_eq!(
        store.grants(&caller("ghost"), right).await.unwrap(),
        CallerGrants::UnknownCaller
    );
    // A grant whose unit room lists a unit above the target's covers it; one below does not.
    db.exec(
        "UPDATE authorization_units SET unit_id = (SELECT id FROM units WHERE ext_id = 'u-root')",
    );
    assert_eq!(
        decide(store.grants(&caller("admin-3"), right).await.unwrap()),
        Some(true)
    );
}

#[tokio::test]
async fn a_challenge_is_stored_then_re_served() {
    let db = Db::migrated();
    db.load(&example()).unwrap();
    let store = db.store(PoolOptions::default());
    let first = service(&store)
        .generate_challenge(&request("admin-1"))
        .await
        .unwrap();
    assert_eq!(first.kind, OutcomeKind::Issued);
    let label = first.challenge.unwrap();
    assert!(
        label.cell().get() != 0 && label.cell().get() != 5,
        "used cell issued"
    );
    let again = service(&store)
        .generate_challenge(&request("admin-1"))
        .await
        .unwrap();
    assert_eq!(again.kind, OutcomeKind::ReServed);
    assert_eq!(again.challenge, Some(label));
    let TargetLookup::Found { credential, .. } = store
        .load_target(&client(), &user("user-123"))
        .await
        .unwrap()
    else {
        panic!()
    };
    let card = credential.unwrap();
    assert_eq!(card.pending.unwrap().cell, label.cell());
    assert_eq!(card.version.0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_on_one_card_store_exactly_one_challenge() {
    let db = Db::migrated();
    db.load(&example()).unwrap();
    let store = db.store(PoolOptions {
        max_size: 16,
        ..PoolOptions::default()
    });
    // Repository level: 16 writers with the same expected version; one wins.
    let TargetLookup::Found { credential, .. } = store
        .load_target(&client(), &user("user-123"))
        .await
        .unwrap()
    else {
        panic!()
    };
    let card = credential.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let (store, barrier, card) = (store.clone(), barrier.clone(), card.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let challenge = PendingChallenge {
                cell: card.card.grid().cell(10 + i).unwrap(),
                issued_at: Utc::now(),
            };
            store
                .store_challenge(card.id, card.version, challenge)
                .await
                .unwrap()
        }));
    }
    let mut stored = 0;
    for task in tasks {
        if task.await.unwrap() == StoreOutcome::Stored {
            stored += 1;
        }
    }
    assert_eq!(stored, 1);

    // Service level, lifetime 0: 32 overlapping calls, no error, and every call that lost a
    // race answers with a challenge that was stored.
    db.exec("UPDATE clients SET challenge_lifetime_seconds = 0");
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            service(&store)
                .generate_challenge(&request("admin-1"))
                .await
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(
            task.await
                .unwrap()
                .expect("no call may fail under contention"),
        );
    }
    assert!(outcomes.iter().all(|o| o.challenge.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_calls_with_a_lifetime_all_get_the_stored_challenge() {
    let db = Db::migrated();
    db.load(&example()).unwrap();
    let store = db.store(PoolOptions {
        max_size: 16,
        ..PoolOptions::default()
    });
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            service(&store)
                .generate_challenge(&request("admin-1"))
                .await
                .unwrap()
        }));
    }
    let mut labels = std::collections::HashSet::new();
    let mut issued = 0;
    for task in tasks {
        let outcome = task.await.unwrap();
        issued += usize::from(outcome.kind == OutcomeKind::Issued);
        labels.insert(outcome.challenge.unwrap());
    }
    assert_eq!(labels.len(), 1, "overlapping calls disagreed: {labels:?}");
    assert_eq!(issued, 1);
    let TargetLookup::Found { credential, .. } = store
        .load_target(&client(), &user("user-123"))
        .await
        .unwrap()
    else {
        panic!()
    };
    let stored = credential.unwrap().pending.unwrap().cell;
    assert_eq!(labels.into_iter().next().unwrap().cell(), stored);
}

#[tokio::test]
async fn an_exhausted_pool_is_unavailable_not_an_error() {
    let db = Db::migrated();
    db.load(&example()).unwrap();
    let store = db.store(PoolOptions {
        max_size: 1,
        min_idle: 1,
        connection_timeout: Duration::from_millis(300),
        ..PoolOptions::default()
    });
    let held = store.pool().get().unwrap();
    let err = store
        .load_target(&client(), &user("user-123"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PortErrorKind::Unavailable);
    let err = service(&store)
        .generate_challenge(&request("admin-1"))
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Unavailable);
    drop(held);
    assert!(
        store
            .load_target(&client(), &user("user-123"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable() {
    // A port nothing listens on: connection refused.
    let pool = build_pool(
        "postgres://idm_otp@127.0.0.1:1/idm_otp",
        &PoolOptions {
            connection_timeout: Duration::from_millis(300),
            ..PoolOptions::default()
        },
    )
    .unwrap();
    let store = PgStore::new(pool);
    let err = store
        .grants(&caller("admin-1"), Right::CREDENTIAL_VIEW)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PortErrorKind::Unavailable);
}

#[tokio::test]
async fn a_statement_timeout_is_unavailable_and_the_connection_stays_usable() {
    let db = Db::migrated();
    db.load(&example()).unwrap();
    let store = db.store(PoolOptions {
        max_size: 1,
        min_idle: 1,
        statement_timeout: Duration::from_millis(200),
        ..PoolOptions::default()
    });
    let TargetLookup::Found { credential, .. } = store
        .load_target(&client(), &user("user-123"))
        .await
        .unwrap()
    else {
        panic!()
    };
    let card = credential.unwrap();
    // Another session holds the card's row lock, so the write waits past the timeout.
    let mut locker = db.db.connect();
    diesel::sql_query("BEGIN").execute(&mut locker).unwrap();
    diesel::sql_query("SELECT 1 FROM otp_cards WHERE ext_id = 'card-1' FOR UPDATE")
        .execute(&mut locker)
        .unwrap();
    let challenge = PendingChallenge {
        cell: card.card.grid().cell(9).unwrap(),
        issued_at: Utc::now(),
    };
    let err = store
        .store_challenge(card.id, card.version, challenge)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PortErrorKind::Unavailable);
    diesel::sql_query("ROLLBACK").execute(&mut locker).unwrap();
    assert_eq!(
        store
            .store_challenge(card.id, card.version, challenge)
            .await
            .unwrap(),
        StoreOutcome::Stored
    );
}

#[tokio::test]
async fn a_lost_connection_is_replaced_by_the_pool() {
    let db = Db::migrated();
    db.load(&example()).unwrap();
    let store = db.store(PoolOptions {
        max_size: 1,
        min_idle: 1,
        ..PoolOptions::default()
    });
    assert!(
        store
            .load_target(&client(), &user("user-123"))
            .await
            .is_ok()
    );
    // Kill the pooled connection's server process, as a PostgreSQL restart would.
    db.exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    let err = store
        .load_target(&client(), &user("user-123"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PortErrorKind::Unavailable);
    assert!(
        store
            .load_target(&client(), &user("user-123"))
            .await
            .is_ok()
    );
}

/// Every JSON pointer of a document.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                pointers(child, format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// One random change to the example file, as text.
fn mutate(kind: u8, node: prop::sample::Index, pick: prop::sample::Index, noise: &str) -> String {
    let mut doc = example();
    let mut paths = Vec::new();
    pointers(&doc, String::new(), &mut paths);
    let path = node.get(&paths).clone();
    let odd = [
        Value::Null,
        json!(true),
        json!(-1),
        json!(0),
        json!(1e308),
        json!(""),
        json!("x".repeat(300)),
        json!("nul\u{0}"),
        json!([]),
        json!({}),
        json!("NoSuchRole"),
        json!(100_000),
        json!("2026-13-45T99:00:00Z"),
        json!(noise),
    ];
    match kind {
        0 | 1 if !path.is_empty() => {
            let (parent, key) = path.rsplit_once('/').unwrap();
            let parent = doc.pointer_mut(parent).unwrap();
            match (parent, kind) {
                (Value::Object(map), 0) => {
                    map.remove(key);
                }
                (Value::Array(items), 0) => {
                    items.remove(key.parse::<usize>().unwrap());
                }
                (Value::Array(items), _) => {
                    let copy = items[key.parse::<usize>().unwrap()].clone();
                    items.push(copy);
                }
                (parent, _) => {
                    *parent.pointer_mut(&format!("/{key}")).unwrap() = pick.get(&odd).clone()
                }
            }
            doc.to_string()
        }
        2 => {
            *doc.pointer_mut(&path).unwrap() = pick.get(&odd).clone();
            doc.to_string()
        }
        3 => {
            let text = doc.to_string();
            let cut = pick.index(text.len());
            String::from_utf8_lossy(&text.as_bytes()[..cut]).into_owned()
        }
        _ => {
            let mut text = doc.to_string();
            let at = pick.index(text.len());
            let at = (0..=at)
                .rev()
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(0);
            text.insert_str(at, noise);
            text
        }
    }
}

/// Fuzzing the fixture format: any change to a valid file either loads or is refused with
/// nothing written, and never panics. `just fuzz` runs it with many more cases.
#[test]
fn fuzzed_fixture_files_load_whole_or_not_at_all() {
    use proptest::test_runner::{Config, TestRunner};
    let db = Db::migrated();
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        0u8..5,
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        "\\PC{0,12}",
    );
    let refused = std::cell::Cell::new(0u32);
    let loaded = std::cell::Cell::new(0u32);
    runner
        .run(&strategy, |(kind, node, pick, noise)| {
            let text = mutate(kind, node, pick, &noise);
            let before = db.snapshot();
            match load_fixtures(&mut db.db.connect(), &text, &hasher()) {
                Ok(_) => loaded.set(loaded.get() + 1),
                Err(err) => {
                    refused.set(refused.get() + 1);
                    prop_assert!(!err.to_string().is_empty());
                    prop_assert_eq!(db.snapshot(), before, "refused but changed: {}", err);
                }
            }
            Ok(())
        })
        .unwrap();
    println!(
        "fixture fuzz: {} files loaded, {} refused whole",
        loaded.get(),
        refused.get()
    );
    assert!(refused.get() > 0 && loaded.get() > 0);
}

/// The production path: a whole use case on one pooled connection ([`PgStore::in_session`]).
async fn in_session(
    store: &PgStore,
    caller_ext: &'static str,
) -> Result<idm_otp_domain::ChallengeOutcome, idm_otp_domain::ChallengeError> {
    store
        .in_session(move |session| async move {
            ChallengeService::new(session.clone(), session, SystemClock, SystemRandom)
                .generate_challenge(&request(caller_ext))
                .await
        })
        .await?
}

#[tokio::test]
async fn a_session_runs_the_use_case_on_one_connection() {
    let db = Db::migrated();
    db.load(&example()).unwrap();
    let store = db.store(PoolOptions {
        max_size: 1,
        min_idle: 1,
        connection_timeout: Duration::from_millis(300),
        ..PoolOptions::default()
    });
    // Inside the session the pool's only connection is lent out: every port call used it.
    let pool = store.pool().clone();
    let (outcome, idle_inside) = store
        .in_session(move |session| async move {
            let service =
                ChallengeService::new(session.clone(), session, SystemClock, SystemRandom);
            let outcome = service.generate_challenge(&request("admin-1")).await;
            (outcome, pool.state().idle_connections)
        })
        .await
        .unwrap();
    let outcome = outcome.unwrap();
    assert_eq!(idle_inside, 0);
    assert_eq!(outcome.kind, OutcomeKind::Issued);
    assert_eq!(
        store.pool().state().idle_connections,
        1,
        "returned to the pool"
    );
    let again = in_session(&store, "admin-1").await.unwrap();
    assert_eq!(again.kind, OutcomeKind::ReServed);
    assert_eq!(again.challenge, outcome.challenge);
    // Refusals come out of a session unchanged.
    let err = in_session(&store, "nobody").await.unwrap_err();
    assert_eq!(
        err.category(),
        ErrorCategory::Forbidden,
        "exists, holds no right"
    );
    let err = in_session(&store, "no-such-user").await.unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Unauthenticated);

    // No connection to be had: "unavailable", as for one port call.
    let held = store.pool().get().unwrap();
    let err = in_session(&store, "admin-1").await.unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Unavailable);
    drop(held);
    assert!(in_session(&store, "admin-1").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_sessions_agree_on_the_stored_challenge() {
    let db = Db::migrated();
    db.load(&example()).unwrap();
    let store = db.store(PoolOptions {
        max_size: 16,
        ..PoolOptions::default()
    });
    for lifetime in [120, 0] {
        db.exec(&format!(
            "UPDATE clients SET challenge_lifetime_seconds = {lifetime}"
        ));
        db.exec("UPDATE otp_cards SET challenge_cell = NULL, challenge_issued_at = NULL");
        let barrier = Arc::new(tokio::sync::Barrier::new(32));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (store, barrier) = (store.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                in_session(&store, "admin-1").await
            }));
        }
        let mut labels = std::collections::HashSet::new();
        for task in tasks {
            let outcome = task
                .await
                .unwrap()
                .expect("no call may fail under contention");
            labels.insert(outcome.challenge.unwrap());
        }
        if lifetime > 0 {
            assert_eq!(labels.len(), 1, "overlapping calls disagreed: {labels:?}");
            let TargetLookup::Found { credential, .. } = store
                .load_target(&client(), &user("user-123"))
                .await
                .unwrap()
            else {
                panic!()
            };
            let stored = credential.unwrap().pending.unwrap().cell;
            assert_eq!(labels.into_iter().next().unwrap().cell(), stored);
        }
    }
}
