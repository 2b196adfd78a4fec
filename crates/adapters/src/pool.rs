//! The r2d2 pool of PostgreSQL connections and the mapping of its failures to port errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{Connection, ConnectionError, PgConnection, RunQueryDsl};
use idm_otp_domain::PortError;

/// Pool settings. Defaults suit a 2-core node: PostgreSQL's throughput peaks near 8
/// connections on such a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Most connections open at once.
    pub max_size: u32,
    /// Connections kept open when idle.
    pub min_idle: u32,
    /// How long a request waits for a free connection (or a new one) before it gives up
    /// with "unavailable".
    pub connection_timeout: Duration,
    /// PostgreSQL `statement_timeout` for every statement; zero disables it.
    pub statement_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 8,
            min_idle: 2,
            connection_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(2),
        }
    }
}

/// A pooled PostgreSQL connection that remembers whether it was lost, so the pool discards it
/// instead of lending it out again (diesel cannot tell on its own).
pub struct TrackedConnection {
    connection: PgConnection,
    broken: bool,
}

impl std::fmt::Debug for TrackedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackedConnection")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl TrackedConnection {
    /// Runs `work` on the connection; a failure that means the connection is gone marks it
    /// broken.
    pub fn run<T>(
        &mut self,
        work: impl FnOnce(&mut PgConnection) -> Result<T, DieselError>,
    ) -> Result<T, DieselError> {
        let result = work(&mut self.connection);
        if let Err(err) = &result {
            if classify(err) == Failure::ConnectionLost {
                self.broken = true;
            }
        }
        result
    }
}

/// Opens connections to one database and sets each one's statement timeout.
#[derive(Debug)]
pub struct ConnectionManager {
    url: String,
    statement_timeout: Duration,
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// PostgreSQL refused or could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectionError),
    /// The session setup statement failed.
    #[error(transparent)]
    Setup(#[from] DieselError),
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = TrackedConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<TrackedConnection, ConnectError> {
        let mut connection = PgConnection::establish(&self.url)?;
        let millis = self.statement_timeout.as_millis();
        diesel::sql_query(format!("SET statement_timeout = {millis}")).execute(&mut connection)?;
        Ok(TrackedConnection {
            connection,
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut TrackedConnection) -> Result<(), ConnectError> {
        conn.run(|c| diesel::sql_query("SELECT 1").execute(c))?;
        Ok(())
    }

    fn has_broken(&self, conn: &mut TrackedConnection) -> bool {
        conn.broken
    }
}

/// A pool of PostgreSQL connections.
pub type PgPool = r2d2::Pool<ConnectionManager>;

/// Builds a pool without connecting yet, so the service can start while PostgreSQL is
/// down; connections are opened in the background and on demand.
pub fn build_pool(url: &str, options: &PoolOptions) -> Result<PgPool, r2d2::Error> {
    let manager = ConnectionManager {
        url: url.to_owned(),
        statement_timeout: options.statement_timeout,
    };
    Ok(r2d2::Pool::builder()
        .max_size(options.max_size.max(1))
        .min_idle(Some(options.min_idle.min(options.max_size)))
        .connection_timeout(options.connection_timeout.max(Duration::from_millis(1)))
        // A round trip per checkout is too dear on the hot path; lost connections are
        // detected by the failure itself (TrackedConnection) instead.
        .test_on_check_out(false)
        .error_handler(Box::new(LogPoolErrors))
        .build_unchecked(manager))
}

#[derive(Debug)]
struct LogPoolErrors;

impl r2d2::HandleError<ConnectError> for LogPoolErrors {
    fn handle_error(&self, error: ConnectError) {
        tracing::warn!(error = %error, "database connection failed");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The connection is gone (server down, restarted, network).
    ConnectionLost,
    /// Transient: timeout, serialization failure; the connection is fine.
    Transient,
    /// Anything else.
    Permanent,
}

pub(crate) fn classify(err: &DieselError) -> Failure {
    match err {
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                Failure::ConnectionLost
            }
            DatabaseErrorKind::SerializationFailure => Failure::Transient,
            _ => {
                let message = info.message();
                if message.starts_with("canceling statement due to statement timeout") {
                    Failure::Transient
                } else if message.starts_with("terminating connection")
                    || message.contains("server closed the connection")
                    || message.contains("no connection to the server")
                    || message.starts_with("the database system is")
                {
                    Failure::ConnectionLost
                } else {
                    Failure::Permanent
                }
            }
        },
        _ => Failure::Permanent,
    }
}

/// Maps a diesel error to the domain's port error: lost connections and timeouts are
/// "unavailable" (retry later), the rest "failed".
pub(crate) fn port_error(err: DieselError) -> PortError {
    match classify(&err) {
        Failure::ConnectionLost | Failure::Transient => PortError::unavailable(err),
        Failure::Permanent => PortError::failed(err),
    }
}

/// Admits at most as many requests to the pool as it has connections, first come first
/// served. r2d2's own wait lets newcomers overtake waiters, which under saturation starves
/// some requests for seconds; waiting here is fair and parks no blocking thread.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    permits: Arc<Semaphore>,
    wait: Duration,
    waiting: Arc<AtomicUsize>,
}

impl Gate {
    pub(crate) fn for_pool(pool: &PgPool) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(pool.max_size() as usize)),
            wait: pool.connection_timeout(),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Requests waiting for admission right now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

/// No connection became free within the pool's connection timeout.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {0:?} waiting for a database connection")]
struct PoolTimeout(Duration);

/// Runs blocking database work off the async executor on a pooled connection.
pub(crate) async fn run_blocking<T, F>(gate: &Gate, pool: &PgPool, work: F) -> Result<T, PortError>
where
    T: Send + 'static,
    F: FnOnce(&mut PgConnection) -> Result<T, DieselError> + Send + 'static,
{
    with_connection(gate, pool, move |conn| conn.run(work).map_err(port_error)).await
}

/// Runs `work` on the blocking pool with one checked-out connection.
pub(crate) async fn with_connection<T, F>(
    gate: &Gate,
    pool: &PgPool,
    work: F,
) -> Result<T, PortError>
where
    T: Send + 'static,
    F: FnOnce(&mut TrackedConnection) -> Result<T, PortError> + Send + 'static,
{
    with_pooled(gate, pool, move |mut conn| work(&mut conn)).await
}

/// A connection checked out of the pool; it goes back when dropped.
pub(crate) type Pooled = r2d2::PooledConnection<ConnectionManager>;

/// Runs `work` on the blocking pool with one checked-out connection, admitted fairly by
/// `gate`; `work` may run several statements on it.
pub(crate) async fn with_pooled<T, F>(gate: &Gate, pool: &PgPool, work: F) -> Result<T, PortError>
where
    T: Send + 'static,
    F: FnOnce(Pooled) -> Result<T, PortError> + Send + 'static,
{
    // One budget for the whole wait (admission, then a connection), so a caller hears 503
    // within the configured timeout, not twice it.
    let deadline = Instant::now() + gate.wait;
    gate.waiting.fetch_add(1, Ordering::Relaxed);
    let admitted = tokio::time::timeout(gate.wait, Arc::clone(&gate.permits).acquire_owned()).await;
    gate.waiting.fetch_sub(1, Ordering::Relaxed);
    let permit = admitted
        .map_err(|_| PortError::unavailable(PoolTimeout(gate.wait)))?
        .map_err(PortError::failed)?;
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let conn = pool
            .get_timeout(remaining.max(Duration::from_millis(1)))
            .map_err(PortError::unavailable)?;
        work(conn)
    })
    .await
    .map_err(PortError::failed)?
}
