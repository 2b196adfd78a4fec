//! # idm-otp-server
//!
//! The HTTP side of idm-otp: actix-web wires the domain's use case (on the PostgreSQL
//! adapters) to `POST /nevisidm/api/auth/v1/{clientExtId}/users/{userExtId}/otp/challenge`,
//! with bearer-token authentication, the vendor's error format, layered configuration and
//! the `idm-otp` command line.

#![deny(missing_docs)]

pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod metrics;
pub mod routes;
pub mod telemetry;

pub use app::{Application, StartupError};
pub use config::Settings;
