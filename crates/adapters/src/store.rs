//! The domain's repository and permission-checker ports on PostgreSQL.
//!
//! One challenge costs three statements, each its own implicit transaction on a pooled
//! connection: the caller's grants, the target (client, user, unit path, most recent card)
//! and the conditional challenge write. No transaction spans them: the write is a
//! compare-and-set on the card's version, which is what the domain's concurrency contract
//! asks for.
//!
//! [`PgStore`] implements the ports with one checkout and one blocking-pool hand-off per
//! call; [`PgStore::in_session`] runs a whole use case on one connection and one hand-off
//! ([`PgSession`]), which is what the server does.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{
    Array, Bool, Int2, Int4, Int8, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use idm_otp_domain::{
    Caller, CallerGrants, CardVersion, ChallengeRepository, ClientExtId, ClientId, ClientRecord,
    CredentialExtId, CredentialId, CredentialState, DataRoom, Grant, GridSize, OtpCard,
    OtpCredential, OtpPolicy, PendingChallenge, PermissionChecker, PortError, Right, StoreOutcome,
    TargetLookup, TargetScope, UnitId, UserExtId, UserRecord, ValidityPeriod,
};
use uuid::Uuid;

use crate::pool::{
    Gate, PgPool, Pooled, TrackedConnection, port_error, run_blocking, with_connection, with_pooled,
};
use crate::prepared::PreparedSql;

/// The PostgreSQL implementation of [`ChallengeRepository`] and [`PermissionChecker`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    gate: Gate,
}

impl PgStore {
    /// A store on this pool.
    pub fn new(pool: PgPool) -> Self {
        let gate = Gate::for_pool(&pool);
        Self { pool, gate }
    }

    /// The pool, for health checks and metrics.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether a pooled connection answers (`SELECT 1`), for readiness checks.
    ///
    /// # Errors
    /// "Unavailable" when no connection can be had or it does not answer.
    pub async fn ping(&self) -> Result<(), PortError> {
        run_blocking(&self.gate, &self.pool, |conn| {
            diesel::sql_query("SELECT 1").execute(conn).map(|_| ())
        })
        .await
    }

    /// Runs one use case with a single pooled connection serving all its port calls: the
    /// future `work` builds from the [`PgSession`] is driven to completion on the blocking
    /// pool, so a request costs one admission, one checkout and one thread hand-off instead
    /// of one per statement (see `docs/performance.md`). The future must await only the
    /// session's ports and must not hand the session out: the connection goes back to the
    /// pool when the last clone of the session is dropped.
    ///
    /// # Errors
    /// "Unavailable" when no connection can be had within the pool's timeout.
    pub async fn in_session<T, F, Fut>(&self, work: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(PgSession) -> Fut + Send + 'static,
        Fut: Future<Output = T>,
    {
        with_pooled(&self.gate, &self.pool, move |conn| {
            let session = PgSession {
                conn: Arc::new(Mutex::new(conn)),
            };
            Ok(futures::executor::block_on(work(session)))
        })
        .await
    }

    /// The pool's current state, for metrics.
    pub fn pool_status(&self) -> PoolStatus {
        let state = self.pool.state();
        PoolStatus {
            connections: state.connections,
            idle: state.idle_connections,
            max: self.pool.max_size(),
            waiting: self.gate.waiting(),
        }
    }
}

/// A snapshot of the connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Open connections.
    pub connections: u32,
    /// Of which idle.
    pub idle: u32,
    /// Most connections.
    pub max: u32,
    /// Requests waiting for one.
    pub waiting: usize,
}

const GRANTS_SQL: &str = "\
SELECT a.all_clients, a.all_units,
       ARRAY(SELECT ac.client_id FROM authorization_clients ac WHERE ac.authorization_id = a.id) AS clients,
       ARRAY(SELECT au.unit_id FROM authorization_units au WHERE au.authorization_id = a.id) AS units
FROM clients c
JOIN users u ON u.client_id = c.id AND u.ext_id = $2
LEFT JOIN (authorizations a JOIN role_rights r ON r.role_id = a.role_id AND r.right_name = $3)
       ON a.user_id = u.id
WHERE c.ext_id = $1";

#[derive(QueryableByName)]
struct GrantRow {
    #[diesel(sql_type = Nullable<Bool>)]
    all_clients: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    all_units: Option<bool>,
    #[diesel(sql_type = Array<SqlUuid>)]
    clients: Vec<Uuid>,
    #[diesel(sql_type = Array<SqlUuid>)]
    units: Vec<Uuid>,
}

const TARGET_SQL: &str = "\
SELECT c.id AS client_id, c.name AS client_name, c.coordinate_card_format,
       c.challenge_lifetime_seconds, c.low_on_challenges_threshold,
       u.id AS user_id, un.path AS unit_path,
       k.id AS card_id, k.ext_id AS card_ext_id, k.state, k.valid_from, k.valid_to,
       k.grid_rows, k.grid_columns, k.used_cells, k.challenge_cell, k.challenge_issued_at,
       k.version
FROM clients c
LEFT JOIN users u ON u.client_id = c.id AND u.ext_id = $2
LEFT JOIN units un ON un.id = u.unit_id
LEFT JOIN LATERAL (
    SELECT k.id, k.ext_id, k.state, k.valid_from, k.valid_to, k.grid_rows, k.grid_columns,
           k.used_cells, k.challenge_cell, k.challenge_issued_at, k.version
    FROM otp_cards k
    WHERE k.user_id = u.id AND k.state <> 'archived'
    ORDER BY k.created_at DESC, k.seq DESC
    LIMIT 1
) k ON true
WHERE c.ext_id = $1";

/// The compare-and-set write (diesel's own UPDATE builder is never prepared once).
const STORE_SQL: &str = "\
UPDATE otp_cards
SET challenge_cell = $1::smallint, challenge_issued_at = $2::timestamptz, version = version + 1
WHERE id = $3::uuid AND version = $4::bigint";

#[derive(QueryableByName)]
struct TargetRow {
    #[diesel(sql_type = SqlUuid)]
    client_id: Uuid,
    #[diesel(sql_type = Text)]
    client_name: String,
    #[diesel(sql_type = Bool)]
    coordinate_card_format: bool,
    #[diesel(sql_type = Int4)]
    challenge_lifetime_seconds: i32,
    #[diesel(sql_type = Int4)]
    low_on_challenges_threshold: i32,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    user_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Array<SqlUuid>>)]
    unit_path: Option<Vec<Uuid>>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    card_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    card_ext_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    state: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    valid_from: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    valid_to: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Int2>)]
    grid_rows: Option<i16>,
    #[diesel(sql_type = Nullable<Int2>)]
    grid_columns: Option<i16>,
    #[diesel(sql_type = Nullable<Array<Int2>>)]
    used_cells: Option<Vec<i16>>,
    #[diesel(sql_type = Nullable<Int2>)]
    challenge_cell: Option<i16>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    challenge_issued_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Int8>)]
    version: Option<i64>,
}

/// A stored row that breaks a rule the database should have enforced.
#[derive(Debug, thiserror::Error)]
#[error("inconsistent row in {table}: {problem}")]
struct CorruptRow {
    table: &'static str,
    problem: String,
}

fn corrupt(table: &'static str, problem: impl ToString) -> PortError {
    PortError::failed(CorruptRow {
        table,
        problem: problem.to_string(),
    })
}

impl TargetRow {
    fn into_lookup(
        self,
        client_ext: &ClientExtId,
        user_ext: &UserExtId,
    ) -> Result<TargetLookup, PortError> {
        let client = ClientRecord {
            id: ClientId(self.client_id),
            ext_id: client_ext.clone(),
            name: self.client_name,
            policy: policy(
                self.coordinate_card_format,
                self.challenge_lifetime_seconds,
                self.low_on_challenges_threshold,
            ),
        };
        let Some(_user_id) = self.user_id else {
            return Ok(TargetLookup::UserNotFound { client });
        };
        let user = UserRecord {
            ext_id: user_ext.clone(),
            scope: TargetScope {
                client: client.id,
                unit_path: self
                    .unit_path
                    .unwrap_or_default()
                    .into_iter()
                    .map(UnitId)
                    .collect(),
            },
        };
        let credential = match self.card_id {
            None => None,
            Some(id) => Some(card_from_columns(CardColumns {
                id,
                ext_id: self.card_ext_id,
                state: self.state,
                valid_from: self.valid_from,
                valid_to: self.valid_to,
                grid_rows: self.grid_rows,
                grid_columns: self.grid_columns,
                used_cells: self.used_cells,
                challenge_cell: self.challenge_cell,
                challenge_issued_at: self.challenge_issued_at,
                version: self.version,
            })?),
        };
        Ok(TargetLookup::Found {
            client,
            user,
            credential,
        })
    }
}

fn policy(coordinate: bool, lifetime_seconds: i32, low_threshold: i32) -> OtpPolicy {
    let mut policy = OtpPolicy::default();
    policy.coordinate_card_format = coordinate;
    policy.challenge_lifetime = Duration::from_secs(u64::try_from(lifetime_seconds).unwrap_or(0));
    policy.low_on_challenges_threshold = u16::try_from(low_threshold).unwrap_or(u16::MAX);
    policy
}

struct CardColumns {
    id: Uuid,
    ext_id: Option<String>,
    state: Option<String>,
    valid_from: Option<DateTime<Utc>>,
    valid_to: Option<DateTime<Utc>>,
    grid_rows: Option<i16>,
    grid_columns: Option<i16>,
    used_cells: Option<Vec<i16>>,
    challenge_cell: Option<i16>,
    challenge_issued_at: Option<DateTime<Utc>>,
    version: Option<i64>,
}

fn card_from_columns(c: CardColumns) -> Result<OtpCredential, PortError> {
    const T: &str = "otp_cards";
    let missing = |column: &str| corrupt(T, format!("{column} is null"));
    let ext_id = CredentialExtId::parse(c.ext_id.ok_or_else(|| missing("ext_id"))?)
        .map_err(|e| corrupt(T, e))?;
    let state: CredentialState = c
        .state
        .ok_or_else(|| missing("state"))?
        .parse()
        .map_err(|e| corrupt(T, e))?;
    let validity = ValidityPeriod::new(c.valid_from, c.valid_to).map_err(|e| corrupt(T, e))?;
    let rows = c.grid_rows.ok_or_else(|| missing("grid_rows"))?;
    let columns = c.grid_columns.ok_or_else(|| missing("grid_columns"))?;
    let grid = GridSize::new(to_u32(rows), to_u32(columns)).map_err(|e| corrupt(T, e))?;
    let used = c.used_cells.unwrap_or_default();
    let card = OtpCard::new(grid, used.into_iter().map(to_u32)).map_err(|e| corrupt(T, e))?;
    let pending = match (c.challenge_cell, c.challenge_issued_at) {
        (Some(cell), Some(issued_at)) => Some(PendingChallenge {
            cell: grid.cell(to_u32(cell)).map_err(|e| corrupt(T, e))?,
            issued_at,
        }),
        _ => None,
    };
    Ok(OtpCredential {
        id: CredentialId(c.id),
        ext_id,
        state,
        validity,
        card,
        pending,
        version: CardVersion(c.version.ok_or_else(|| missing("version"))?),
    })
}

/// Negative values (which the schema forbids) become out-of-range values the domain refuses.
fn to_u32(value: i16) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

// The three hot-path operations, each on a connection the caller holds: `PgStore` runs one
// per checkout, `PgSession` all of a use case's on one.

fn fetch_target(
    conn: &mut TrackedConnection,
    client: &ClientExtId,
    user: &UserExtId,
) -> Result<TargetLookup, PortError> {
    let params = [client.as_str().to_owned(), user.as_str().to_owned()];
    let row = conn
        .run(|c| {
            PreparedSql::new(TARGET_SQL, params)
                .get_result::<TargetRow>(c)
                .optional()
        })
        .map_err(port_error)?;
    match row {
        None => Ok(TargetLookup::ClientNotFound),
        Some(row) => row.into_lookup(client, user),
    }
}

fn write_challenge(
    conn: &mut TrackedConnection,
    credential: CredentialId,
    expected: CardVersion,
    challenge: PendingChallenge,
) -> Result<StoreOutcome, PortError> {
    let params = [
        challenge.cell.get().to_string(),
        challenge
            .issued_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        credential.0.to_string(),
        expected.0.to_string(),
    ];
    let updated = conn
        .run(|c| PreparedSql::new(STORE_SQL, params).execute(c))
        .map_err(port_error)?;
    Ok(if updated == 1 {
        StoreOutcome::Stored
    } else {
        StoreOutcome::Conflict
    })
}

fn fetch_grants(
    conn: &mut TrackedConnection,
    caller: &Caller,
    right: Right,
) -> Result<CallerGrants, PortError> {
    let params = [
        caller.client.as_str().to_owned(),
        caller.user.as_str().to_owned(),
        right.as_str().to_owned(),
    ];
    let rows = conn
        .run(|c| PreparedSql::new(GRANTS_SQL, params).load::<GrantRow>(c))
        .map_err(port_error)?;
    if rows.is_empty() {
        return Ok(CallerGrants::UnknownCaller);
    }
    let grants = rows
        .into_iter()
        .filter_map(|row| {
            let (all_clients, all_units) = (row.all_clients?, row.all_units?);
            Some(Grant {
                clients: room(all_clients, row.clients, ClientId),
                units: room(all_units, row.units, UnitId),
            })
        })
        .collect();
    Ok(CallerGrants::Known(grants))
}

#[async_trait]
impl ChallengeRepository for PgStore {
    async fn load_target(
        &self,
        client: &ClientExtId,
        user: &UserExtId,
    ) -> Result<TargetLookup, PortError> {
        let (client, user) = (client.clone(), user.clone());
        with_connection(&self.gate, &self.pool, move |conn| {
            fetch_target(conn, &client, &user)
        })
        .await
    }

    async fn store_challenge(
        &self,
        credential: CredentialId,
        expected: CardVersion,
        challenge: PendingChallenge,
    ) -> Result<StoreOutcome, PortError> {
        with_connection(&self.gate, &self.pool, move |conn| {
            write_challenge(conn, credential, expected, challenge)
        })
        .await
    }
}

#[async_trait]
impl PermissionChecker for PgStore {
    async fn grants(&self, caller: &Caller, right: Right) -> Result<CallerGrants, PortError> {
        let caller = caller.clone();
        with_connection(&self.gate, &self.pool, move |conn| {
            fetch_grants(conn, &caller, right)
        })
        .await
    }
}

/// The ports on one pooled connection, for the length of one use case (see
/// [`PgStore::in_session`]). Each port call runs its statement at once on the calling thread,
/// as its own implicit transaction, so the session holds no lock in the database between
/// calls and the concurrency contract of `ChallengeRepository` holds as for [`PgStore`].
#[derive(Clone)]
pub struct PgSession {
    conn: Arc<Mutex<Pooled>>,
}

impl std::fmt::Debug for PgSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSession").finish_non_exhaustive()
    }
}

/// A session's connection was poisoned by a panic in an earlier call.
#[derive(Debug, thiserror::Error)]
#[error("session connection unusable after a panic")]
struct PoisonedSession;

impl PgSession {
    fn run<T>(
        &self,
        work: impl FnOnce(&mut TrackedConnection) -> Result<T, PortError>,
    ) -> Result<T, PortError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| PortError::failed(PoisonedSession))?;
        work(&mut conn)
    }
}

#[async_trait]
impl ChallengeRepository for PgSession {
    async fn load_target(
        &self,
        client: &ClientExtId,
        user: &UserExtId,
    ) -> Result<TargetLookup, PortError> {
        self.run(|conn| fetch_target(conn, client, user))
    }

    async fn store_challenge(
        &self,
        credential: CredentialId,
        expected: CardVersion,
        challenge: PendingChallenge,
    ) -> Result<StoreOutcome, PortError> {
        self.run(|conn| write_challenge(conn, credential, expected, challenge))
    }
}

#[async_trait]
impl PermissionChecker for PgSession {
    async fn grants(&self, caller: &Caller, right: Right) -> Result<CallerGrants, PortError> {
        self.run(|conn| fetch_grants(conn, caller, right))
    }
}

fn room<T>(global: bool, members: Vec<Uuid>, wrap: fn(Uuid) -> T) -> DataRoom<T> {
    if global {
        DataRoom::Global
    } else {
        DataRoom::Only(members.into_iter().map(wrap).collect())
    }
}
