//! The relay's leadership: a Postgres session advisory lock on a connection of its own.
//!
//! A lock lives exactly as long as its session, so the session must end when its holder stops
//! working, however it stops:
//! - the process dies: the kernel closes the socket and Postgres ends the session at once;
//! - the process is paused (SIGSTOP, a stuck VM) or hangs: its heartbeat stops, and the
//!   server ends the idle session after `idle_session_timeout`;
//! - the network to Postgres is cut: the server's TCP keepalives (and `tcp_user_timeout` for
//!   unacknowledged data) end the session on the server side, and the holder's own queries
//!   time out on the client side, so it stops leading on its own.
//!
//! A standby takes the lock within that bound plus its retry interval (docs/relay.md).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::error::RelayError;

/// The server ends a lock session idle for longer than this (its holder is paused or hung).
pub const LOCK_IDLE_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a leader proves it is alive on its lock connection.
pub const LOCK_HEARTBEAT: Duration = Duration::from_secs(2);

/// Opens a connection for the lock, with the server-side timeouts that release it when its
/// holder stops (see the module docs). `SET` rather than startup options, as the pools do.
pub async fn connect(
    options: &PgConnectOptions,
    query_timeout: Duration,
) -> Result<PgConnection, RelayError> {
    let connecting = async {
        let mut conn = PgConnection::connect_with(options).await?;
        conn.execute(
            format!(
                "SET statement_timeout = '30s'; SET idle_in_transaction_session_timeout = '30s'; \
                 SET idle_session_timeout = '{}ms'; SET tcp_keepalives_idle = 5; \
                 SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3; \
                 SET tcp_user_timeout = 10000",
                LOCK_IDLE_SESSION_TIMEOUT.as_millis()
            )
            .as_str(),
        )
        .await?;
        Ok::<_, sqlx::Error>(conn)
    };
    timed(query_timeout, "lock connect", connecting).await
}

/// `future`, or [`RelayError::Timeout`] after `limit`: no relay query waits forever on a
/// database it cannot reach.
pub async fn timed<T, E: Into<RelayError>>(
    limit: Duration,
    operation: &'static str,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, RelayError> {
    match tokio::time::timeout(limit, future).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(RelayError::Timeout {
            operation,
            after: limit,
        }),
    }
}

/// The held lock: its connection, shared with a heartbeat task that pings it every
/// [`LOCK_HEARTBEAT`] and marks the leadership lost when a ping fails or times out.
pub struct Leadership {
    conn: Arc<Mutex<PgConnection>>,
    lost: Arc<AtomicBool>,
    heartbeat: JoinHandle<()>,
    query_timeout: Duration,
}

impl Leadership {
    pub fn new(conn: PgConnection, query_timeout: Duration) -> Self {
        let conn = Arc::new(Mutex::new(conn));
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(heartbeat(Arc::downgrade(&conn), lost.clone(), query_timeout));
        Self {
            conn,
            lost,
            heartbeat,
            query_timeout,
        }
    }

    /// Whether the heartbeat saw the connection fail.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// Runs `work` on the lock's connection, bounded by the query timeout. A failure marks the
    /// leadership lost: on this connection, any error may mean the session (and the lock) is gone.
    pub async fn with<T, F>(&self, operation: &'static str, work: F) -> Result<T, RelayError>
    where
        F: for<'c> FnOnce(
            &'c mut PgConnection,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, sqlx::Error>> + Send + 'c>,
        >,
    {
        let outcome = match tokio::time::timeout(self.query_timeout, async {
            let mut conn = self.conn.lock().await;
            work(&mut conn).await
        })
        .await
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(RelayError::LeadershipLost(error)),
            Err(_) => Err(RelayError::Timeout {
                operation,
                after: self.query_timeout,
            }),
        };
        if outcome.is_err() {
            self.lost.store(true, Ordering::Release);
        }
        outcome
    }

    /// Proves the lock is still held (its session still answers) before publishing: a relay
    /// whose lock connection died may already have a successor.
    pub async fn ping(&self) -> Result<(), RelayError> {
        self.with("lock ping", |conn| Box::pin(conn.ping())).await
    }

    /// Stops the heartbeat and closes the connection (Postgres releases the lock at once).
    pub async fn release(self) {
        self.heartbeat.abort();
        let _ = self.heartbeat.await;
        if let Ok(conn) = Arc::try_unwrap(self.conn) {
            let _ = tokio::time::timeout(self.query_timeout, conn.into_inner().close()).await;
        }
    }
}

/// Holds the connection only weakly: dropping the [`Leadership`] drops the connection (closing
/// its socket, so Postgres releases the lock), and the heartbeat ends with it.
async fn heartbeat(conn: Weak<Mutex<PgConnection>>, lost: Arc<AtomicBool>, limit: Duration) {
    loop {
        tokio::time::sleep(LOCK_HEARTBEAT).await;
        let Some(conn) = conn.upgrade() else {
            return;
        };
        let ping = tokio::time::timeout(limit, async { conn.lock().await.ping().await }).await;
        drop(conn);
        if !matches!(ping, Ok(Ok(()))) {
            lost.store(true, Ordering::Release);
            return;
        }
    }
}
