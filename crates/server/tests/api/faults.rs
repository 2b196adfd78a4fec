//! Faults around the service: the database going away under load, an exhausted pool, slow
//! statements, many concurrent callers. Nothing answered 200 may be lost, nothing may be 500.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use diesel::RunQueryDsl;
use diesel::prelude::*;
use idm_otp_adapters::{CardCodeHasher, fixtures::load_fixtures, run_migrations};
use idm_otp_domain::{ChallengeLabel, GridSize, LabelFormat};
use idm_otp_test_support::TestDatabase;
use serde_json::json;

use crate::support::{CLIENT, HMAC_KEY, TestApp, fixtures, settings};

/// A TCP proxy in front of PostgreSQL that a test can cut (every open connection closed,
/// every new one closed on accept, as when the server is down) and restore.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl Proxy {
    fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (d, o) = (Arc::clone(&down), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if d.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let mut list = o.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pipe(client, server));
                std::thread::spawn(move || pipe(s2, c2));
            }
        });
        Self { port, down, open }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by the proxy's; and the upstream `host:port`.
    fn url_through(url: &str) -> (String, impl Fn(u16) -> String + use<>) {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (credentials, rest) = rest.rsplit_once('@').unwrap();
        let (address, database) = rest.split_once('/').unwrap();
        let upstream = if address.contains(':') {
            address.to_owned()
        } else {
            format!("{address}:5432")
        };
        let (scheme, credentials, database) = (
            scheme.to_owned(),
            credentials.to_owned(),
            database.to_owned(),
        );
        (upstream, move |port| {
            format!("{scheme}://{credentials}@127.0.0.1:{port}/{database}")
        })
    }
}

/// A database with the standard fixtures plus `n` users `load-<i>` of `client`, each with
/// a 12x14 card `load-card-<i>`.
fn database_with_load_users(client: &str, unit: &str, n: usize) -> TestDatabase {
    let db = TestDatabase::create();
    let mut conn = db.connect();
    run_migrations(&mut conn).unwrap();
    let hasher = CardCodeHasher::new(HMAC_KEY.as_bytes()).unwrap();
    load_fixtures(&mut conn, &fixtures().to_string(), &hasher).unwrap();
    let users: Vec<_> = (0..n)
        .map(|i| json!({"extId": format!("load-{i}"), "client": client, "unit": unit, "loginId": format!("load{i}")}))
        .collect();
    let cards: Vec<_> = (0..n)
        .map(|i| {
            json!({"extId": format!("load-card-{i}"), "client": client, "user": format!("load-{i}"),
                        "state": "active", "rows": 12, "columns": 14})
        })
        .collect();
    let extra = json!({"clients": [], "units": [], "users": users, "otpCards": cards,
                       "roles": [], "authorizations": []});
    load_fixtures(&mut conn, &extra.to_string(), &hasher).unwrap();
    db
}

fn card_state(db: &TestDatabase, card: &str) -> (Option<i16>, i64) {
    use idm_otp_adapters::schema::otp_cards;
    otp_cards::table
        .filter(otp_cards::ext_id.eq(card))
        .select((otp_cards::challenge_cell, otp_cards::version))
        .first(&mut db.connect())
        .unwrap()
}

fn sequential_cell(label: &str) -> i16 {
    let grid = GridSize::new(12, 14).unwrap();
    let label = ChallengeLabel::parse(label, grid, LabelFormat::Sequential).unwrap();
    i16::try_from(label.cell().get()).unwrap()
}

#[derive(Debug, Clone)]
struct Answer {
    at: Duration,
    took: Duration,
    status: StatusCode,
    label: Option<String>,
    code: Option<String>,
    retry_after: bool,
}

#[actix_web::test]
async fn a_database_outage_under_load_is_503_then_recovers_without_losing_answered_writes() {
    const CARDS: usize = 12;
    let db = database_with_load_users("client-seq", "seq-root", CARDS);
    let (upstream, through) = Proxy::url_through(db.url());
    let proxy = Proxy::start(upstream);
    let mut settings = settings(&through(proxy.port));
    settings.database.pool_size = 4;
    settings.database.connect_timeout_ms = 1000;
    let timeout = Duration::from_millis(1000);
    let versions_before: Vec<i64> = (0..CARDS)
        .map(|i| card_state(&db, &format!("load-card-{i}")).1)
        .collect();
    let app = TestApp::start(db, settings);

    let started = Instant::now();
    let (cut_at, restore_at, end_at) = (
        Duration::from_secs(2),
        Duration::from_secs(5),
        Duration::from_secs(9),
    );
    let callers = (0..CARDS).map(|i| {
        let app = &app;
        async move {
            let user = format!("load-{i}");
            let mut answers = Vec::new();
            while started.elapsed() < end_at {
                let at = started.elapsed();
                let reply = app
                    .challenge_by("client-seq", "seq-desk", "client-seq", &user)
                    .await;
                answers.push(Answer {
                    at,
                    took: started.elapsed() - at,
                    status: reply.status,
                    label: reply.body["challenge"].as_str().map(str::to_owned),
                    code: (!reply.status.is_success()).then(|| reply.error().0),
                    retry_after: reply.headers.contains_key("retry-after"),
                });
            }
            answers
        }
    });
    let outage = async {
        actix_web::rt::time::sleep(cut_at).await;
        proxy.cut();
        actix_web::rt::time::sleep(restore_at - cut_at).await;
        proxy.restore();
    };
    let (answers, ()) = futures::future::join(futures::future::join_all(callers), outage).await;

    let all: Vec<&Answer> = answers.iter().flatten().collect();
    let ok = all.iter().filter(|a| a.status == StatusCode::OK).count();
    let unavailable: Vec<_> = all
        .iter()
        .filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    let other: Vec<_> = all
        .iter()
        .filter(|a| a.status != StatusCode::OK && a.status != StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(other.is_empty(), "neither 200 nor 503: {other:?}");
    assert!(!unavailable.is_empty(), "the outage was not noticed");
    for answer in &unavailable {
        assert_eq!(answer.code.as_deref(), Some("errors.fatalError"));
        assert!(answer.retry_after, "503 without Retry-After");
        // No hang: the pool timeout plus the one statement that may be running.
        assert!(answer.took < timeout * 3, "503 after {:?}", answer.took);
    }
    // Recovery without a restart: every caller has a 200 within 5 s of the database's return.
    let mut recovery = Duration::ZERO;
    for caller in &answers {
        let first_ok = caller
            .iter()
            .find(|a| a.at >= restore_at && a.status == StatusCode::OK)
            .expect("a caller never recovered");
        recovery = recovery.max(first_ok.at + first_ok.took - restore_at);
    }
    assert!(
        recovery <= Duration::from_secs(5),
        "recovered after {recovery:?}"
    );

    // Nothing answered 200 is lost: each card's last answer is 200 and is the stored
    // challenge, and the card's version rose at least once per 200.
    for (i, caller) in answers.iter().enumerate() {
        let last = caller.last().unwrap();
        assert_eq!(last.status, StatusCode::OK, "card {i} ended on {last:?}");
        let (stored, version) = card_state(&app.db, &format!("load-card-{i}"));
        assert_eq!(
            stored,
            Some(sequential_cell(last.label.as_deref().unwrap())),
            "card {i}"
        );
        let issued = caller
            .iter()
            .filter(|a| a.status == StatusCode::OK && a.label.is_some())
            .count();
        assert!(
            usize::try_from(version - versions_before[i]).unwrap() >= issued,
            "card {i}: {issued} answered, version +{}",
            version - versions_before[i]
        );
    }
    println!(
        "outage: {} requests, {ok} x 200, {} x 503, 0 other, recovery {:?}, lost writes 0",
        all.len(),
        unavailable.len(),
        recovery
    );
}

/// Holds row locks on cards from a separate connection for `hold`, so the service's writes
/// to them block: slow statements, on demand.
fn lock_cards(db: &TestDatabase, cards: &[&str], hold: Duration) -> std::thread::JoinHandle<()> {
    let mut conn = db.connect();
    let list = cards
        .iter()
        .map(|c| format!("'{c}'"))
        .collect::<Vec<_>>()
        .join(",");
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            diesel::sql_query(format!(
                "SELECT id FROM otp_cards WHERE ext_id IN ({list}) FOR UPDATE"
            ))
            .execute(conn)?;
            locked_tx.send(()).unwrap();
            std::thread::sleep(hold);
            Ok(())
        })
        .unwrap();
    });
    locked_rx.recv().unwrap();
    handle
}

async fn burst(app: &TestApp, users: &[String]) -> Vec<(StatusCode, Duration, Option<String>)> {
    let calls = users.iter().map(|user| async move {
        let at = Instant::now();
        let reply = app
            .challenge_by("client-seq", "seq-desk", "client-seq", user)
            .await;
        let code = (!reply.status.is_success()).then(|| reply.error().0);
        (reply.status, at.elapsed(), code)
    });
    futures::future::join_all(calls).await
}

#[actix_web::test]
async fn an_exhausted_pool_makes_callers_wait_up_to_the_timeout_then_503_never_500() {
    let db = database_with_load_users("client-seq", "seq-root", 12);
    let mut settings = settings(db.url());
    settings.database.pool_size = 2;
    settings.database.connect_timeout_ms = 500;
    settings.database.statement_timeout_ms = 10_000;
    let app = TestApp::start(db, settings);
    let users: Vec<String> = (0..12).map(|i| format!("load-{i}")).collect();
    // Every card's write blocks for 2 s: the two connections are taken by slow statements.
    let cards: Vec<String> = (0..12).map(|i| format!("load-card-{i}")).collect();
    let refs: Vec<&str> = cards.iter().map(String::as_str).collect();
    let lock = lock_cards(&app.db, &refs, Duration::from_secs(2));
    let answers = burst(&app, &users).await;
    lock.join().unwrap();
    let ok = answers.iter().filter(|a| a.0 == StatusCode::OK).count();
    let waited_out: Vec<_> = answers
        .iter()
        .filter(|a| a.0 == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert_eq!(ok + waited_out.len(), answers.len(), "{answers:?}");
    assert!(
        waited_out.len() >= 8,
        "at most the pool's 2 + a few get through: {answers:?}"
    );
    for (_, took, code) in &waited_out {
        assert_eq!(code.as_deref(), Some("errors.fatalError"));
        assert!(
            *took >= Duration::from_millis(450),
            "503 before the timeout: {took:?}"
        );
    }
    // The pool is healthy afterwards: everyone is served.
    let after = burst(&app, &users).await;
    assert!(after.iter().all(|a| a.0 == StatusCode::OK), "{after:?}");
}

/// The backend pids of the server's connections to its database.
fn server_backends(db: &TestDatabase) -> Vec<i32> {
    #[derive(QueryableByName)]
    struct Backend {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    diesel::sql_query(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY pid",
    )
    .load::<Backend>(&mut db.connect())
    .unwrap()
    .into_iter()
    .map(|b| b.pid)
    .collect()
}

#[actix_web::test]
async fn a_statement_over_the_statement_timeout_is_503_and_the_connection_stays_usable() {
    let db = database_with_load_users("client-seq", "seq-root", 1);
    let mut settings = settings(db.url());
    settings.database.pool_size = 1;
    settings.database.statement_timeout_ms = 300;
    let app = TestApp::start(db, settings);
    let user = vec!["load-0".to_owned()];
    assert_eq!(burst(&app, &user).await[0].0, StatusCode::OK);
    let backends = server_backends(&app.db);
    assert_eq!(backends.len(), 1, "{backends:?}");

    let lock = lock_cards(&app.db, &["load-card-0"], Duration::from_secs(2));
    let answers = burst(&app, &user).await;
    let (status, took, code) = &answers[0];
    assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code.as_deref(), Some("errors.fatalError"));
    assert!(*took < Duration::from_millis(1500), "{took:?}");
    lock.join().unwrap();

    // The pool's only connection was returned healthy and is used again, not replaced.
    let after = burst(&app, &user).await;
    assert_eq!(after[0].0, StatusCode::OK, "{after:?}");
    assert_eq!(server_backends(&app.db), backends);
}

#[actix_web::test]
async fn sixty_four_concurrent_callers_on_one_card_and_on_many_agree_with_the_store() {
    let db = database_with_load_users(CLIENT, "branch", 16);
    let settings = settings(db.url());
    let app = TestApp::start(db, settings);
    // One card.
    let calls = (0..64).map(|_| app.challenge("helpdesk", "u-active"));
    let replies = futures::future::join_all(calls).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::OK));
    let labels: std::collections::HashSet<_> = replies
        .iter()
        .map(|r| r.body["challenge"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(labels.len(), 1, "{labels:?}");
    assert!(app.stored_cell("card-active").is_some());
    // Sixteen cards, four callers each, all at once.
    let calls = (0..64).map(|i| {
        let app = &app;
        async move {
            (
                i % 16,
                app.challenge("helpdesk", &format!("load-{}", i % 16)).await,
            )
        }
    });
    let replies = futures::future::join_all(calls).await;
    let grid = GridSize::new(12, 14).unwrap();
    for card in 0..16 {
        let labels: std::collections::HashSet<_> = replies
            .iter()
            .filter(|(i, _)| *i == card)
            .map(|(_, r)| {
                assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
                r.body["challenge"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(labels.len(), 1, "card {card}: {labels:?}");
        let label = labels.into_iter().next().unwrap();
        let cell = ChallengeLabel::parse(&label, grid, LabelFormat::Coordinate).unwrap();
        assert_eq!(
            app.stored_cell(&format!("load-card-{card}")),
            Some(i16::try_from(cell.cell().get()).unwrap())
        );
    }
}
