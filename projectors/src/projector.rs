//! The live projector: one durable JetStream pull consumer, read in stream order, one message
//! (one Postgres transaction) at a time.

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use eventstore::StoredEvent;
use futures::StreamExt;
use readmodel::Cache;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::apply::{Applier, ApplyError, Outcome, UsageRollups, PROJECTION_LOCK_KEY};
use crate::config::{Config, ConsumerSettings};
use crate::metrics::ProjectorMetrics;

/// What a projector reads and under which name it records its progress.
#[derive(Debug, Clone)]
pub struct ProjectorSettings {
    /// The durable consumer's name and the `projector` column of the bookkeeping tables.
    pub name: String,
    pub stream: String,
    /// e.g. `sim.v1.>`.
    pub filter_subject: String,
    pub consumer: ConsumerSettings,
    /// Stop after this many messages (tests: "a projector stopped mid-stream").
    pub message_limit: Option<u64>,
}

impl ProjectorSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            name: config.projector.clone(),
            stream: config.stream.clone(),
            filter_subject: config.filter_subject(),
            consumer: config.consumer.clone(),
            message_limit: None,
        }
    }
}

/// Why [`Projector::run`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("cannot create the consumer: {0}")]
    Consumer(String),
}

#[derive(Clone)]
pub struct Projector {
    pool: PgPool,
    jetstream: jetstream::Context,
    cache: Cache,
    metrics: ProjectorMetrics,
    applier: Applier,
    settings: ProjectorSettings,
}

/// The projector's answer to one message, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Applied {
        gap_filled: u64,
    },
    Duplicate,
    Terminated,
    /// Shutdown came while a database error was being retried: not acknowledged.
    Abandoned,
}

impl Projector {
    /// `pool` must reach a migrated database; the usage rollups' kind is detected once here.
    pub async fn new(
        pool: PgPool,
        nats: async_nats::Client,
        cache: Cache,
        metrics: ProjectorMetrics,
        settings: ProjectorSettings,
    ) -> Result<Self, sqlx::Error> {
        let rollups = UsageRollups::detect(&pool).await?;
        // Every series exists from the start (at 0), so dashboards and alerts see them.
        let name = [settings.name.as_str()];
        for counter in [
            &metrics.applied,
            &metrics.duplicates,
            &metrics.gaps_filled,
            &metrics.undecodable,
            &metrics.retries,
        ] {
            counter.with_label_values(&name);
        }
        metrics.lag_events.with_label_values(&name);
        metrics.lag_seconds.with_label_values(&name);
        Ok(Self {
            applier: Applier::new(settings.name.clone(), rollups),
            jetstream: jetstream::new(nats),
            pool,
            cache,
            metrics,
            settings,
        })
    }

    pub fn settings(&self) -> &ProjectorSettings {
        &self.settings
    }

    /// Consumes until `shutdown` turns true (or the message limit is reached). Waits for the
    /// stream to exist, recreates the message stream after connection trouble, never gives up
    /// on a message because of a database error (it retries with backoff, unacknowledged).
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> Result<(), ProjectorError> {
        let lag = tokio::spawn(self.clone().refresh_lag_forever(shutdown.clone()));
        let result = self.consume(&mut shutdown).await;
        lag.abort();
        result
    }

    async fn consume(&self, shutdown: &mut watch::Receiver<bool>) -> Result<(), ProjectorError> {
        let mut handled: u64 = 0;
        let name = &self.settings.name;
        loop {
            let Some(consumer) = self.consumer(shutdown).await? else {
                return Ok(());
            };
            let messages = consumer
                .stream()
                .max_messages_per_batch(self.settings.consumer.batch)
                .messages()
                .await;
            let mut messages = match messages {
                Ok(messages) => messages,
                Err(error) => {
                    tracing::warn!(%error, projector = %name, "cannot pull messages; retrying");
                    if sleep_or_shutdown(Duration::from_secs(1), shutdown).await {
                        return Ok(());
                    }
                    continue;
                }
            };
            loop {
                if self.settings.message_limit.is_some_and(|limit| handled >= limit) {
                    return Ok(());
                }
                let next = tokio::select! {
                    biased;
                    _ = wait_for(shutdown) => return Ok(()),
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(message)) => {
                        if self.handle(message, shutdown).await == Handled::Abandoned {
                            return Ok(());
                        }
                        handled += 1;
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, projector = %name, "pull consumer error");
                        // After a reconnect the client looks the consumer up; when the server
                        // lost it (a wiped store, a deleted consumer) this stream would wait
                        // forever for messages nobody sends: recreate the consumer instead.
                        if matches!(
                            error.kind(),
                            MessagesErrorKind::Pull | MessagesErrorKind::NoResponders
                        ) {
                            break;
                        }
                    }
                    None => {
                        tracing::warn!(projector = %name, "message stream ended; recreating it");
                        break;
                    }
                }
            }
            if sleep_or_shutdown(Duration::from_millis(500), shutdown).await {
                return Ok(());
            }
        }
    }

    /// The durable consumer, created when missing; `None` on shutdown.
    async fn consumer(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<PullConsumer>, ProjectorError> {
        let settings = &self.settings;
        let mut delay = Duration::from_millis(200);
        loop {
            let attempt = async {
                let stream = self
                    .jetstream
                    .get_stream(&settings.stream)
                    .await
                    .map_err(|e| e.to_string())?;
                stream
                    .get_or_create_consumer(
                        &settings.name,
                        pull::Config {
                            durable_name: Some(settings.name.clone()),
                            description: Some("read models (projectors)".to_owned()),
                            deliver_policy: jetstream::consumer::DeliverPolicy::All,
                            ack_policy: jetstream::consumer::AckPolicy::Explicit,
                            ack_wait: settings.consumer.ack_wait,
                            max_ack_pending: settings.consumer.max_ack_pending,
                            filter_subject: settings.filter_subject.clone(),
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(|e| e.to_string())
            };
            match attempt.await {
                Ok(consumer) => return Ok(Some(consumer)),
                Err(error) => {
                    tracing::warn!(%error, stream = %settings.stream, "waiting for the stream / consumer");
                    if sleep_or_shutdown(delay, shutdown).await {
                        return Ok(None);
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// One message: decode, apply in one transaction, commit, the cache, then the ack.
    pub async fn handle(&self, message: jetstream::Message, shutdown: &mut watch::Receiver<bool>) -> Handled {
        let name = self.settings.name.as_str();
        let (stream_sequence, pending) = match message.info() {
            Ok(info) => (info.stream_sequence, info.pending),
            Err(_) => (0, 0),
        };
        let event: StoredEvent = match serde_json::from_slice(&message.payload) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(%error, subject = %message.subject, stream_sequence, "undecodable message; terminated");
                self.metrics.undecodable.with_label_values(&[name]).inc();
                if let Err(error) = message.ack_with(AckKind::Term).await {
                    tracing::warn!(%error, "cannot terminate the message");
                }
                return Handled::Terminated;
            }
        };
        let mut backoff = Duration::from_millis(100);
        let outcome = loop {
            match self.apply_one(&event, stream_sequence as i64).await {
                Ok(outcome) => break outcome,
                Err(error) if !error.is_retryable() => {
                    tracing::error!(%error, subject = %message.subject, stream_sequence, "event cannot be applied; terminated");
                    self.metrics.undecodable.with_label_values(&[name]).inc();
                    if let Err(error) = message.ack_with(AckKind::Term).await {
                        tracing::warn!(%error, "cannot terminate the message");
                    }
                    return Handled::Terminated;
                }
                Err(error) => {
                    tracing::warn!(%error, subject = %message.subject, stream_sequence, ?backoff, "applying failed; retrying");
                    self.metrics.retries.with_label_values(&[name]).inc();
                    // Keeps the message ours while we retry (no redelivery meanwhile).
                    let _ = message.ack_with(AckKind::Progress).await;
                    if sleep_or_shutdown(backoff, shutdown).await {
                        return Handled::Abandoned;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        };
        let handled = match outcome {
            Outcome::Applied { gap_filled } => {
                self.metrics
                    .applied
                    .with_label_values(&[name])
                    .inc_by(1 + gap_filled);
                self.metrics
                    .gaps_filled
                    .with_label_values(&[name])
                    .inc_by(gap_filled);
                if gap_filled > 0 {
                    tracing::info!(aggregate_id = %event.aggregate_id, sequence = event.sequence, gap_filled, "gap filled from the event store");
                }
                Handled::Applied { gap_filled }
            }
            Outcome::Duplicate => {
                self.metrics.duplicates.with_label_values(&[name]).inc();
                Handled::Duplicate
            }
        };
        // Committed: the cache, then the ack. In this order a crash before the ack means a
        // redelivery, which the version guard skips but which refreshes the cache again; with
        // the ack first, a crash between the two left the SIM's entry stale until its TTL.
        self.refresh_cache(&event.iccid).await;
        // A lost ack means a redelivery, which the version guard skips.
        if let Err(error) = message.double_ack().await {
            tracing::warn!(%error, stream_sequence, "ack failed; the redelivery will be skipped as a duplicate");
        }
        let lag = if pending == 0 {
            0.0
        } else {
            (chrono::Utc::now() - event.recorded_at).num_milliseconds().max(0) as f64 / 1000.0
        };
        self.metrics.lag_seconds.with_label_values(&[name]).set(lag);
        self.metrics
            .lag_events
            .with_label_values(&[name])
            .set(pending as i64);
        handled
    }

    /// One transaction: the shared projection lock (a rebuild's swap takes it exclusively),
    /// the guarded apply, the checkpoint.
    async fn apply_one(&self, event: &StoredEvent, stream_sequence: i64) -> Result<Outcome, ApplyError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
            .bind(PROJECTION_LOCK_KEY)
            .execute(&mut *tx)
            .await?;
        let caught_up = self.applier.catch_up_before(&mut tx, event).await?;
        let mut outcome = self
            .applier
            .apply_guarded(&mut tx, event, stream_sequence)
            .await?;
        tx.commit().await?;
        if !caught_up.is_empty() {
            tracing::info!(
                events = caught_up.len(),
                position = event.position,
                "applied earlier events of the log that were delivered late or elsewhere"
            );
            for earlier in &caught_up {
                self.refresh_cache(&earlier.iccid).await;
            }
            let extra = caught_up.len() as u64;
            outcome = match outcome {
                Outcome::Applied { gap_filled } => Outcome::Applied {
                    gap_filled: gap_filled + extra,
                },
                // The event itself was applied by the catch-up of an earlier message.
                Outcome::Duplicate => Outcome::Duplicate,
            };
        }
        Ok(outcome)
    }

    /// After the commit: the SIM's row into Redis, the fleet summary out. Failures are logged
    /// by the cache and never stop the projector.
    async fn refresh_cache(&self, iccid: &str) {
        match readmodel::load_sim(&self.pool, iccid).await {
            Ok(Some(view)) => self.cache.put_sim(&view).await,
            Ok(None) => self.cache.invalidate(&[self.cache.sim_key(iccid)]).await,
            Err(error) => {
                tracing::debug!(%error, iccid, "cannot load the SIM for the cache; dropping the entry");
                self.cache.invalidate(&[self.cache.sim_key(iccid)]).await;
            }
        }
        self.cache.invalidate(&[self.cache.fleet_summary_key()]).await;
    }

    /// `projection_lag_events` = the stream's last sequence − the checkpoint's stream
    /// sequence, every few seconds (also while no message arrives).
    async fn refresh_lag_forever(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if sleep_or_shutdown(Duration::from_secs(5), &mut shutdown).await {
                return;
            }
            if let Err(error) = self.refresh_lag().await {
                tracing::debug!(%error, "cannot compute the projection lag");
            }
        }
    }

    async fn refresh_lag(&self) -> Result<(), anyhow::Error> {
        let mut stream = self.jetstream.get_stream(&self.settings.stream).await?;
        let last = stream.info().await?.state.last_sequence as i64;
        let checkpoint: Option<i64> =
            sqlx::query_scalar("SELECT stream_sequence FROM projection_checkpoints WHERE projector = $1")
                .bind(&self.settings.name)
                .fetch_optional(&self.pool)
                .await?;
        let lag = (last - checkpoint.unwrap_or(0)).max(0);
        let name = self.settings.name.as_str();
        self.metrics.lag_events.with_label_values(&[name]).set(lag);
        if lag == 0 {
            self.metrics.lag_seconds.with_label_values(&[name]).set(0.0);
        }
        Ok(())
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub async fn wait_for(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Sleeps; `true` when shutdown came first.
async fn sleep_or_shutdown(duration: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = wait_for(shutdown) => true,
        _ = tokio::time::sleep(duration) => *shutdown.borrow(),
    }
}
