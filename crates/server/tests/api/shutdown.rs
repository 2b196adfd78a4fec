//! The real binary: SIGTERM lets an in-flight request finish, then exits 0 within 10 s.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use idm_otp_adapters::{CardCodeHasher, fixtures::load_fixtures, run_migrations};
use idm_otp_test_support::TestDatabase;

use crate::support::{AUDIENCE, CLIENT, HMAC_KEY, HS256_SECRET, ISSUER, fixtures, token_for};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn raw_post(port: u16, path: &str, token: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    let db = TestDatabase::create();
    let mut conn = db.connect();
    run_migrations(&mut conn).unwrap();
    let hasher = CardCodeHasher::new(HMAC_KEY.as_bytes()).unwrap();
    load_fixtures(&mut conn, &fixtures().to_string(), &hasher).unwrap();

    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_idm-otp"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", db.url())
        .env("IDM_OTP_JWT_HS256_SECRET", HS256_SECRET)
        .env("IDM_OTP_JWT_ISSUER", ISSUER)
        .env("IDM_OTP_JWT_AUDIENCE", AUDIENCE)
        .env("IDM_OTP_DATABASE__STATEMENT_TIMEOUT_MS", "15000")
        .env("IDM_OTP_SERVER__WORKERS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Hold the card's row lock so the request's write waits: it is in flight at SIGTERM.
    let mut locker = db.connect();
    diesel::sql_query("BEGIN").execute(&mut locker).unwrap();
    diesel::sql_query("SELECT 1 FROM otp_cards WHERE ext_id = 'card-active' FOR UPDATE")
        .execute(&mut locker)
        .unwrap();
    let token = token_for(CLIENT, "helpdesk");
    let path = format!("/nevisidm/api/auth/v1/{CLIENT}/users/u-active/otp/challenge");
    let request = std::thread::spawn(move || raw_post(port, &path, &token));
    std::thread::sleep(Duration::from_millis(500));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    diesel::sql_query("ROLLBACK").execute(&mut locker).unwrap();

    let response = request.join().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"status\":\"active\""), "{response}");
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "no exit within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(0));
}
