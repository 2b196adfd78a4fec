//! In-memory fakes of the ports, for this crate's unit tests only.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use uuid::Uuid;

use crate::access::{Caller, CallerGrants, DataRoom, Grant, Right, TargetScope};
use crate::card::{GridSize, OtpCard};
use crate::ids::{ClientExtId, ClientId, CredentialExtId, CredentialId, UnitId, UserExtId};
use crate::policy::{OtpPolicy, PendingChallenge};
use crate::ports::{
    CardVersion, ChallengeRepository, ClientRecord, Clock, OtpCredential, PermissionChecker,
    PortError, RandomSource, StoreOutcome, TargetLookup, UserRecord,
};
use crate::service::ChallengeService;
use crate::state::CredentialState;
use crate::validity::ValidityPeriod;

pub(crate) struct SeededRandom(Mutex<StdRng>);

impl SeededRandom {
    pub(crate) fn new(seed: u64) -> Self {
        Self(Mutex::new(StdRng::seed_from_u64(seed)))
    }
}

impl RandomSource for SeededRandom {
    fn uniform_below(&self, upper: NonZeroU32) -> u32 {
        self.0.lock().unwrap().random_range(0..upper.get())
    }
}

pub(crate) struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    pub(crate) fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().unwrap() = now;
    }
    pub(crate) fn advance(&self, by: TimeDelta) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

pub(crate) fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

struct StoredCard {
    owner: (ClientExtId, UserExtId),
    created: DateTime<Utc>,
    credential: OtpCredential,
}

#[derive(Default)]
struct World {
    clients: Vec<ClientRecord>,
    users: Vec<(ClientExtId, UserRecord)>,
    cards: Vec<StoredCard>,
}

/// Hook run inside `store_challenge` before the compare-and-set, to simulate a racing writer.
type RaceHook = Box<dyn Fn(&mut OtpCredential) + Send + Sync>;

#[derive(Default)]
pub(crate) struct MemoryRepository {
    world: Mutex<World>,
    pub(crate) stores: AtomicUsize,
    pub(crate) loads: AtomicUsize,
    race: Mutex<Option<RaceHook>>,
    pub(crate) fail_with: Mutex<Option<fn() -> PortError>>,
}

impl MemoryRepository {
    pub(crate) fn credential(&self, ext_id: &str) -> OtpCredential {
        let world = self.world.lock().unwrap();
        world
            .cards
            .iter()
            .find(|c| c.credential.ext_id.as_str() == ext_id)
            .map(|c| c.credential.clone())
            .unwrap()
    }

    pub(crate) fn update(&self, ext_id: &str, change: impl FnOnce(&mut OtpCredential)) {
        let mut world = self.world.lock().unwrap();
        let card = world
            .cards
            .iter_mut()
            .find(|c| c.credential.ext_id.as_str() == ext_id)
            .unwrap();
        change(&mut card.credential);
        card.credential.version.0 += 1;
    }

    pub(crate) fn race_on_store(&self, hook: RaceHook) {
        *self.race.lock().unwrap() = Some(hook);
    }
}

#[async_trait]
impl ChallengeRepository for MemoryRepository {
    async fn load_target(
        &self,
        client: &ClientExtId,
        user: &UserExtId,
    ) -> Result<TargetLookup, PortError> {
        if let Some(fail) = *self.fail_with.lock().unwrap() {
            return Err(fail());
        }
        self.loads.fetch_add(1, Ordering::SeqCst);
        let world = self.world.lock().unwrap();
        let Some(client_record) = world.clients.iter().find(|c| &c.ext_id == client) else {
            return Ok(TargetLookup::ClientNotFound);
        };
        let Some((_, user_record)) = world
            .users
            .iter()
            .find(|(c, u)| c == client && &u.ext_id == user)
        else {
            return Ok(TargetLookup::UserNotFound {
                client: client_record.clone(),
            });
        };
        let credential = world
            .cards
            .iter()
            .enumerate()
            .filter(|(_, c)| c.owner == (client.clone(), user.clone()))
            .filter(|(_, c)| c.credential.state != CredentialState::Archived)
            .max_by_key(|(seq, c)| (c.created, *seq))
            .map(|(_, c)| c.credential.clone());
        Ok(TargetLookup::Found {
            client: client_record.clone(),
            user: user_record.clone(),
            credential,
        })
    }

    async fn store_challenge(
        &self,
        credential: CredentialId,
        expected: CardVersion,
        challenge: PendingChallenge,
    ) -> Result<StoreOutcome, PortError> {
        let mut world = self.world.lock().unwrap();
        let Some(card) = world
            .cards
            .iter_mut()
            .find(|c| c.credential.id == credential)
        else {
            return Ok(StoreOutcome::Conflict);
        };
        let hook = self.race.lock().unwrap().take();
        if let Some(hook) = hook {
            hook(&mut card.credential);
            card.credential.version.0 += 1;
        }
        if card.credential.version != expected {
            return Ok(StoreOutcome::Conflict);
        }
        self.stores.fetch_add(1, Ordering::SeqCst);
        card.credential.pending = Some(challenge);
        card.credential.version.0 += 1;
        Ok(StoreOutcome::Stored)
    }
}

#[derive(Default)]
pub(crate) struct MemoryPermissions {
    grants: Mutex<HashMap<Caller, Vec<Grant>>>,
}

impl MemoryPermissions {
    pub(crate) fn set(&self, caller: &Caller, grants: Vec<Grant>) {
        self.grants.lock().unwrap().insert(caller.clone(), grants);
    }
}

#[async_trait]
impl PermissionChecker for MemoryPermissions {
    async fn grants(&self, caller: &Caller, right: Right) -> Result<CallerGrants, PortError> {
        assert_eq!(right, Right::CREDENTIAL_VIEW);
        Ok(match self.grants.lock().unwrap().get(caller) {
            Some(grants) => CallerGrants::Known(grants.clone()),
            None => CallerGrants::UnknownCaller,
        })
    }
}

pub(crate) type TestService = ChallengeService<
    Arc<MemoryRepository>,
    Arc<MemoryPermissions>,
    Arc<FixedClock>,
    Arc<SeededRandom>,
>;

/// One client "Default" (`client-123`) with units root > branch > desk, target user
/// `user-123` at the desk, and caller `admin-1` holding a global grant.
pub(crate) struct Scenario {
    pub(crate) repository: Arc<MemoryRepository>,
    pub(crate) permissions: Arc<MemoryPermissions>,
    pub(crate) clock: Arc<FixedClock>,
    pub(crate) client_id: ClientId,
    pub(crate) units: [UnitId; 3],
    pub(crate) caller: Caller,
}

pub(crate) fn client_ext() -> ClientExtId {
    ClientExtId::parse("client-123").unwrap()
}

pub(crate) fn user_ext() -> UserExtId {
    UserExtId::parse("user-123").unwrap()
}

impl Scenario {
    pub(crate) fn new() -> Self {
        let client_id = ClientId(Uuid::from_u128(1));
        let units = [11, 12, 13].map(|n| UnitId(Uuid::from_u128(n)));
        let repository = Arc::new(MemoryRepository::default());
        {
            let mut world = repository.world.lock().unwrap();
            world.clients.push(ClientRecord {
                id: client_id,
                ext_id: client_ext(),
                name: "Default".into(),
                policy: OtpPolicy::default(),
            });
            world.users.push((
                client_ext(),
                UserRecord {
                    ext_id: user_ext(),
                    scope: TargetScope {
                        client: client_id,
                        unit_path: units.to_vec(),
                    },
                },
            ));
        }
        let caller = Caller {
            client: client_ext(),
            user: UserExtId::parse("admin-1").unwrap(),
        };
        let permissions = Arc::new(MemoryPermissions::default());
        permissions.set(
            &caller,
            vec![Grant {
                clients: DataRoom::Global,
                units: DataRoom::Global,
            }],
        );
        Self {
            repository,
            permissions,
            clock: Arc::new(FixedClock(Mutex::new(t0()))),
            client_id,
            units,
            caller,
        }
    }

    pub(crate) fn set_policy(&self, change: impl FnOnce(&mut OtpPolicy)) {
        let mut world = self.repository.world.lock().unwrap();
        change(&mut world.clients[0].policy);
    }

    /// Adds a 12x14 card to `user-123`, created `age_days` before t0.
    pub(crate) fn add_card(
        &self,
        ext_id: &str,
        state: CredentialState,
        created_days_ago: i64,
    ) -> CredentialId {
        self.add_card_with(ext_id, state, created_days_ago, GridSize::DEFAULT, &[])
    }

    pub(crate) fn add_card_with(
        &self,
        ext_id: &str,
        state: CredentialState,
        created_days_ago: i64,
        grid: GridSize,
        used: &[u32],
    ) -> CredentialId {
        let mut world = self.repository.world.lock().unwrap();
        let id = CredentialId(Uuid::from_u128(1000 + world.cards.len() as u128));
        world.cards.push(StoredCard {
            owner: (client_ext(), user_ext()),
            created: t0() - TimeDelta::days(created_days_ago),
            credential: OtpCredential {
                id,
                ext_id: CredentialExtId::parse(ext_id).unwrap(),
                state,
                validity: ValidityPeriod::unbounded(),
                card: OtpCard::new(grid, used.iter().copied()).unwrap(),
                pending: None,
                version: CardVersion(0),
            },
        });
        id
    }

    pub(crate) fn service(&self, seed: u64) -> TestService {
        ChallengeService::new(
            Arc::clone(&self.repository),
            Arc::clone(&self.permissions),
            Arc::clone(&self.clock),
            Arc::new(SeededRandom::new(seed)),
        )
    }

    pub(crate) fn request(&self) -> crate::service::ChallengeRequest {
        crate::service::ChallengeRequest {
            caller: self.caller.clone(),
            client: client_ext(),
            user: user_ext(),
        }
    }
}
