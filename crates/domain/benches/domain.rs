//! Micro-benchmarks of the domain rules: `cargo bench -p idm-otp-domain`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Mutex;

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use idm_otp_domain::*;

/// A cheap deterministic source (xorshift), so the benchmark measures the rules, not a CSPRNG.
struct Xorshift(Mutex<u64>);

impl RandomSource for Xorshift {
    fn uniform_below(&self, upper: NonZeroU32) -> u32 {
        let mut state = self.0.lock().unwrap();
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state % u64::from(upper.get())) as u32
    }
}

struct OneCard(OtpCredential);

#[async_trait]
impl ChallengeRepository for OneCard {
    async fn load_target(
        &self,
        client: &ClientExtId,
        user: &UserExtId,
    ) -> Result<TargetLookup, PortError> {
        let id = ClientId(uuid::Uuid::nil());
        Ok(TargetLookup::Found {
            client: ClientRecord {
                id,
                ext_id: client.clone(),
                name: "Default".into(),
                policy: OtpPolicy::default(),
            },
            user: UserRecord {
                ext_id: user.clone(),
                scope: TargetScope {
                    client: id,
                    unit_path: vec![UnitId(uuid::Uuid::nil())],
                },
            },
            credential: Some(self.0.clone()),
        })
    }

    async fn store_challenge(
        &self,
        _: CredentialId,
        _: CardVersion,
        _: PendingChallenge,
    ) -> Result<StoreOutcome, PortError> {
        Ok(StoreOutcome::Stored)
    }
}

struct Global;

#[async_trait]
impl PermissionChecker for Global {
    async fn grants(&self, _: &Caller, _: Right) -> Result<CallerGrants, PortError> {
        Ok(CallerGrants::Known(vec![Grant {
            clients: DataRoom::Global,
            units: DataRoom::Global,
        }]))
    }
}

fn labels(c: &mut Criterion) {
    let grid = GridSize::DEFAULT;
    let cell = grid.cell(100).unwrap();
    for format in [LabelFormat::Coordinate, LabelFormat::Sequential] {
        let label = ChallengeLabel::new(cell, grid, format);
        let text = label.to_string();
        c.bench_function(&format!("label format {format:?}"), |b| {
            b.iter(|| black_box(label).to_string())
        });
        c.bench_function(&format!("label parse {format:?}"), |b| {
            b.iter(|| ChallengeLabel::parse(black_box(&text), grid, format).unwrap())
        });
    }
}

fn cell_choice(c: &mut Criterion) {
    let random = Xorshift(Mutex::new(0x9e37_79b9_7f4a_7c15));
    let big = GridSize::new(99, 26).unwrap();
    let fresh = OtpCard::new(big, []).unwrap();
    let nearly_exhausted = OtpCard::new(big, (0..2574).filter(|i| i % 1000 != 7)).unwrap();
    c.bench_function("pick unused, fresh 99x26 card", |b| {
        b.iter(|| black_box(&fresh).pick_unused(&random))
    });
    c.bench_function("pick unused, 99x26 card with 3 cells left", |b| {
        b.iter(|| black_box(&nearly_exhausted).pick_unused(&random))
    });
}

fn whole_decision(c: &mut Criterion) {
    let card = OneCard(OtpCredential {
        id: CredentialId(uuid::Uuid::nil()),
        ext_id: CredentialExtId::parse("card-1").unwrap(),
        state: CredentialState::Active,
        validity: ValidityPeriod::unbounded(),
        card: OtpCard::new(GridSize::DEFAULT, [0, 5]).unwrap(),
        pending: None,
        version: CardVersion(0),
    });
    let service = ChallengeService::new(card, Global, SystemClock, SystemRandom);
    let request = ChallengeRequest {
        caller: Caller {
            client: ClientExtId::parse("client-123").unwrap(),
            user: UserExtId::parse("helpdesk").unwrap(),
        },
        client: ClientExtId::parse("client-123").unwrap(),
        user: UserExtId::parse("user-123").unwrap(),
    };
    c.bench_function("generate challenge, in-memory ports, CSPRNG", |b| {
        b.iter(|| futures::executor::block_on(service.generate_challenge(black_box(&request))))
    });
}

criterion_group!(benches, labels, cell_choice, whole_decision);
criterion_main!(benches);
