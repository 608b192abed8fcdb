//! One batch of messages: checked against the store, the log applied up to them, the cache
//! refreshed, then the acknowledgements; and the idle catch-up when no message comes.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use relay::wire;
use tokio::sync::watch;

use super::{Backoff, BatchOutcome, Projector};
use crate::follow::{Followed, Verdict};

/// Forged messages are counted each; logged at most once per interval.
static FORGED_LOG: platform::telemetry::RateLimitedLog =
    platform::telemetry::RateLimitedLog::new(Duration::from_secs(10));

impl Projector {
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
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let (followed, verdicts) = loop {
            match self.follower.follow_many(&claims).await {
                Ok(done) => break done,
                Err(error @ crate::apply::ApplyError::LayoutChanged { .. }) => {
                    tracing::error!(%error, "stopping: the partition layout changed");
                    return BatchOutcome::LayoutChanged;
                }
                Err(error) => {
                    tracing::warn!(%error, messages = messages.len(), backoff = ?backoff.delay(), "applying failed; retrying");
                    self.metrics.retries.with_label_values(&[name]).inc();
                    // Keeps the messages ours while we retry (no redelivery meanwhile).
                    for message in &messages {
                        let _ = message.ack_with(AckKind::Progress).await;
                    }
                    if backoff.wait(shutdown).await {
                        return BatchOutcome::Abandoned;
                    }
                }
            }
        };
        self.count(&followed);
        self.metrics
            .duplicates
            .with_label_values(&[name])
            .inc_by(followed.duplicates + followed.duplicate_messages);
        let mut forged = 0;
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
    pub(super) async fn catch_up_idle(&self) -> Option<String> {
        match self.follower.catch_up().await {
            Ok(followed) => {
                if followed.applied + followed.parked > 0 {
                    tracing::info!(
                        applied = followed.applied,
                        parked = followed.parked,
                        "applied events of the log no message announced"
                    );
                }
                self.count(&followed);
                self.refresh_cache(&followed).await;
            }
            Err(error @ crate::apply::ApplyError::LayoutChanged { .. }) => return Some(error.to_string()),
            Err(error) => tracing::debug!(%error, "idle catch-up failed; the next message or tick retries"),
        }
        None
    }

    /// Counts what applying the log did: events applied (gap fills included), gaps filled,
    /// events parked.
    fn count(&self, followed: &Followed) {
        let name = [self.follower.checkpoint.as_str()];
        let metrics = &self.metrics;
        metrics.applied.with_label_values(&name).inc_by(followed.applied);
        metrics
            .gaps_filled
            .with_label_values(&name)
            .inc_by(followed.gap_filled);
        metrics
            .parked_total
            .with_label_values(&name)
            .inc_by(followed.parked);
    }

    /// After the commit: the SIMs' rows into Redis in one pipeline: the rows the batch wrote
    /// as it wrote them, the others (SIMs of redelivered messages: a killed process may have
    /// left their entries stale) read first in one query. Failures are logged by the cache and
    /// never stop the projector. (The fleet summary is not invalidated here: the query API
    /// recomputes it at most once a second.)
    pub(super) async fn refresh_cache(&self, followed: &Followed) {
        // Also after the commit: late usage rows make their days' continuous aggregates stale
        // until refreshed (TimescaleDB only).
        if let (true, Some(refresher)) = (followed.late_usage, &self.refresher) {
            refresher.wake();
        }
        if followed.iccids.is_empty() {
            return;
        }
        let mut rows: Vec<readmodel::SimView> = followed.rows.values().cloned().collect();
        let wanted = crate::fold::not_held(&followed.iccids, |iccid| followed.rows.contains_key(iccid));
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
}
