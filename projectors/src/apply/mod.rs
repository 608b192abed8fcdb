//! The read-model writes: one stored event in, plain SQL out.
//!
//! [`Applier::apply_logged`] is the only way in, for the live projector, the rebuild and the
//! replay of parked events alike: it checks the aggregate's version in `projection_versions`
//! (row locked), skips duplicates, fills gaps from the `events` table (in sequence order, never
//! out of order), decodes everything it is about to write before writing any of it, and
//! applies and records the version; an event it cannot decode is parked instead
//! ([`crate::parking`]), and so is every later event of an aggregate with a parked event. The
//! caller owns the transaction (and, for a rebuild, its `search_path`) and the checkpoint
//! ([`crate::checkpoint`]), so all of it commits or none of it does.
//!
//! The `sims` row follows the rules of `readmodel::sim_view_as_of` (the auditors' replay), so
//! that `GET /sims/{iccid}/state?as_of=now` equals `GET /sims/{iccid}`: SIM and quota events
//! move `last_position` / `updated_at` (the event's `recorded_at`, never `now()`); SMS events
//! do not touch the SIM's row.

mod quotas;
mod sims;
mod sms;

use domain::ids::parse_quota_aggregate_id;
use domain::{QuotaEvent, SimEvent, SmsEvent};
use eventstore::{EventRow, StoredEvent, SELECT_EVENT};
use sqlx::PgConnection;
use uuid::Uuid;

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
    /// Looks at `public.sim_usage_hourly`: a plain table (`relkind = 'r'`) or not.
    pub async fn detect(pool: &sqlx::PgPool) -> Result<Self, sqlx::Error> {
        let kind: Option<String> = sqlx::query_scalar(
            "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relname = 'sim_usage_hourly'",
        )
        .fetch_optional(pool)
        .await?;
        Ok(if kind.as_deref() == Some("r") {
            Self::Tables
        } else {
            Self::Managed
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

impl Applier {
    pub fn new(projector: impl Into<String>, rollups: UsageRollups) -> Self {
        Self {
            projector: projector.into(),
            rollups,
        }
    }

    /// The version guard, gap filling and the read-model writes of one event of the log (no
    /// checkpoint), on the caller's transaction. A database error leaves the transaction
    /// aborted: the caller rolls back (and, for a poison event, isolates it, see
    /// [`ApplyError::is_poison`]).
    pub async fn apply_logged(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<Outcome, ApplyError> {
        self.guarded(conn, event, Guard::Live).await
    }

    pub(crate) async fn guarded(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
        guard: Guard,
    ) -> Result<Outcome, ApplyError> {
        sqlx::query(
            "INSERT INTO projection_versions (projector, aggregate_type, aggregate_id, version) \
             VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
        )
        .bind(&self.projector)
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .execute(&mut *conn)
        .await?;
        let (version, parked): (i64, bool) = sqlx::query_as(
            "SELECT version, parked FROM projection_versions \
             WHERE projector = $1 AND aggregate_type = $2 AND aggregate_id = $3 FOR UPDATE",
        )
        .bind(&self.projector)
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .fetch_one(&mut *conn)
        .await?;

        if event.sequence <= version {
            return Ok(Outcome::Duplicate);
        }
        if parked && guard == Guard::Live {
            self.park(
                conn,
                event,
                "an earlier event of this aggregate is parked; waiting behind it",
            )
            .await?;
            return Ok(Outcome::Parked);
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
        // Everything decodes, or nothing is written.
        let mut decoded = Vec::with_capacity(pending.len());
        for one in &pending {
            match decode(one) {
                Ok(d) => decoded.push(d),
                Err(error) => {
                    if guard == Guard::Replay {
                        return Err(error);
                    }
                    self.park(conn, event, &error.to_string()).await?;
                    return Ok(Outcome::Parked);
                }
            }
        }
        for (one, decoded) in pending.iter().zip(decoded) {
            self.write(conn, one, decoded).await?;
        }
        sqlx::query(
            "UPDATE projection_versions SET version = $4 \
             WHERE projector = $1 AND aggregate_type = $2 AND aggregate_id = $3",
        )
        .bind(&self.projector)
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .bind(event.sequence)
        .execute(&mut *conn)
        .await?;
        Ok(Outcome::Applied {
            gap_filled: pending.len() as u64 - 1,
        })
    }

    /// The aggregate's events strictly between `version` and `event`, in sequence order.
    async fn missing_events(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
        version: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "{SELECT_EVENT} WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 AND sequence < $4 \
             ORDER BY sequence"
        ))
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .bind(version)
        .bind(event.sequence)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// The read-model writes of one decoded event, without any guard.
    async fn write(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
        decoded: Decoded,
    ) -> Result<(), ApplyError> {
        match decoded {
            Decoded::Sim(decoded) => self.sim_event(conn, event, decoded).await,
            Decoded::Quota {
                iccid,
                kind,
                event: decoded,
            } => self.quota_event(conn, event, &iccid, kind, decoded).await,
            Decoded::Sms {
                message_id,
                event: decoded,
            } => self.sms_event(conn, event, message_id, decoded).await,
            Decoded::Unprojected => {
                tracing::debug!(aggregate_type = %event.aggregate_type, "no read model for this aggregate type");
                Ok(())
            }
        }
    }
}
