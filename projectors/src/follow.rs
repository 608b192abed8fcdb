//! The live projector's work for one message: the message is a wake-up and a cursor, never a
//! fact. It names a position; the event stored there must be exactly the message (same store,
//! transaction, id, subject and body, see `relay::wire::check`), else the message is forged
//! (or another store's) and changes nothing. Then the projector applies the log itself, from
//! its checkpoint on, in bounded ranges, each range one transaction: at least up to that
//! event, and on to the log's readable head (a few ranges at most per message), so a projector
//! that fell behind catches up a range per transaction while the messages behind it become
//! cheap duplicates. Events delivered late, elsewhere or never are applied in log order, and
//! the checkpoint keeps meaning "everything up to here", which consistency tokens rely on.
//!
//! A range whose apply fails on a poison event (see [`ApplyError::is_poison`]) is applied
//! again one event per transaction, to find that event and park it alone.

use std::collections::BTreeSet;

use eventstore::{GlobalLog, LogCursor, Share, StoredEvent};
use relay::wire;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::apply::{Applier, ApplyError, Guard, PROJECTION_LOCK_KEY};
use crate::checkpoint;

/// Events applied per transaction while catching up.
pub const CATCH_UP_BATCH: i64 = 500;
/// Ranges applied past the message's own event before the message is acknowledged (the next
/// message goes on from there).
const RANGES_PAST_TARGET: u32 = 4;
/// No upper bound on a range: up to the log's horizon.
const HEAD: LogCursor = LogCursor {
    transaction_id: u64::MAX,
    position: i64::MAX,
};

/// What applying the log did (for one batch of messages, or an idle catch-up).
#[derive(Debug, Clone, Default)]
pub struct Followed {
    pub applied: u64,
    pub gap_filled: u64,
    pub duplicates: u64,
    pub parked: u64,
    /// SIMs whose rows may have changed (for the cache).
    pub iccids: BTreeSet<String>,
    /// The checkpoint after the last range (as far as this call saw it).
    pub reached: LogCursor,
    /// The checkpoint before the first range.
    pub started: Option<LogCursor>,
    /// Genuine messages whose event was applied before (a redelivery, or a catch-up ahead).
    pub duplicate_messages: u64,
    /// The SIM rows as written, the latest of each (the cache needs no read for them).
    pub rows: std::collections::BTreeMap<String, readmodel::SimView>,
    /// The events the ranges read, by position (to check the messages against).
    pub seen: std::collections::HashMap<i64, StoredEvent>,
    /// New usage rows went into a TimescaleDB hypertable: the continuous aggregates' refresher
    /// is woken after the commit.
    pub late_usage: bool,
}

/// One range's failure: a poison event (named once the range is one event long), or an error
/// to retry.
enum StepError {
    Poisoned(Option<Box<StoredEvent>>, ApplyError),
    Other(ApplyError),
}

impl From<sqlx::Error> for StepError {
    fn from(error: sqlx::Error) -> Self {
        StepError::Other(error.into())
    }
}

impl From<eventstore::StoreError> for StepError {
    fn from(error: eventstore::StoreError) -> Self {
        StepError::Other(error.into())
    }
}

#[derive(Clone)]
pub struct Follower {
    pub pool: PgPool,
    /// Applies under the projector's (group's) name: versions and parked events are shared by
    /// its partitions (each aggregate belongs to one).
    pub applier: Applier,
    /// This partition's checkpoint row (the projector's name when the log is not partitioned).
    pub checkpoint: String,
    /// The SIMs this follower applies.
    pub share: Share,
    pub store_id: Uuid,
    pub subject_prefix: String,
}

/// What became of each message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Its event is applied (now or before).
    Applied,
    /// It is not the stored event it names.
    Forged(wire::Mismatch),
    /// Its event is stored but not below the horizon yet: redeliver it later.
    NotYetReadable,
}

impl Follower {
    /// Applies the log up to the furthest event the messages name, in bounded ranges, then
    /// checks every message against the event the store holds at its position (those the
    /// ranges read, and one query for the others). Applying first is safe: what is applied is
    /// the log itself, whatever a message claims; a forged message only wakes the projector.
    /// Database errors are returned for the caller to retry (nothing half-done stays behind).
    pub async fn follow_many(
        &self,
        messages: &[(wire::Message<'_>, i64)],
    ) -> Result<(Followed, Vec<Verdict>), ApplyError> {
        let mut followed = Followed::default();
        // A message with a position but no transaction id (a publisher that sends neither the
        // header nor the field) is located by its stored event first.
        let unlocated: Vec<i64> = messages
            .iter()
            .filter(|(m, _)| m.cursor().is_none())
            .filter_map(|(m, _)| m.position())
            .collect();
        if !unlocated.is_empty() {
            for event in GlobalLog::new(self.pool.clone()).events_at(&unlocated).await? {
                followed.seen.insert(event.position, event);
            }
        }
        let target = messages
            .iter()
            .filter_map(|(message, sequence)| {
                let cursor = message.cursor().or_else(|| {
                    message
                        .position()
                        .and_then(|p| followed.seen.get(&p))
                        .map(LogCursor::after)
                })?;
                Some((cursor, *sequence))
            })
            .max_by_key(|(cursor, _)| *cursor);
        if let Some((target, stream_sequence)) = target {
            self.advance(target, stream_sequence, &mut followed).await?;
        }
        let missing: Vec<i64> = messages
            .iter()
            .filter(|(m, _)| self.owns(m))
            .filter_map(|(m, _)| m.position())
            .filter(|p| !followed.seen.contains_key(p))
            .collect();
        if !missing.is_empty() {
            for event in GlobalLog::new(self.pool.clone()).events_at(&missing).await? {
                followed.seen.insert(event.position, event);
            }
        }
        let started = followed.started.unwrap_or(LogCursor::START);
        let mut verdicts = Vec::with_capacity(messages.len());
        for (message, _) in messages {
            if !self.owns(message) {
                // Another partition's SIM: a wake-up only, checked by that partition.
                let ahead = message.cursor().is_some_and(|cursor| cursor > followed.reached);
                verdicts.push(if ahead {
                    Verdict::NotYetReadable
                } else {
                    Verdict::Applied
                });
                continue;
            }
            let event = message.position().and_then(|p| followed.seen.get(&p));
            let verdict = match wire::check(message, event, self.store_id, &self.subject_prefix) {
                Err(mismatch) => Verdict::Forged(mismatch),
                Ok(()) => {
                    let event = event.expect("checked to match a stored event");
                    let cursor = LogCursor::after(event);
                    // Its SIM's cache entry is refreshed even when the event was applied
                    // before: a process killed between its commit and its cache write left
                    // that entry stale.
                    followed.iccids.insert(event.iccid.clone());
                    if cursor <= started {
                        followed.duplicate_messages += 1;
                    }
                    if cursor > followed.reached {
                        // Only a message no relay published can be ahead of the horizon.
                        Verdict::NotYetReadable
                    } else {
                        Verdict::Applied
                    }
                }
            };
            verdicts.push(verdict);
        }
        Ok((followed, verdicts))
    }

    /// Whether the message names a SIM of this share (by its subject, `<prefix>.v1.<iccid>.…`;
    /// a message without one is checked here, and found forged).
    fn owns(&self, message: &wire::Message<'_>) -> bool {
        if self.share.is_whole() {
            return true;
        }
        let iccid = message.subject.split('.').nth(2).unwrap_or("");
        iccid.is_empty() || self.share.holds(iccid)
    }

    /// Applies what the log holds after the checkpoint, without a message: the projector's
    /// idle wake-up, so the read models converge even when a message never comes (one
    /// deduplicated away behind a forged copy, or acknowledged by a stranger's consumer).
    pub async fn catch_up(&self) -> Result<Followed, ApplyError> {
        let mut followed = Followed::default();
        self.advance(LogCursor::START, 0, &mut followed).await?;
        Ok(followed)
    }

    /// Ranges until the checkpoint is at or past `target` and the log's head is reached (or
    /// [`RANGES_PAST_TARGET`] more ranges were applied); `followed.reached` is then where the
    /// checkpoint stands.
    async fn advance(
        &self,
        target: LogCursor,
        stream_sequence: i64,
        followed: &mut Followed,
    ) -> Result<(), ApplyError> {
        let mut limit = CATCH_UP_BATCH;
        let mut past_target = 0;
        loop {
            match self.step(target, stream_sequence, limit, followed).await {
                Ok(Step::AtHead) => return Ok(()),
                Ok(Step::Applied { last, full }) => {
                    // One event at a time only until the poison one is past.
                    limit = CATCH_UP_BATCH;
                    if last >= target {
                        past_target += 1;
                        if !full || past_target > RANGES_PAST_TARGET {
                            return Ok(());
                        }
                    }
                }
                Ok(Step::NotReadable) => return Ok(()),
                Err(StepError::Poisoned(Some(event), error)) => {
                    self.park_alone(&event, &error, stream_sequence, target, followed)
                        .await?;
                }
                Err(StepError::Poisoned(None, _)) => limit = 1,
                Err(StepError::Other(error)) => return Err(error),
            }
        }
    }

    /// A transaction holding the shared projection lock (a rebuild's swap takes it
    /// exclusively) and this projector's checkpoint row (replicas apply in turn), and the
    /// checkpoint's cursor.
    async fn begin(&self) -> Result<(Transaction<'static, Postgres>, LogCursor), ApplyError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
            .bind(PROJECTION_LOCK_KEY)
            .execute(&mut *tx)
            .await?;
        let from = checkpoint::lock(&mut tx, &self.checkpoint)
            .await?
            .map(|c| c.cursor)
            .unwrap_or(LogCursor::START);
        // The layout this share belongs to must still be the recorded one (a replica started
        // with another PROJECTOR_PARTITIONS re-partitions: this one must stop applying).
        let now = checkpoint::layout_locked(&mut tx, &self.applier.projector).await?;
        if now != self.share.of.max(1) {
            return Err(ApplyError::LayoutChanged {
                mine: self.share.of.max(1),
                now,
            });
        }
        Ok((tx, from))
    }

    /// One transaction: the shared projection lock (a rebuild's swap takes it exclusively),
    /// the checkpoint (locked: replicas apply in turn), up to `limit` readable events of the
    /// log after it, each through the version guard, the checkpoint moved past them.
    async fn step(
        &self,
        target: LogCursor,
        stream_sequence: i64,
        limit: i64,
        followed: &mut Followed,
    ) -> Result<Step, StepError> {
        let (mut tx, from) = self.begin().await.map_err(StepError::Other)?;
        let projector = self.checkpoint.as_str();
        followed.reached = followed.reached.max(from);
        followed.started.get_or_insert(from);
        let read = GlobalLog::read_share_on(&mut tx, from, HEAD, limit, self.share).await?;
        let more = read.more;
        let events = read.events;
        let Some(last) = read.through else {
            tx.rollback().await?;
            if from >= target {
                // Everything up to the checkpoint is applied or parked already.
                return Ok(Step::AtHead);
            }
            return Ok(Step::NotReadable);
        };
        for event in &events {
            followed.seen.insert(event.position, event.clone());
        }
        let applied = match self.applier.apply_batch(&mut tx, &events, Guard::Live).await {
            Ok(applied) => applied,
            Err(error) if error.is_poison() => {
                // Which event it was shows when the range is applied one event at a time.
                let alone = (events.len() == 1).then(|| Box::new(events[0].clone()));
                return Err(StepError::Poisoned(alone, error));
            }
            Err(error) => return Err(StepError::Other(error)),
        };
        let sequence = if last >= target { stream_sequence } else { 0 };
        checkpoint::advance(&mut tx, projector, last, sequence).await?;
        tx.commit().await?;
        followed.reached = followed.reached.max(last);
        followed.applied += applied.applied;
        followed.gap_filled += applied.gap_filled;
        followed.duplicates += applied.duplicates;
        followed.parked += applied.parked;
        followed.iccids.extend(applied.iccids);
        followed.late_usage |= applied.late_usage;
        for row in applied.rows {
            followed.rows.insert(row.iccid.clone(), row);
        }
        Ok(Step::Applied { last, full: more })
    }

    /// Parks a poison event in a transaction of its own and moves the checkpoint past it (only
    /// if the checkpoint is still before it: another replica may have done it meanwhile).
    async fn park_alone(
        &self,
        event: &StoredEvent,
        error: &ApplyError,
        stream_sequence: i64,
        target: LogCursor,
        followed: &mut Followed,
    ) -> Result<(), ApplyError> {
        let (mut tx, from) = self.begin().await?;
        let projector = self.checkpoint.as_str();
        let at = LogCursor::after(event);
        if from < at {
            self.applier.park(&mut tx, event, &error.to_string()).await?;
            let sequence = if at == target { stream_sequence } else { 0 };
            checkpoint::advance(&mut tx, projector, at, sequence).await?;
            followed.reached = followed.reached.max(at);
            followed.parked += 1;
            followed.iccids.insert(event.iccid.clone());
            // Its row (if any) must be read again: it says `parked` now.
            followed.rows.remove(&event.iccid);
        }
        tx.commit().await?;
        Ok(())
    }
}

enum Step {
    /// Nothing readable after the checkpoint, which is at or past the message's event.
    AtHead,
    /// A range was applied, up to `last`; `full`: it was as long as allowed (more may follow).
    Applied { last: LogCursor, full: bool },
    /// Nothing readable after the checkpoint, which is before the message's event.
    NotReadable,
}
