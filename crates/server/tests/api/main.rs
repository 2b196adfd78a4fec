//! HTTP tests: the real server on port 0 against a real PostgreSQL, one database per test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout
)]

mod authentication;
mod challenge;
mod faults;
mod hostile;
mod logs;
mod operability;
mod protocol;
mod shutdown;
mod support;
