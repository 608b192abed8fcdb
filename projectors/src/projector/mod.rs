//! The live projector: one durable JetStream pull consumer, read in stream order; each message
//! wakes the projector up to apply the log up to the event it names ([`crate::follow`]).

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::{self, consumer::PullConsumer};
use eventstore::{GlobalLog, Share};
use futures::StreamExt;
use readmodel::Cache;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::apply::{Applier, UsageRollups};
use crate::checkpoint;
use crate::config::{Config, ConsumerSettings};
use crate::follow::Follower;
use crate::metrics::ProjectorMetrics;

mod batch;
mod lag;

/// Without a message for this long, the projector looks at the log itself.
const IDLE_CATCH_UP: Duration = Duration::from_secs(1);

/// What a projector reads and under which name it records its progress.
#[derive(Debug, Clone)]
pub struct ProjectorSettings {
    /// The durable consumer's name and the `projector` column of the bookkeeping tables.
    pub name: String,
    pub stream: String,
    /// e.g. `sim.v1.>`.
    pub filter_subject: String,
    /// e.g. `sim`: messages' subjects are checked against `<prefix>.v1.<iccid>.<event_type>`.
    pub subject_prefix: String,
    pub consumer: ConsumerSettings,
    /// Stop after this many messages (tests: "a projector stopped mid-stream").
    pub message_limit: Option<u64>,
    /// The partition of the log this projector applies (`Share::WHOLE`: all of it). Its
    /// durable consumer and checkpoint row are named [`checkpoint::partition_name`].
    pub share: Share,
}

impl ProjectorSettings {
    /// The consumer's and checkpoint's name: `name`, or `name-p<k>` for a partition.
    pub fn partition(&self) -> String {
        checkpoint::partition_name(&self.name, self.share)
    }

    /// The same settings for partition `index` of `of`. A partition's consumer receives every
    /// message (NATS 2.9: one filter subject, and the subjects carry no partition), about 1/N
    /// of them its own, so its batches are N times larger: each transaction then applies as
    /// many events as an unpartitioned one, and N partitions do not pay N times the
    /// per-transaction cost.
    pub fn for_share(&self, share: Share) -> Self {
        let of = share.of.max(1) as usize;
        let mut consumer = self.consumer.clone();
        consumer.batch = consumer.batch.saturating_mul(of).min(MAX_PARTITION_BATCH);
        consumer.max_ack_pending = consumer.max_ack_pending.max(consumer.batch as i64 * 2);
        Self {
            share,
            consumer,
            ..self.clone()
        }
    }
}

/// The largest batch a partition's consumer pulls (see [`ProjectorSettings::for_share`]).
const MAX_PARTITION_BATCH: usize = 4096;

impl ProjectorSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            name: config.projector.clone(),
            stream: config.stream.clone(),
            filter_subject: config.filter_subject(),
            subject_prefix: config.subject_prefix.clone(),
            consumer: config.consumer.clone(),
            message_limit: None,
            share: Share::WHOLE,
        }
    }
}

/// Why [`Projector::run`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("cannot create the consumer: {0}")]
    Consumer(String),
    /// Another replica recorded another partition layout (see [`crate::partitions`]).
    #[error("{0}")]
    LayoutChanged(String),
}

#[derive(Clone)]
pub struct Projector {
    pool: PgPool,
    jetstream: jetstream::Context,
    cache: Cache,
    metrics: ProjectorMetrics,
    follower: Follower,
    settings: ProjectorSettings,
    /// With TimescaleDB: refreshes the continuous aggregates after late usage rows.
    refresher: Option<crate::rollup_refresh::Refresher>,
}

/// The projector's answer to one message, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    Applied {
        gap_filled: u64,
    },
    Duplicate,
    /// The message's event (or one before it) was parked.
    Parked,
    /// The message is not the stored event it names: acknowledged without effect.
    Forged,
    /// Its event is not readable yet: redelivered later.
    NotYetReadable,
    /// Shutdown came while a database error was being retried: not acknowledged.
    Abandoned,
    /// The partition layout changed under this projector: not acknowledged, and it stops.
    LayoutChanged,
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
        let store_id = GlobalLog::new(pool.clone())
            .store_id()
            .await
            .map_err(|e| match e {
                eventstore::StoreError::Database(e) => e,
                other => sqlx::Error::Protocol(other.to_string()),
            })?;
        // Every series exists from the start (at 0), so dashboards and alerts see them.
        let partition = settings.partition();
        let name = [partition.as_str()];
        for counter in [
            &metrics.applied,
            &metrics.duplicates,
            &metrics.gaps_filled,
            &metrics.parked_total,
            &metrics.forged,
            &metrics.retries,
        ] {
            counter.with_label_values(&name);
        }
        metrics.lag_events.with_label_values(&name);
        metrics.lag_seconds.with_label_values(&name);
        metrics.parked.with_label_values(&[settings.name.as_str()]);
        metrics.jetstream.track(&settings.stream, &partition);
        Ok(Self {
            follower: Follower {
                pool: pool.clone(),
                applier: Applier::new(settings.name.clone(), rollups),
                checkpoint: partition,
                share: settings.share,
                store_id,
                subject_prefix: settings.subject_prefix.clone(),
            },
            jetstream: jetstream::new(nats),
            refresher: (rollups == UsageRollups::Managed)
                .then(|| crate::rollup_refresh::Refresher::new(pool.clone())),
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
        let refresher = self
            .refresher
            .clone()
            .map(|refresher| tokio::spawn(refresher.run(shutdown.clone())));
        let result = self.consume(&mut shutdown).await;
        lag.abort();
        if let Some(refresher) = refresher {
            refresher.abort();
        }
        // What the last messages changed, for whoever reads the metrics next.
        if let Err(error) = self.refresh_lag().await {
            tracing::debug!(%error, "cannot compute the projection lag");
        }
        result
    }

    async fn consume(&self, shutdown: &mut watch::Receiver<bool>) -> Result<(), ProjectorError> {
        let mut handled: u64 = 0;
        let name = &self.follower.checkpoint;
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
                    () = tokio::time::sleep(IDLE_CATCH_UP) => {
                        if let Some(changed) = self.catch_up_idle().await {
                            return Err(ProjectorError::LayoutChanged(changed));
                        }
                        continue;
                    }
                };
                match next {
                    Some(Ok(first)) => {
                        let batch = self.gather(first, &mut messages, handled).await;
                        let count = batch.len() as u64;
                        match self.handle_batch(batch, shutdown).await {
                            BatchOutcome::Abandoned => return Ok(()),
                            BatchOutcome::LayoutChanged => {
                                return Err(ProjectorError::LayoutChanged(format!(
                                    "the partition layout of {} changed; {name} stops",
                                    self.settings.name
                                )))
                            }
                            _ => {}
                        }
                        handled += count;
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, projector = %name, "pull consumer error");
                        if consumer_lost(&error) {
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

    /// `first` and what else the consumer has ready, within a short bound (the batch size, the
    /// messages left to the message limit, `batch_wait`).
    async fn gather(
        &self,
        first: jetstream::Message,
        messages: &mut pull::Stream,
        handled: u64,
    ) -> Vec<jetstream::Message> {
        let mut batch = vec![first];
        let room = self.settings.consumer.batch.min(
            self.settings
                .message_limit
                .map_or(usize::MAX, |limit| (limit - handled) as usize),
        );
        let deadline = tokio::time::Instant::now() + self.settings.consumer.batch_wait;
        while batch.len() < room {
            match tokio::time::timeout_at(deadline, messages.next()).await {
                Ok(Some(Ok(message))) => batch.push(message),
                _ => break,
            }
        }
        batch
    }

    /// The durable consumer, created when missing; `None` on shutdown.
    async fn consumer(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<PullConsumer>, ProjectorError> {
        let settings = &self.settings;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            let attempt = async {
                let stream = self
                    .jetstream
                    .get_stream(&settings.stream)
                    .await
                    .map_err(|e| e.to_string())?;
                stream
                    .get_or_create_consumer(
                        &self.follower.checkpoint,
                        pull::Config {
                            durable_name: Some(self.follower.checkpoint.clone()),
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
                    if backoff.wait(shutdown).await {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

/// After a reconnect the client looks the consumer up; when the server lost it (a wiped store,
/// a deleted consumer) the message stream would wait forever for messages nobody sends: such an
/// error means the consumer must be created again.
fn consumer_lost(error: &pull::MessagesError) -> bool {
    matches!(
        error.kind(),
        MessagesErrorKind::Pull | MessagesErrorKind::NoResponders
    )
}

/// The pause before each retry of a failing attempt: doubled after every wait, up to a bound.
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(first: Duration, max: Duration) -> Self {
        Self { next: first, max }
    }

    /// How long the next [`Backoff::wait`] sleeps.
    pub(crate) fn delay(&self) -> Duration {
        self.next
    }

    /// Sleeps the pause, then doubles it; `true` when shutdown came first.
    pub(crate) async fn wait(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let stopped = sleep_or_shutdown(self.next, shutdown).await;
        self.next = (self.next * 2).min(self.max);
        stopped
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub async fn wait_for(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Sleeps; `true` when shutdown came first.
pub(crate) async fn sleep_or_shutdown(duration: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = wait_for(shutdown) => true,
        _ = tokio::time::sleep(duration) => *shutdown.borrow(),
    }
}
