//! The live projector: one durable JetStream pull consumer, read in stream order; each message
//! wakes the projector up to apply the log up to the event it names ([`crate::follow`]).

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use eventstore::{GlobalLog, LogCursor, Share};
use futures::StreamExt;
use readmodel::Cache;
use relay::wire;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::apply::{Applier, UsageRollups};
use crate::checkpoint;
use crate::config::{Config, ConsumerSettings};
use crate::follow::{Follower, Verdict};
use crate::metrics::ProjectorMetrics;

/// `projection_lag_events` counts up to this many events, so the query stays cheap.
const LAG_COUNT_BOUND: i64 = 100_000;
/// Forged messages are counted each; logged at most once per interval.
static FORGED_LOG: platform::telemetry::RateLimitedLog =
    platform::telemetry::RateLimitedLog::new(Duration::from_secs(10));
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
                        // What else the consumer has ready, within a short bound.
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
                    if sleep_or_shutdown(delay, shutdown).await {
                        return Ok(None);
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// One message (see [`Projector::handle_batch`]).
    pub async fn handle(
        &self,
        message: jetstream::Message,
        shutdown: &mut watch::Receiver<bool>,
    ) -> BatchOutcome {
        self.handle_batch(vec![message], shutdown).await
    }

    /// Messages handled together: each checked against the store (one query), the log applied
    /// up to the furthest genuine one (bounded transactions), the touched SIMs' cache entries
    /// written (one pipeline), then the acknowledgements. Database errors are retried with
    /// backoff while the messages are kept ours ("in progress"); nothing else keeps a message
    /// from being acknowledged. The answer is for the batch as a whole.
    pub async fn handle_batch(
        &self,
        messages: Vec<jetstream::Message>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> BatchOutcome {
        let name = self.follower.checkpoint.as_str();
        let claims: Vec<(wire::Message<'_>, i64)> = messages
            .iter()
            .map(|message| {
                let sequence = message.info().map(|info| info.stream_sequence).unwrap_or(0);
                let claim = wire::Message {
                    subject: message.subject.as_str(),
                    headers: message.headers.as_ref(),
                    payload: &message.payload,
                };
                (claim, sequence as i64)
            })
            .collect();
        let mut backoff = Duration::from_millis(100);
        let (followed, verdicts) = loop {
            match self.follower.follow_many(&claims).await {
                Ok(done) => break done,
                Err(error @ crate::apply::ApplyError::LayoutChanged { .. }) => {
                    tracing::error!(%error, "stopping: the partition layout changed");
                    return BatchOutcome::LayoutChanged;
                }
                Err(error) => {
                    tracing::warn!(%error, messages = messages.len(), ?backoff, "applying failed; retrying");
                    self.metrics.retries.with_label_values(&[name]).inc();
                    // Keeps the messages ours while we retry (no redelivery meanwhile).
                    for message in &messages {
                        let _ = message.ack_with(AckKind::Progress).await;
                    }
                    if sleep_or_shutdown(backoff, shutdown).await {
                        return BatchOutcome::Abandoned;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        };
        let metric = |m: &prometheus::IntCounterVec, n: u64| m.with_label_values(&[name]).inc_by(n);
        metric(&self.metrics.applied, followed.applied);
        metric(&self.metrics.gaps_filled, followed.gap_filled);
        metric(&self.metrics.parked_total, followed.parked);
        let mut forged = 0;
        metric(
            &self.metrics.duplicates,
            followed.duplicates + followed.duplicate_messages,
        );
        // Committed: the cache, then the acks. In this order a crash before the acks means a
        // redelivery, which finds its events applied but writes their SIMs' entries again.
        self.refresh_cache(&followed).await;
        for ((message, verdict), (claim, sequence)) in messages.iter().zip(&verdicts).zip(&claims) {
            let acked = match verdict {
                Verdict::Applied => message.ack().await,
                Verdict::Forged(mismatch) => {
                    forged += 1;
                    if let Some(held_back) = FORGED_LOG.admit() {
                        tracing::warn!(subject = %claim.subject, stream_sequence = sequence, reason = %mismatch, held_back,
                            "message does not match the stored event it names; acknowledged without effect \
                             (counted in pipeline_forged_messages_total; `held_back` more were not logged)");
                    }
                    message.ack().await
                }
                Verdict::NotYetReadable => {
                    tracing::debug!(
                        stream_sequence = sequence,
                        "the message's event is not readable yet; redelivery later"
                    );
                    message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await
                }
            };
            // A lost ack means a redelivery, which finds its event applied.
            if let Err(error) = acked {
                tracing::warn!(%error, stream_sequence = sequence, "ack failed; the redelivery will be skipped as a duplicate");
            }
        }
        self.metrics.forged.with_label_values(&[name]).inc_by(forged);
        if followed.applied + followed.gap_filled > 1 {
            tracing::debug!(
                applied = followed.applied,
                messages = messages.len(),
                "applied events of the log delivered late, elsewhere or not yet"
            );
        }
        if followed.parked > 0 {
            BatchOutcome::Parked
        } else if followed.applied > 0 {
            BatchOutcome::Applied {
                gap_filled: followed.gap_filled,
            }
        } else if forged == messages.len() as u64 {
            BatchOutcome::Forged
        } else if verdicts.contains(&Verdict::NotYetReadable) {
            BatchOutcome::NotYetReadable
        } else {
            BatchOutcome::Duplicate
        }
    }

    /// No message for a while: apply whatever the log holds after the checkpoint anyway.
    /// `Some` when the partition layout changed (the projector must stop).
    async fn catch_up_idle(&self) -> Option<String> {
        let name = self.follower.checkpoint.as_str();
        match self.follower.catch_up().await {
            Ok(followed) => {
                if followed.applied + followed.parked > 0 {
                    tracing::info!(
                        applied = followed.applied,
                        parked = followed.parked,
                        "applied events of the log no message announced"
                    );
                }
                self.metrics
                    .applied
                    .with_label_values(&[name])
                    .inc_by(followed.applied);
                self.metrics
                    .gaps_filled
                    .with_label_values(&[name])
                    .inc_by(followed.gap_filled);
                self.metrics
                    .parked_total
                    .with_label_values(&[name])
                    .inc_by(followed.parked);
                self.refresh_cache(&followed).await;
            }
            Err(error @ crate::apply::ApplyError::LayoutChanged { .. }) => return Some(error.to_string()),
            Err(error) => tracing::debug!(%error, "idle catch-up failed; the next message or tick retries"),
        }
        None
    }

    /// After the commit: the SIMs' rows into Redis in one pipeline: the rows the batch wrote
    /// as it wrote them, the others (SIMs of redelivered messages: a killed process may have
    /// left their entries stale) read first in one query. Failures are logged by the cache and
    /// never stop the projector. (The fleet summary is not invalidated here: the query API
    /// recomputes it at most once a second.)
    async fn refresh_cache(&self, followed: &crate::follow::Followed) {
        // Also after the commit: late usage rows make their days' continuous aggregates stale
        // until refreshed (TimescaleDB only).
        if let (true, Some(refresher)) = (followed.late_usage, &self.refresher) {
            refresher.wake();
        }
        if followed.iccids.is_empty() {
            return;
        }
        let mut rows: Vec<readmodel::SimView> = followed.rows.values().cloned().collect();
        let wanted: Vec<String> = followed
            .iccids
            .iter()
            .filter(|iccid| !followed.rows.contains_key(*iccid))
            .cloned()
            .collect();
        let mut gone = Vec::new();
        if !wanted.is_empty() {
            match readmodel::load_sims(&self.pool, &wanted).await {
                Ok(found) => {
                    let present: std::collections::BTreeSet<String> =
                        found.iter().map(|r| r.iccid.clone()).collect();
                    gone = wanted.into_iter().filter(|i| !present.contains(i)).collect();
                    rows.extend(found);
                }
                Err(error) => {
                    tracing::debug!(%error, "cannot load the SIMs for the cache; dropping their entries");
                    gone = wanted;
                }
            }
        }
        self.cache.put_sims(&rows, &gone).await;
    }

    /// `projection_lag_events` / `projection_lag_seconds` (what is committed after the
    /// checkpoint, including events held behind an open transaction) and
    /// `projector_parked_events`, every second, from Postgres alone: they keep moving while
    /// NATS is away.
    async fn refresh_lag_forever(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(error) = self.refresh_lag().await {
                tracing::debug!(%error, "cannot compute the projection lag");
            }
            if sleep_or_shutdown(Duration::from_secs(1), &mut shutdown).await {
                return;
            }
        }
    }

    async fn refresh_lag(&self) -> Result<(), anyhow::Error> {
        let name = self.follower.checkpoint.as_str();
        let checkpoint = checkpoint::read(&mut *self.pool.acquire().await?, name).await?;
        let cursor = checkpoint.map(|c| c.cursor).unwrap_or(LogCursor::START);
        let backlog = GlobalLog::new(self.pool.clone())
            .backlog(cursor, LAG_COUNT_BOUND)
            .await?;
        self.metrics
            .lag_events
            .with_label_values(&[name])
            .set(backlog.events);
        self.metrics
            .lag_seconds
            .with_label_values(&[name])
            .set(backlog.oldest_age_seconds);
        // Parked events are the projector's (all partitions'), as its versions are.
        let group = self.settings.name.as_str();
        let parked = crate::parking::parked_count(&self.pool, group).await?;
        self.metrics.parked.with_label_values(&[group]).set(parked);
        Ok(())
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
