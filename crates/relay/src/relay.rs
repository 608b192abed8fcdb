use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use eventstore::{GlobalLog, LogCursor};
use platform::http::ReadinessFlags;
use prometheus::Registry;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::checkpoint::{self, Checkpoint};
use crate::config::RelayConfig;
use crate::error::RelayError;
use crate::lock::{self, timed, Leadership};
use crate::metrics::RelayMetrics;

/// The readiness flag the relay sets while the stream does not match the store.
pub const READINESS_FLAG: &str = "relay";

/// The channel every event-writing transaction notifies at commit (a trigger on `events`).
pub const COMMIT_CHANNEL: &str = "sim_events";

/// `LISTEN sim_events` on a connection of its own, made again after a failure (notifications
/// sent meanwhile are lost; the fallback poll covers them).
struct CommitListener {
    options: PgConnectOptions,
    listener: Option<sqlx::postgres::PgListener>,
}

impl CommitListener {
    fn new(pool: &PgPool) -> Self {
        Self {
            options: (*pool.connect_options()).clone().application_name("relay-listen"),
            listener: None,
        }
    }

    /// Resolves at the next commit notification; pending forever while no listening
    /// connection can be made (the fallback poll goes on meanwhile).
    async fn next(&mut self) {
        if self.listener.is_none() {
            let connected = async {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect_lazy_with(self.options.clone());
                let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                listener.listen(COMMIT_CHANNEL).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            match tokio::time::timeout(Duration::from_secs(5), connected).await {
                Ok(Ok(listener)) => self.listener = Some(listener),
                Ok(Err(error)) => {
                    tracing::debug!(%error, "cannot listen for commits; polling meanwhile");
                    return std::future::pending().await;
                }
                Err(_) => return std::future::pending().await,
            }
        }
        let Some(listener) = self.listener.as_mut() else {
            return std::future::pending().await;
        };
        if let Err(error) = listener.recv().await {
            tracing::debug!(%error, "commit notifications interrupted; listening again");
            self.listener = None;
        }
    }
}

/// Where publishing stands, known only after a sync with the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    /// The last event known to be in the stream.
    pub cursor: LogCursor,
    /// The stream's last sequence, sent as `Nats-Expected-Last-Sequence`.
    pub last_sequence: u64,
    /// The NATS client's connection count at the sync: a reconnect forces a new sync.
    pub connects: u64,
}

/// Publishes the global event log to a JetStream stream, in order, each event once.
///
/// Only the relay holding the Postgres advisory lock of its stream publishes; others stand by.
/// See `docs/relay.md`.
pub struct Relay {
    pub(crate) config: RelayConfig,
    pub(crate) pool: PgPool,
    pub(crate) log: GlobalLog,
    lock_options: PgConnectOptions,
    pub(crate) client: async_nats::Client,
    pub(crate) jetstream: async_nats::jetstream::Context,
    pub(crate) metrics: RelayMetrics,
    pub(crate) readiness: Option<ReadinessFlags>,
    /// `Some` exactly while this relay leads.
    pub(crate) leadership: Option<Leadership>,
    /// A connection kept between failed lock attempts, so a standby does not reconnect each time.
    standby: Option<PgConnection>,
    pub(crate) position: Option<Position>,
    /// The last (checkpoint, rewind target) counted, so a rewind retried until it succeeds
    /// counts once.
    pub(crate) last_rewind: Option<(LogCursor, LogCursor)>,
    pub(crate) store_id: Option<Uuid>,
    /// The mismatch last reported (logged once, until it changes or ends).
    pub(crate) mismatch: Option<String>,
    lag_refreshed: Option<Instant>,
}

impl Relay {
    /// A relay reading the log from `pool` and publishing through `client`; its metrics are
    /// registered into `registry`. The lock connection is opened separately with the pool's
    /// connect options (a pooled connection could be recycled, dropping the lock silently).
    pub fn new(
        config: RelayConfig,
        pool: PgPool,
        client: async_nats::Client,
        registry: &Registry,
    ) -> Result<Self, RelayError> {
        config.validate()?;
        let metrics = RelayMetrics::register(registry, &config.stream)?;
        let lock_options = (*pool.connect_options())
            .clone()
            .application_name(&format!("relay-lock:{}", config.stream));
        let jetstream = async_nats::jetstream::ContextBuilder::new()
            .max_ack_inflight(config.max_in_flight)
            .backpressure_on_inflight(true)
            .build(client.clone());
        Ok(Self {
            log: GlobalLog::new(pool.clone()),
            config,
            pool,
            lock_options,
            client,
            jetstream,
            metrics,
            readiness: None,
            leadership: None,
            standby: None,
            position: None,
            last_rewind: None,
            store_id: None,
            mismatch: None,
            lag_refreshed: None,
        })
    }

    /// Reports a mismatch between stream and store to the process's `/ready`.
    pub fn with_readiness(mut self, flags: ReadinessFlags) -> Self {
        self.readiness = Some(flags);
        self
    }

    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    pub fn metrics(&self) -> &RelayMetrics {
        &self.metrics
    }

    pub fn is_leader(&self) -> bool {
        self.leadership.is_some()
    }

    /// The last event known to be in the stream, once synced.
    pub fn cursor(&self) -> Option<LogCursor> {
        self.position.map(|position| position.cursor)
    }

    /// Why the relay refuses to publish, while the stream does not match the store.
    pub fn mismatch(&self) -> Option<&str> {
        self.mismatch.as_deref()
    }

    /// Takes the stream's advisory lock unless another relay holds it. Never blocks.
    pub async fn try_lead(&mut self) -> Result<bool, RelayError> {
        if let Some(leadership) = &self.leadership {
            if !leadership.is_lost() {
                return Ok(true);
            }
            self.lose_leadership(&"the lock's connection stopped answering");
        }
        let timeout = self.config.query_timeout;
        let mut conn = match self.standby.take() {
            Some(conn) => conn,
            None => lock::connect(&self.lock_options, timeout).await?,
        };
        let acquired = timed(
            timeout,
            "lock attempt",
            sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock(hashtext('relay:' || $1))")
                .bind(&self.config.stream)
                .fetch_one(&mut conn),
        )
        .await?;
        if acquired {
            tracing::info!(stream = %self.config.stream, "relay lock taken: this relay is active");
            self.leadership = Some(Leadership::new(conn, timeout));
            self.position = None;
            self.metrics.is_leader.set(1);
        } else {
            self.standby = Some(conn);
        }
        Ok(acquired)
    }

    /// Gives the lock up: the connection closes, so Postgres releases it even if the close
    /// handshake fails. A standby reports neither lag nor mismatch: the leader does.
    pub(crate) fn lose_leadership(&mut self, reason: &dyn std::fmt::Display) {
        if self.leadership.take().is_some() {
            tracing::warn!(stream = %self.config.stream, %reason, "relay lock lost: publishing stopped");
        }
        self.position = None;
        self.metrics.is_leader.set(0);
        self.metrics.clear_lag();
        self.leave_mismatch();
    }

    /// The lock's connection, failing over to standby when it is gone.
    pub(crate) fn leadership(&mut self) -> Result<&Leadership, RelayError> {
        match &self.leadership {
            Some(leadership) if leadership.is_lost() => {
                self.lose_leadership(&"the lock's connection stopped answering");
                Err(RelayError::NotLeader)
            }
            Some(_) => Ok(self.leadership.as_ref().expect("checked just above")),
            None => Err(RelayError::NotLeader),
        }
    }

    pub(crate) async fn read_checkpoint(&mut self) -> Result<Option<Checkpoint>, RelayError> {
        let stream = self.config.stream.clone();
        let read = self
            .leadership()?
            .with("checkpoint read", move |conn| {
                Box::pin(async move { checkpoint::read(conn, &stream).await })
            })
            .await;
        if let Err(error) = &read {
            self.lose_leadership(error);
        }
        read
    }

    pub(crate) async fn write_checkpoint(&mut self, checkpoint: Checkpoint) -> Result<(), RelayError> {
        let stream = self.config.stream.clone();
        let written = self
            .leadership()?
            .with("checkpoint write", move |conn| {
                Box::pin(async move { checkpoint::write(conn, &stream, checkpoint).await })
            })
            .await;
        if let Err(error) = &written {
            // The lock's connection may be gone; the stream holds these events anyway, and the
            // next leader's sync finds them there.
            self.lose_leadership(error);
        }
        written
    }

    /// This store's identity, read once.
    pub(crate) async fn store_id(&mut self) -> Result<Uuid, RelayError> {
        if let Some(id) = self.store_id {
            return Ok(id);
        }
        let id = timed(self.config.query_timeout, "store id", self.log.store_id()).await?;
        self.store_id = Some(id);
        Ok(id)
    }

    /// Publishes the next batch of readable events, if this relay leads, and returns how many
    /// JetStream newly stored. On any error nothing later than the acknowledged prefix counts
    /// as published, and the next call re-syncs with the stream first.
    pub async fn publish_pending_once(&mut self) -> Result<usize, RelayError> {
        if !self.try_lead().await? {
            return Err(RelayError::NotLeader);
        }
        let connects = self.client.statistics().connects.load(Ordering::Relaxed);
        let position = match self.position {
            Some(position) if position.connects == connects => position,
            _ => {
                let position = self.sync(connects).await?;
                self.position = Some(position);
                position
            }
        };
        let batch = timed(
            self.config.query_timeout,
            "log read",
            self.log
                .read_after(position.cursor, self.config.batch_size as i64),
        )
        .await?;
        if batch.is_empty() {
            return Ok(0);
        }
        // A relay whose lock connection died may already have a successor: stop before
        // publishing. (One that dies while a batch is in flight is stopped by the expected
        // sequence, since the successor's publishes move the stream on.)
        let alive = self.leadership()?.ping().await;
        if let Err(error) = alive {
            self.lose_leadership(&error);
            return Err(error);
        }

        let published = self.publish_batch(&batch, position.last_sequence).await;
        if published.acked > 0 {
            let last = &batch[published.acked - 1];
            let advanced = Position {
                cursor: LogCursor::after(last),
                last_sequence: published.last_sequence,
                connects,
            };
            self.metrics.events_published.inc_by(published.stored as u64);
            self.write_checkpoint(Checkpoint {
                cursor: advanced.cursor,
                stream_sequence: advanced.last_sequence,
            })
            .await?;
            self.position = Some(advanced);
        }
        if published.resync {
            self.position = None;
        }
        match published.failure {
            None => {}
            Some(RelayError::StreamMismatch { sequence, reason, .. }) => {
                return Err(self.enter_mismatch(sequence, reason));
            }
            Some(error) => {
                tracing::warn!(stream = %self.config.stream, %error, acked = published.acked, "publishing stopped; re-syncing with the stream");
                self.position = None;
                return Err(error);
            }
        }
        Ok(published.stored)
    }

    /// Publishes until `shutdown` completes: as the active relay while it holds the lock, as a
    /// standby retrying the lock every `lock_retry_interval` otherwise. Errors are logged and
    /// retried after `lock_retry_interval`, each time after a fresh sync with the stream. When
    /// caught up, the leader waits for the next commit's notification (or `poll_interval`).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut commits = CommitListener::new(&self.pool);
        loop {
            let (pause, idle) = tokio::select! {
                biased;
                () = &mut shutdown => break,
                pause = self.step() => pause,
            };
            if pause.is_zero() {
                continue;
            }
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
                () = commits.next(), if idle => {}
            }
        }
        self.release().await;
    }

    /// One publishing attempt; the pause before the next one, and whether the leader is
    /// merely caught up (then a commit's notification ends the pause early).
    async fn step(&mut self) -> (Duration, bool) {
        let pause = self.attempt().await;
        (pause, pause == self.config.poll_interval && self.is_leader())
    }

    async fn attempt(&mut self) -> Duration {
        let outcome = self.publish_pending_once().await;
        // Also while NATS is away or the stream is refused: that is when lag matters.
        if self
            .lag_refreshed
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            self.lag_refreshed = Some(Instant::now());
            if let Err(error) = self.refresh_lag().await {
                tracing::debug!(%error, "cannot compute the relay's lag");
            }
        }
        match outcome {
            Ok(published) if published >= self.config.batch_size => Duration::ZERO,
            Ok(_) => self.config.poll_interval,
            Err(RelayError::NotLeader) => self.config.lock_retry_interval,
            Err(RelayError::StreamMismatch { .. }) => self.config.mismatch_recheck_interval,
            Err(error) => {
                tracing::warn!(stream = %self.config.stream, %error, "relay error; retrying");
                self.config.lock_retry_interval
            }
        }
    }

    /// Closes the lock connection (releasing the lock for a standby at once).
    pub async fn release(&mut self) {
        self.position = None;
        self.metrics.is_leader.set(0);
        self.metrics.clear_lag();
        if let Some(leadership) = self.leadership.take() {
            tracing::info!(stream = %self.config.stream, "relay stopping; lock released");
            leadership.release().await;
        }
        if let Some(conn) = self.standby.take() {
            let _ = conn.close().await;
        }
    }
}
