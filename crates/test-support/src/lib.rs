//! Test-only helpers: a local PostgreSQL (started on demand through `scripts/pg.sh`) and a
//! fresh, uniquely named database per test so tests run in parallel without sharing state.

#![allow(clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::OnceLock;

use diesel::{Connection, PgConnection, RunQueryDsl};

/// Environment variable naming an existing server to use instead of starting one: a URL of
/// a role that may create databases.
pub const ADMIN_URL_VAR: &str = "IDM_OTP_TEST_DATABASE_URL";

/// The URL of the test server's maintenance database: `IDM_OTP_TEST_DATABASE_URL`, or the
/// project-local cluster `scripts/pg.sh url test` starts (once per process).
pub fn admin_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var(ADMIN_URL_VAR) {
            return url;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/pg.sh");
        let output = Command::new("bash")
            .args([script, "url", "test"])
            .output()
            .expect("run scripts/pg.sh");
        assert!(
            output.status.success(),
            "scripts/pg.sh url test failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf-8 url")
            .trim()
            .to_owned()
    })
}

/// A database created for one test and dropped (with its connections) when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
}

fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    format!("{server}/{database}{query}")
}

impl TestDatabase {
    /// Creates an empty database with a unique name.
    pub fn create() -> Self {
        let name = format!("idm_otp_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(admin_url()).expect("connect to test server");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .expect("create test database");
        let url = with_database(admin_url(), &name);
        Self { name, url }
    }

    /// The URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new direct connection to it.
    pub fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url).expect("connect to test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(admin_url()) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn swaps_only_the_database_name() {
        assert_eq!(
            with_database("postgres://u@h:1/idm_otp", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(
            with_database("postgres://u@h:1/idm_otp?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
    }
}
