//! The read-model writes: stored events in, rows out.
//!
//! [`Applier::apply_batch`] is the only way in, for the live projector, the rebuild and the
//! replay of parked events alike: it checks the aggregates' versions in `projection_versions`
//! (rows locked), skips duplicates, fills gaps from the `events` table (in sequence order, never
//! out of order), decodes everything it is about to write before writing any of it, folds the
//! events into the affected rows in memory and writes each changed row once
//! ([`crate::fold`]), and records the versions; an event it cannot decode is parked instead
//! ([`crate::parking`]), and so is every later event of an aggregate with a parked event. The
//! caller owns the transaction (and, for a rebuild, its `search_path`) and the checkpoint
//! ([`crate::checkpoint`]), so all of it commits or none of it does.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use domain::ids::parse_quota_aggregate_id;
use domain::{QuotaEvent, SimEvent, SmsEvent};
use eventstore::{GlobalLog, StoredEvent};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::fold::{Fold, Needs};

/// The advisory lock between the live projector (shared, around each transaction) and the
/// rebuild's swap (exclusive): while the rebuild swaps tables in, live applying pauses.
pub const PROJECTION_LOCK_KEY: i64 = 0x5349_4d50_524f_4a31; // "SIMPROJ1"

/// Whether the usage rollups are tables the projector maintains (plain Postgres) or
/// TimescaleDB continuous aggregates (which must not be written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageRollups {
    /// `sim_usage_hourly` / `sim_usage_daily` are plain tables: upsert-add in the same
    /// transaction as `sim_usage`.
    Tables,
    /// Continuous aggregates (or absent): only `sim_usage` is written.
    Managed,
}

impl UsageRollups {
    /// From the storage the database's read models were created with (`read_model_storage`,
    /// the one record of it).
    pub async fn detect(pool: &sqlx::PgPool) -> Result<Self, sqlx::Error> {
        Ok(match eventstore::ReadModelStorage::recorded(pool).await? {
            Some(eventstore::ReadModelStorage::TimescaleDb) => Self::Managed,
            _ => Self::Tables,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("reading the event log failed: {0}")]
    Store(#[from] eventstore::StoreError),
    /// The event (or one needed to fill a gap) does not decode: retrying cannot help.
    #[error(
        "event {aggregate_type}/{aggregate_id}#{sequence} (position {position}) cannot be decoded: {reason}"
    )]
    Decode {
        aggregate_type: String,
        aggregate_id: String,
        sequence: i64,
        position: i64,
        reason: String,
    },
    /// Another replica recorded another partition layout: this process must not apply with
    /// its own any more.
    #[error("the projector's partition layout is now {now} partitions, this process runs {mine}: restart it with PROJECTOR_PARTITIONS={now}")]
    LayoutChanged { mine: u32, now: u32 },
    /// A gap that the event store cannot fill (yet): the message is retried later.
    #[error("{aggregate_type}/{aggregate_id}: events after version {version} and before {sequence} are missing from the event store")]
    MissingEvents {
        aggregate_type: String,
        aggregate_id: String,
        version: i64,
        sequence: i64,
    },
}

impl ApplyError {
    /// Whether the failure is the event's own, so that retrying it can never succeed and it
    /// must be parked: it does not decode, or Postgres refuses its values (class `22`, data
    /// exceptions such as a number out of range; class `23`, integrity constraints). Anything
    /// else (a lost connection, a timeout, a missing table after a failed migration) is the
    /// environment's and is retried, so a broken deploy stalls loudly instead of parking the
    /// whole log.
    pub fn is_poison(&self) -> bool {
        match self {
            ApplyError::Decode { .. } => true,
            ApplyError::Database(sqlx::Error::Database(db)) => db
                .code()
                .is_some_and(|code| code.starts_with("22") || code.starts_with("23")),
            _ => false,
        }
    }

    /// Whether retrying the same event later may succeed.
    pub fn is_retryable(&self) -> bool {
        !self.is_poison()
    }

    fn decode(event: &StoredEvent, reason: impl ToString) -> Self {
        ApplyError::Decode {
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            sequence: event.sequence,
            position: event.position,
            reason: reason.to_string(),
        }
    }
}

/// What happened to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied, after `gap_filled` earlier events of the same aggregate read from Postgres.
    Applied { gap_filled: u64 },
    /// At or below the aggregate's version: nothing changed.
    Duplicate,
    /// Kept aside in `parked_events`: it cannot be applied, or an earlier event of its
    /// aggregate waits there.
    Parked,
}

/// An event decoded for its read model, before anything is written.
pub(crate) enum Decoded {
    Sim(SimEvent),
    Quota {
        iccid: String,
        kind: &'static str,
        event: QuotaEvent,
    },
    Sms {
        message_id: Uuid,
        event: SmsEvent,
    },
    /// An aggregate type without a read model.
    Unprojected,
}

/// Decodes `event` for its read model (pure: no database).
pub(crate) fn decode(event: &StoredEvent) -> Result<Decoded, ApplyError> {
    Ok(match event.aggregate_type.as_str() {
        "sim" => Decoded::Sim(event.to_domain().map_err(|e| ApplyError::decode(event, e))?),
        "quota" => {
            let (iccid, kind) =
                parse_quota_aggregate_id(&event.aggregate_id).map_err(|e| ApplyError::decode(event, e))?;
            Decoded::Quota {
                iccid: iccid.to_string(),
                kind: kind.as_str(),
                event: event.to_domain().map_err(|e| ApplyError::decode(event, e))?,
            }
        }
        "sms" => Decoded::Sms {
            message_id: event
                .aggregate_id
                .parse()
                .map_err(|e| ApplyError::decode(event, e))?,
            event: event.to_domain().map_err(|e| ApplyError::decode(event, e))?,
        },
        _ => Decoded::Unprojected,
    })
}

/// Applies events for one projector name.
#[derive(Debug, Clone)]
pub struct Applier {
    pub projector: String,
    pub rollups: UsageRollups,
}

/// Whether the version guard honours the aggregate's parked flag (the live path) or not (the
/// replay of the parked events themselves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guard {
    Live,
    Replay,
}

/// What a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Events applied, gap fills included.
    pub applied: u64,
    /// Of them, events read from the `events` table to fill a gap.
    pub gap_filled: u64,
    /// Events at or below their aggregate's version.
    pub duplicates: u64,
    pub parked: u64,
    /// SIMs whose rows (or messages) changed.
    pub iccids: std::collections::BTreeSet<String>,
    /// The SIM rows as written (the parked ones marked so), for the cache.
    pub rows: Vec<readmodel::SimView>,
    /// New usage rows went into a TimescaleDB hypertable (see `rollup_refresh`).
    pub late_usage: bool,
}

impl Applied {
    /// One event's outcome, for callers that apply one at a time.
    pub fn outcome(&self) -> Outcome {
        if self.parked > 0 {
            Outcome::Parked
        } else if self.applied > 0 {
            Outcome::Applied {
                gap_filled: self.gap_filled,
            }
        } else {
            Outcome::Duplicate
        }
    }
}

/// What the guard decided for one event of a batch.
pub(crate) enum Planned {
    Apply(StoredEvent, Decoded),
    Park(StoredEvent, String),
}

/// The aggregates' versions as the guard sees them: `(version, parked)` by `(type, id)`.
pub(crate) type Versions = HashMap<(String, String), (i64, bool)>;

/// The guard's decisions for a batch, before anything is written.
pub(crate) struct Plan {
    pub planned: Vec<Planned>,
    /// The aggregates whose version moved, and to what.
    pub changed: BTreeMap<(String, String), i64>,
    /// The counts (`iccids`, `rows` and `parked` are filled in by whoever writes).
    pub outcome: Applied,
}

impl Applier {
    pub fn new(projector: impl Into<String>, rollups: UsageRollups) -> Self {
        Self {
            projector: projector.into(),
            rollups,
        }
    }

    /// One event of the log through the version guard (a batch of one; no checkpoint).
    pub async fn apply_logged(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<Outcome, ApplyError> {
        Ok(self
            .apply_batch(conn, std::slice::from_ref(event), Guard::Live)
            .await?
            .outcome())
    }

    /// Applies `events` (in log order) on the caller's transaction, in bulk: the aggregates'
    /// versions read at once (rows locked), each event judged by the guard in order
    /// (duplicate, parked behind an earlier parked event, a gap to fill from the `events`
    /// table, or applied), everything to write decoded before anything is written, the
    /// affected rows loaded once, folded in memory and written back once, the new versions
    /// written at once, and the parked events parked. No checkpoint. A database error leaves
    /// the transaction aborted: the caller rolls back (and, for a poison error, applies the
    /// events again one at a time to park the poison one alone, see [`ApplyError::is_poison`]).
    pub(crate) async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[StoredEvent],
        guard: Guard,
    ) -> Result<Applied, ApplyError> {
        if events.is_empty() {
            return Ok(Applied::default());
        }
        let mut versions = self.lock_versions(conn, events).await?;
        let Plan {
            planned: plan,
            changed,
            mut outcome,
        } = self.plan(conn, events, &mut versions, guard).await?;
        let mut needs = Needs::default();
        for planned in &plan {
            if let Planned::Apply(event, decoded) = planned {
                needs.add(event, decoded);
            }
        }
        let mut fold = Fold::load(conn, &needs).await?;
        let mut parks = Vec::new();
        for planned in plan {
            match planned {
                Planned::Apply(event, decoded) => fold.apply(&event, decoded),
                Planned::Park(event, reason) => parks.push((event, reason)),
            }
        }
        let written = fold.write(conn, self.rollups).await?;
        outcome.iccids = written.touched;
        outcome.rows = written.rows;
        outcome.late_usage = written.late_usage;
        self.write_versions(conn, &changed).await?;
        for (event, reason) in &parks {
            self.park(conn, event, reason).await?;
            outcome.iccids.insert(event.iccid.clone());
            for row in outcome.rows.iter_mut().filter(|r| r.iccid == event.iccid) {
                row.projection = readmodel::PROJECTION_PARKED.to_owned();
            }
        }
        outcome.parked = parks.len() as u64;
        Ok(outcome)
    }

    /// Judges each event of `events` (in log order) against `versions`, which it moves on:
    /// a duplicate, parked behind an earlier parked event, a gap to fill from the `events`
    /// table first, or applied; everything to apply is decoded here, and an aggregate whose
    /// event does not decode is parked (on the replay path that is an error instead).
    pub(crate) async fn plan(
        &self,
        conn: &mut PgConnection,
        events: &[StoredEvent],
        versions: &mut Versions,
        guard: Guard,
    ) -> Result<Plan, ApplyError> {
        let mut outcome = Applied::default();
        let mut changed: BTreeMap<(String, String), i64> = BTreeMap::new();
        let mut plan: Vec<Planned> = Vec::with_capacity(events.len());
        for event in events {
            let key = (event.aggregate_type.clone(), event.aggregate_id.clone());
            let (version, parked) = versions.get(&key).copied().unwrap_or((0, false));
            if event.sequence <= version {
                outcome.duplicates += 1;
                continue;
            }
            if parked && guard == Guard::Live {
                plan.push(Planned::Park(
                    event.clone(),
                    "an earlier event of this aggregate is parked; waiting behind it".to_owned(),
                ));
                continue;
            }
            let mut pending = Vec::new();
            if event.sequence > version + 1 {
                pending = self.missing_events(conn, event, version).await?;
                if pending.len() as i64 != event.sequence - version - 1 {
                    return Err(ApplyError::MissingEvents {
                        aggregate_type: event.aggregate_type.clone(),
                        aggregate_id: event.aggregate_id.clone(),
                        version,
                        sequence: event.sequence,
                    });
                }
            }
            pending.push(event.clone());
            // Everything decodes, or nothing of this aggregate is written.
            let decoded: Result<Vec<Decoded>, ApplyError> = pending.iter().map(decode).collect();
            match decoded {
                Ok(decoded) => {
                    outcome.gap_filled += pending.len() as u64 - 1;
                    outcome.applied += pending.len() as u64;
                    for (one, decoded) in pending.into_iter().zip(decoded) {
                        plan.push(Planned::Apply(one, decoded));
                    }
                    versions.insert(key.clone(), (event.sequence, false));
                    changed.insert(key, event.sequence);
                }
                Err(error) if guard == Guard::Replay => return Err(error),
                Err(error) => {
                    plan.push(Planned::Park(event.clone(), error.to_string()));
                    versions.insert(key, (version, true));
                }
            }
        }
        Ok(Plan {
            planned: plan,
            changed,
            outcome,
        })
    }

    /// The versions (and parked flags) of the batch's aggregates, their rows locked.
    pub(crate) async fn lock_versions(
        &self,
        conn: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<Versions, sqlx::Error> {
        let keys: BTreeSet<(&str, &str)> = events
            .iter()
            .map(|e| (e.aggregate_type.as_str(), e.aggregate_id.as_str()))
            .collect();
        let (types, ids): (Vec<&str>, Vec<&str>) = keys.into_iter().unzip();
        let rows: Vec<(String, String, i64, bool)> = sqlx::query_as(
            "SELECT aggregate_type, aggregate_id, version, parked FROM projection_versions \
             WHERE projector = $1 AND (aggregate_type, aggregate_id) IN \
               (SELECT * FROM UNNEST($2::text[], $3::text[])) \
             ORDER BY aggregate_type, aggregate_id FOR UPDATE",
        )
        .bind(&self.projector)
        .bind(types)
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(t, id, version, parked)| ((t, id), (version, parked)))
            .collect())
    }

    async fn write_versions(
        &self,
        conn: &mut PgConnection,
        changed: &BTreeMap<(String, String), i64>,
    ) -> Result<(), sqlx::Error> {
        if changed.is_empty() {
            return Ok(());
        }
        let mut types = Vec::with_capacity(changed.len());
        let mut ids = Vec::with_capacity(changed.len());
        let mut versions = Vec::with_capacity(changed.len());
        for ((t, id), version) in changed {
            types.push(t.as_str());
            ids.push(id.as_str());
            versions.push(*version);
        }
        sqlx::query(
            "INSERT INTO projection_versions (projector, aggregate_type, aggregate_id, version) \
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::int8[]) \
             ON CONFLICT (projector, aggregate_type, aggregate_id) DO UPDATE SET version = EXCLUDED.version",
        )
        .bind(&self.projector)
        .bind(types)
        .bind(ids)
        .bind(versions)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The aggregate's events strictly between `version` and `event`, in sequence order.
    async fn missing_events(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
        version: i64,
    ) -> Result<Vec<StoredEvent>, eventstore::StoreError> {
        GlobalLog::aggregate_events_between_on(
            conn,
            &event.aggregate_type,
            &event.aggregate_id,
            version,
            event.sequence,
        )
        .await
    }
}
