use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::stream::{self, RawMessageErrorKind, StorageType};
use async_nats::HeaderMap;
use eventstore::{GlobalLog, LogCursor, StoredEvent};
use prometheus::Registry;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};

use crate::checkpoint::{self, Checkpoint};
use crate::config::RelayConfig;
use crate::error::RelayError;
use crate::metrics::RelayMetrics;

/// The event's global-log position (`StoredEvent::position`).
pub const HEADER_POSITION: &str = "Sim-Position";
/// The event's writing transaction; with the position, the relay's cursor in the global log.
pub const HEADER_TRANSACTION_ID: &str = "Sim-Transaction-Id";
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
pub const HEADER_EXPECTED_LAST_SEQUENCE: &str = "Nats-Expected-Last-Sequence";
pub const HEADER_EXPECTED_STREAM: &str = "Nats-Expected-Stream";
pub const HEADER_EXPECTED_LAST_MSG_ID: &str = "Nats-Expected-Last-Msg-Id";

/// How far back from the stream's end the relay looks for its own last message (messages of
/// other publishers and deleted sequences are stepped over).
const TAIL_PROBE_LIMIT: u64 = 10_000;
/// `relay_lag_events` counts up to this many events, so the query stays cheap however far
/// behind the relay is.
const LAG_COUNT_BOUND: i64 = 10_000;

/// `<aggregate_type>:<aggregate_id>:<sequence>`: the same for every republish of one event,
/// so JetStream drops the repeats within its duplicate window.
pub fn message_id(event: &StoredEvent) -> String {
    format!(
        "{}:{}:{}",
        event.aggregate_type, event.aggregate_id, event.sequence
    )
}

/// The global-log cursor carried by a relay message's headers; `None` for anything else.
pub fn message_cursor(headers: &HeaderMap) -> Option<LogCursor> {
    let transaction_id = headers.get(HEADER_TRANSACTION_ID)?.as_str().parse().ok()?;
    let position = headers.get(HEADER_POSITION)?.as_str().parse().ok()?;
    Some(LogCursor {
        transaction_id,
        position,
    })
}

/// Where publishing stands, known only after a sync with the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    /// The last event known to be in the stream.
    cursor: LogCursor,
    /// The stream's last sequence, sent as `Nats-Expected-Last-Sequence`.
    last_sequence: u64,
    /// The NATS client's connection count at the sync: a reconnect forces a new sync.
    connects: u64,
}

/// Publishes the global event log to a JetStream stream, in order, each event once.
///
/// Only the relay holding the Postgres advisory lock of its stream publishes; others stand by.
/// See `docs/relay.md`.
pub struct Relay {
    config: RelayConfig,
    pool: PgPool,
    log: GlobalLog,
    lock_options: PgConnectOptions,
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    metrics: RelayMetrics,
    /// The connection holding the advisory lock; `Some` exactly while this relay leads.
    lock: Option<PgConnection>,
    /// A connection kept between failed lock attempts, so a standby does not reconnect each time.
    standby: Option<PgConnection>,
    position: Option<Position>,
    /// The last (checkpoint, rewind target) counted, so a rewind retried until it succeeds
    /// counts once.
    last_rewind: Option<(LogCursor, LogCursor)>,
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
            lock: None,
            standby: None,
            position: None,
            last_rewind: None,
        })
    }

    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    pub fn metrics(&self) -> &RelayMetrics {
        &self.metrics
    }

    pub fn is_leader(&self) -> bool {
        self.lock.is_some()
    }

    /// The last event known to be in the stream, once synced.
    pub fn cursor(&self) -> Option<LogCursor> {
        self.position.map(|position| position.cursor)
    }

    /// Takes the stream's advisory lock unless another relay holds it. Never blocks.
    pub async fn try_lead(&mut self) -> Result<bool, RelayError> {
        if self.lock.is_some() {
            return Ok(true);
        }
        let mut conn = match self.standby.take() {
            Some(conn) => conn,
            None => self.connect_lock().await?,
        };
        let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('relay:' || $1))")
            .bind(&self.config.stream)
            .fetch_one(&mut conn)
            .await?;
        if acquired {
            tracing::info!(stream = %self.config.stream, "relay lock taken: this relay is active");
            self.lock = Some(conn);
            self.position = None;
            self.metrics.is_leader.set(1);
        } else {
            self.standby = Some(conn);
        }
        Ok(acquired)
    }

    async fn connect_lock(&self) -> Result<PgConnection, RelayError> {
        let mut conn = PgConnection::connect_with(&self.lock_options).await?;
        // pg_try_advisory_lock never waits, so a statement timeout is harmless here; an idle
        // transaction on this connection would hold every reader of the log back.
        conn.execute("SET statement_timeout = '30s'; SET idle_in_transaction_session_timeout = '30s'")
            .await?;
        Ok(conn)
    }

    /// Gives the lock up: the connection closes, so Postgres releases it even if the close
    /// handshake fails.
    fn lose_leadership(&mut self, reason: &dyn std::fmt::Display) {
        if self.lock.take().is_some() {
            tracing::warn!(stream = %self.config.stream, %reason, "relay lock lost: publishing stopped");
        }
        self.position = None;
        self.metrics.is_leader.set(0);
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

        let batch = self
            .log
            .read_after(position.cursor, self.config.batch_size as i64)
            .await?;
        if batch.is_empty() {
            self.metrics.lag_events.set(0);
            self.metrics.lag_seconds.set(0.0);
            return Ok(0);
        }
        // A relay whose lock connection died may already have a successor: stop before
        // publishing. (One that dies while a batch is in flight is stopped by the expected
        // sequence, since the successor's publishes move the stream on.)
        let alive = match self.lock.as_mut() {
            Some(conn) => conn.ping().await,
            None => return Err(RelayError::NotLeader),
        };
        if let Err(error) = alive {
            self.lose_leadership(&error);
            return Err(RelayError::LeadershipLost(error));
        }

        let (acked, failure) = self.publish_batch(&batch, position.last_sequence).await;
        if acked > 0 {
            let last = &batch[acked - 1];
            let advanced = Position {
                cursor: LogCursor::after(last),
                last_sequence: position.last_sequence + acked as u64,
                connects,
            };
            self.metrics.events_published.inc_by(acked as u64);
            let conn = self.lock.as_mut().ok_or(RelayError::NotLeader)?;
            let written = checkpoint::write(
                conn,
                &self.config.stream,
                Checkpoint {
                    cursor: advanced.cursor,
                    stream_sequence: advanced.last_sequence,
                },
            )
            .await;
            if let Err(error) = written {
                // The lock's connection may be gone; the stream holds these events anyway,
                // and the next leader's sync finds them there.
                self.lose_leadership(&error);
                return Err(RelayError::LeadershipLost(error));
            }
            self.position = Some(advanced);
        }
        if let Some(error) = failure {
            tracing::warn!(stream = %self.config.stream, %error, acked, "publishing stopped; re-syncing with the stream");
            self.position = None;
            return Err(error);
        }
        self.update_lag().await?;
        Ok(acked)
    }

    /// Publishes `batch` with up to `max_in_flight` acknowledgements outstanding and returns
    /// how many leading events were acknowledged in order, and the failure that ended it.
    ///
    /// The k-th message expects the stream's last sequence to be `last_sequence + k`, and
    /// (from the second on) the stream's last message id to be its predecessor's. The sequence
    /// alone is not enough with several in flight: after a refusal, a later message can match
    /// again when exactly that many foreign messages were appended, and would be stored with a
    /// gap before it. The id chain makes every stored message follow its predecessor, so the
    /// stream always holds a prefix of the batch.
    async fn publish_batch(&self, batch: &[StoredEvent], last_sequence: u64) -> (usize, Option<RelayError>) {
        let mut in_flight: VecDeque<(usize, PublishAckFuture)> = VecDeque::new();
        let mut acked = 0;
        for (index, event) in batch.iter().enumerate() {
            if in_flight.len() >= self.config.max_in_flight {
                let (index, ack) = in_flight.pop_front().expect("a full window is not empty");
                if let Err(error) = self.confirm(&batch[index], index, last_sequence, ack.await).await {
                    return (acked, Some(error));
                }
                acked += 1;
            }
            let previous = index.checked_sub(1).map(|i| &batch[i]);
            match self.send(event, previous, last_sequence + index as u64).await {
                Ok(ack) => in_flight.push_back((index, ack)),
                Err(error) => {
                    // What is already in flight may still be stored; only acknowledged
                    // events count, the next sync finds the rest in the stream.
                    return (acked, Some(error));
                }
            }
        }
        while let Some((index, ack)) = in_flight.pop_front() {
            if let Err(error) = self.confirm(&batch[index], index, last_sequence, ack.await).await {
                return (acked, Some(error));
            }
            acked += 1;
        }
        (acked, None)
    }

    async fn send(
        &self,
        event: &StoredEvent,
        previous: Option<&StoredEvent>,
        expected_last_sequence: u64,
    ) -> Result<PublishAckFuture, RelayError> {
        let subject = self
            .config
            .subject(&event.iccid, &event.event_type)
            .ok_or_else(|| RelayError::InvalidSubject {
                position: event.position,
                iccid: event.iccid.clone(),
                event_type: event.event_type.clone(),
            })?;
        let cursor = LogCursor::after(event);
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_MSG_ID, message_id(event).as_str());
        headers.insert(HEADER_EXPECTED_STREAM, self.config.stream.as_str());
        headers.insert(
            HEADER_EXPECTED_LAST_SEQUENCE,
            expected_last_sequence.to_string().as_str(),
        );
        // Not on a batch's first message: after a server restart the stream's last id may be
        // unknown to it (older than the duplicate window), and the sequence, fresh from the
        // sync, is enough there.
        if let Some(previous) = previous {
            headers.insert(HEADER_EXPECTED_LAST_MSG_ID, message_id(previous).as_str());
        }
        headers.insert(HEADER_POSITION, cursor.position.to_string().as_str());
        headers.insert(HEADER_TRANSACTION_ID, cursor.transaction_id.to_string().as_str());
        let body = serde_json::to_vec(event)?;
        Ok(self
            .jetstream
            .publish_with_headers(subject, headers, body.into())
            .await?)
    }

    /// Checks that the acknowledgement is for a new message at exactly the expected sequence.
    async fn confirm(
        &self,
        event: &StoredEvent,
        index: usize,
        last_sequence: u64,
        ack: Result<PublishAck, async_nats::jetstream::context::PublishError>,
    ) -> Result<(), RelayError> {
        let expected_last = last_sequence + index as u64;
        let ack = match ack {
            Ok(ack) => ack,
            Err(error)
                if matches!(
                    error.kind(),
                    PublishErrorKind::WrongLastSequence | PublishErrorKind::WrongLastMessageId
                ) =>
            {
                return Err(RelayError::StaleSequence {
                    stream: self.config.stream.clone(),
                    expected: expected_last,
                    source: error,
                })
            }
            Err(error) => return Err(error.into()),
        };
        if ack.duplicate {
            return Err(self.classify_duplicate(event, ack.sequence).await);
        }
        if ack.stream != self.config.stream || ack.sequence != expected_last + 1 {
            return Err(RelayError::UnexpectedAck {
                stream: ack.stream,
                sequence: ack.sequence,
                expected_stream: self.config.stream.clone(),
                expected: expected_last + 1,
            });
        }
        Ok(())
    }

    /// A duplicate is harmless when the stream holds the original (another relay published
    /// it: the next sync moves past it). When the stream lost the original but still remembers
    /// its id, republishing cannot succeed before the duplicate window has passed.
    async fn classify_duplicate(&self, event: &StoredEvent, sequence: u64) -> RelayError {
        let msg_id = message_id(event);
        let held = match self.jetstream.get_stream_no_info(&self.config.stream).await {
            Ok(stream) => match stream.get_raw_message(sequence).await {
                Ok(message) => {
                    message.headers.get(HEADER_MSG_ID).map(|v| v.as_str()) == Some(msg_id.as_str())
                }
                Err(error) => error.kind() != RawMessageErrorKind::NoMessageFound,
            },
            // Unknown: assume the ordinary case; the next sync looks at the stream again.
            Err(_) => true,
        };
        if held {
            RelayError::Duplicate { msg_id, sequence }
        } else {
            tracing::error!(
                stream = %self.config.stream,
                %msg_id,
                sequence,
                "JetStream lost a message whose id it still remembers; it will be republished \
                 once the duplicate window has passed"
            );
            RelayError::ForgottenDuplicate { msg_id, sequence }
        }
    }

    /// Finds where publishing stands: the stream's last relay message against the checkpoint.
    ///
    /// - stream behind the checkpoint: JetStream lost acknowledged messages (its fsync is lazy);
    ///   rewind to the stream's last message (or the start) and republish the rest;
    /// - stream ahead: a relay published and died before its checkpoint commit; move forward,
    ///   so nothing is published twice.
    async fn sync(&mut self, connects: u64) -> Result<Position, RelayError> {
        let mut stream = self.ensure_stream().await?;
        let state = stream
            .info()
            .await
            .map_err(|e| RelayError::stream("stream info", e))?
            .state
            .clone();
        let tail = self.tail(&stream, &state).await?;
        let conn = self.lock.as_mut().ok_or(RelayError::NotLeader)?;
        let checkpoint = match checkpoint::read(conn, &self.config.stream).await {
            Ok(checkpoint) => checkpoint,
            Err(error) => {
                self.lose_leadership(&error);
                return Err(RelayError::LeadershipLost(error));
            }
        };
        let stream_name = &self.config.stream;
        let cursor = match (checkpoint, tail) {
            (None, tail) => tail.unwrap_or(LogCursor::START),
            (Some(checkpoint), Some(tail)) if tail >= checkpoint.cursor => {
                if tail > checkpoint.cursor {
                    tracing::info!(stream = %stream_name, ?tail, checkpoint = ?checkpoint.cursor,
                        "stream is ahead of the checkpoint; continuing after the stream's last message");
                }
                tail
            }
            (Some(checkpoint), tail) => {
                let target = tail.unwrap_or(LogCursor::START);
                if self.last_rewind != Some((checkpoint.cursor, target)) {
                    self.metrics.rewinds.inc();
                    self.last_rewind = Some((checkpoint.cursor, target));
                }
                tracing::warn!(stream = %stream_name, checkpoint = ?checkpoint.cursor, ?target,
                    stream_messages = state.messages,
                    "stream holds less than was acknowledged; republishing from its last message");
                target
            }
        };
        tracing::debug!(stream = %stream_name, ?cursor, last_sequence = state.last_sequence, "synced with the stream");
        Ok(Position {
            cursor,
            last_sequence: state.last_sequence,
            connects,
        })
    }

    /// The stream, created when missing (file storage, the configured duplicate window); an
    /// existing stream is used as it is.
    pub async fn ensure_stream(&self) -> Result<stream::Stream, RelayError> {
        self.jetstream
            .get_or_create_stream(stream::Config {
                name: self.config.stream.clone(),
                subjects: vec![self.config.stream_subjects()],
                storage: StorageType::File,
                duplicate_window: self.config.duplicate_window,
                ..Default::default()
            })
            .await
            .map_err(|e| RelayError::stream("stream create", e))
    }

    /// The cursor of the stream's last relay message. 2.9 servers cannot answer "last message
    /// on `<prefix>.v1.>`", so this walks back from the last sequence, stepping over deleted
    /// sequences and foreign messages.
    async fn tail(
        &self,
        stream: &stream::Stream,
        state: &stream::State,
    ) -> Result<Option<LogCursor>, RelayError> {
        if state.messages == 0 {
            return Ok(None);
        }
        let mut sequence = state.last_sequence;
        let mut probed = 0;
        while sequence >= state.first_sequence.max(1) {
            if probed == TAIL_PROBE_LIMIT {
                return Err(RelayError::TailNotFound {
                    stream: self.config.stream.clone(),
                    probed,
                });
            }
            probed += 1;
            match stream.get_raw_message(sequence).await {
                Ok(message) => {
                    if let Some(cursor) = message_cursor(&message.headers) {
                        return Ok(Some(cursor));
                    }
                }
                Err(error) if error.kind() == RawMessageErrorKind::NoMessageFound => {}
                Err(error) => return Err(RelayError::stream("message get", error)),
            }
            sequence -= 1;
        }
        Ok(None)
    }

    async fn update_lag(&self) -> Result<(), RelayError> {
        let Some(position) = self.position else {
            return Ok(());
        };
        let (count, age): (i64, f64) = sqlx::query_as(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(recorded_at)), 0)::float8 \
             FROM (SELECT recorded_at FROM events \
                   WHERE (transaction_id, position) > ($1::text::xid8, $2) \
                     AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
                   ORDER BY transaction_id, position LIMIT $3) pending",
        )
        .bind(position.cursor.transaction_id.to_string())
        .bind(position.cursor.position)
        .bind(LAG_COUNT_BOUND)
        .fetch_one(&self.pool)
        .await?;
        self.metrics.lag_events.set(count);
        self.metrics.lag_seconds.set(age.max(0.0));
        Ok(())
    }

    /// Publishes until `shutdown` completes: as the active relay while it holds the lock, as a
    /// standby retrying the lock every `lock_retry_interval` otherwise. Errors are logged and
    /// retried after `lock_retry_interval`, each time after a fresh sync with the stream.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let pause = tokio::select! {
                biased;
                () = &mut shutdown => break,
                pause = self.step() => pause,
            };
            if !pause.is_zero() {
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
        self.release().await;
    }

    async fn step(&mut self) -> Duration {
        match self.publish_pending_once().await {
            Ok(published) if published >= self.config.batch_size => Duration::ZERO,
            Ok(_) => self.config.poll_interval,
            Err(RelayError::NotLeader) => self.config.lock_retry_interval,
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
        if let Some(conn) = self.lock.take() {
            tracing::info!(stream = %self.config.stream, "relay stopping; lock released");
            let _ = conn.close().await;
        }
        if let Some(conn) = self.standby.take() {
            let _ = conn.close().await;
        }
    }
}
