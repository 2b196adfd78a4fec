//! # idm-otp-domain
//!
//! The rules of the Nevis IDM endpoint "Generate an OTP challenge": pick a random unused
//! cell of a user's most recent printed OTP card, store it as the pending challenge and
//! answer `{"challenge": "B7", "status": "active"}` — or the vendor's exact error.
//!
//! This crate is transport- and storage-free. It holds
//! - the value types, each parsed once at the edge: [`ClientExtId`], [`UserExtId`],
//!   [`CredentialState`], [`ValidityPeriod`], [`GridSize`], [`CellIndex`], [`OtpCard`],
//!   [`ChallengeLabel`], [`OtpPolicy`];
//! - the use case [`ChallengeService`], generic over its ports;
//! - the ports: [`ChallengeRepository`], [`PermissionChecker`], [`Clock`], [`RandomSource`];
//! - the errors, [`ChallengeError`], which produce the vendor's code and message text
//!   ([`ChallengeError::vendor_error`]) so every adapter answers with the same strings.
//!
//! ## Example
//! Wiring the service to small in-memory ports and generating a challenge:
//! ```
//! use std::num::NonZeroU32;
//! use async_trait::async_trait;
//! use chrono::{DateTime, Utc};
//! use idm_otp_domain::*;
//!
//! struct OneCard(OtpCredential);
//!
//! #[async_trait]
//! impl ChallengeRepository for OneCard {
//!     async fn load_target(&self, client: &ClientExtId, user: &UserExtId)
//!         -> Result<TargetLookup, PortError> {
//!         let client_id = ClientId(uuid::Uuid::nil());
//!         Ok(TargetLookup::Found {
//!             client: ClientRecord { id: client_id, ext_id: client.clone(),
//!                                    name: "Default".into(), policy: OtpPolicy::default() },
//!             user: UserRecord { ext_id: user.clone(),
//!                                scope: TargetScope { client: client_id, unit_path: vec![] } },
//!             credential: Some(self.0.clone()),
//!         })
//!     }
//!     async fn store_challenge(&self, _: CredentialId, _: CardVersion, _: PendingChallenge)
//!         -> Result<StoreOutcome, PortError> {
//!         Ok(StoreOutcome::Stored)
//!     }
//! }
//!
//! struct EveryoneMaySee;
//! #[async_trait]
//! impl PermissionChecker for EveryoneMaySee {
//!     async fn grants(&self, _: &Caller, _: Right) -> Result<CallerGrants, PortError> {
//!         Ok(CallerGrants::Known(vec![Grant { clients: DataRoom::Global,
//!                                             units: DataRoom::Global }]))
//!     }
//! }
//!
//! /// Always the first unused cell: deterministic, for the example only.
//! struct FirstCell;
//! impl RandomSource for FirstCell {
//!     fn uniform_below(&self, _: NonZeroU32) -> u32 { 0 }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let grid = GridSize::new(12, 14)?;
//! let card = OneCard(OtpCredential {
//!     id: CredentialId(uuid::Uuid::nil()),
//!     ext_id: CredentialExtId::parse("card-1")?,
//!     state: CredentialState::Active,
//!     validity: ValidityPeriod::unbounded(),
//!     card: OtpCard::new(grid, [0, 1])?, // A1 and B1 are used
//!     pending: None,
//!     version: CardVersion(0),
//! });
//! let service = ChallengeService::new(card, EveryoneMaySee, SystemClock, FirstCell);
//! let request = ChallengeRequest {
//!     caller: Caller { client: ClientExtId::parse("client-123")?,
//!                      user: UserExtId::parse("helpdesk-1")? },
//!     client: ClientExtId::parse("client-123")?,
//!     user: UserExtId::parse("user-123")?,
//! };
//! let outcome = futures::executor::block_on(service.generate_challenge(&request))?;
//! assert_eq!(outcome.challenge.map(|c| c.to_string()).as_deref(), Some("003"));
//! assert_eq!(outcome.status.as_str(), "active");
//! assert_eq!(outcome.kind, OutcomeKind::Issued);
//! # Ok(())
//! # }
//! ```
//!
//! ## Concurrency
//! Overlapping calls for one card agree on one stored challenge through an optimistic
//! compare-and-set; see the contract on [`ChallengeRepository`].

#![deny(missing_docs)]

pub mod access;
pub mod card;
pub mod error;
pub mod ids;
pub mod label;
pub mod policy;
pub mod ports;
pub mod service;
pub mod state;
pub mod validity;

#[cfg(test)]
mod service_tests;
#[cfg(test)]
mod testing;

pub use access::{Caller, CallerGrants, DataRoom, Grant, Grants, Right, TargetScope};
pub use card::{CellIndex, GridError, GridSize, MAX_COLUMNS, MAX_ROWS, OtpCard};
pub use error::{ChallengeError, ErrorCategory, VendorError};
pub use ids::{
    ClientExtId, ClientId, CredentialExtId, CredentialId, EXT_ID_MAX_BYTES, ExtIdError, ExtIdKind,
    UnitExtId, UnitId, UserExtId,
};
pub use label::{ChallengeLabel, LabelError, LabelFormat};
pub use policy::{OtpPolicy, PendingChallenge};
pub use ports::{
    CardVersion, ChallengeRepository, ClientRecord, Clock, OtpCredential, PermissionChecker,
    PortError, PortErrorKind, RandomSource, StoreOutcome, SystemClock, SystemRandom, TargetLookup,
    UserRecord,
};
pub use service::{
    ChallengeOutcome, ChallengeRequest, ChallengeService, MAX_STORE_ATTEMPTS, NullReason,
    OutcomeKind,
};
pub use state::{ALL_STATES, CredentialState, UnknownState};
pub use validity::{EmptyValidityPeriod, Validity, ValidityPeriod};
