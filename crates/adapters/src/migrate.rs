//! The embedded schema migrations.

use diesel::PgConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// A migration could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("migration failed: {0}")]
pub struct MigrationError(String);

/// Applies every pending migration; returns the versions applied (empty when up to date).
pub fn run_migrations(conn: &mut PgConnection) -> Result<Vec<String>, MigrationError> {
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| MigrationError(e.to_string()))?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

/// Reverts every applied migration (for tests of the down scripts).
pub fn revert_all_migrations(conn: &mut PgConnection) -> Result<(), MigrationError> {
    conn.revert_all_migrations(MIGRATIONS)
        .map_err(|e| MigrationError(e.to_string()))?;
    Ok(())
}
