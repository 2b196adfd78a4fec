//! # idm-otp-adapters
//!
//! PostgreSQL adapters for the ports of [`idm_otp_domain`]: diesel on an r2d2 pool.
//!
//! - [`PgStore`] implements `ChallengeRepository` and `PermissionChecker`, one pooled
//!   connection per call; [`PgStore::in_session`] runs a whole use case on one ([`PgSession`]);
//! - [`build_pool`] makes the pool, mapping lost connections and timeouts to the domain's
//!   "unavailable" error;
//! - [`run_migrations`] applies the embedded schema;
//! - [`fixtures::load_fixtures`] loads the JSON fixture format in one transaction;
//! - [`CardCodeHasher`] keeps card codes as HMAC-SHA256 digests only.

#![deny(missing_docs)]

pub mod card_codes;
pub mod fixtures;
pub mod migrate;
pub mod pool;
mod prepared;
#[allow(missing_docs)]
pub mod schema;
pub mod store;

pub use card_codes::CardCodeHasher;
pub use migrate::{MigrationError, run_migrations};
pub use pool::{PgPool, PoolOptions, build_pool};
pub use store::{PgSession, PgStore};
