use chrono::{DateTime, Utc};
use domain::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::error::{ExecuteError, StoreError};
use crate::metadata::{CommandContext, Idempotency};
use crate::snapshot;
use crate::stored::{decode_event, encode_payload, StoredEvent};

/// How often a command is decided again after another writer won the race for the same
/// version. Each retry reloads the aggregate, so the domain sees the winner's events.
const DEFAULT_MAX_ATTEMPTS: u32 = 8;

/// An aggregate rebuilt from its snapshot (if any) and the events after it.
#[derive(Debug, Clone)]
pub struct LoadedAggregate<A> {
    pub state: A,
    /// The number of events applied (0: the aggregate does not exist yet).
    pub version: u64,
    /// The global position of its last event.
    pub last_position: Option<i64>,
    /// The version of the snapshot it started from (0: from the first event).
    pub snapshot_version: u64,
}

/// What a command answers: `position` doubles as a consistency token for the query API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandAnswer {
    pub command_id: Uuid,
    pub aggregate_id: String,
    pub version: u64,
    pub position: i64,
}

/// The result of [`EventStore::execute`].
#[derive(Debug, Clone)]
pub enum Executed {
    /// The command ran now; `events` is what it stored (possibly nothing, for a no-op).
    New {
        answer: CommandAnswer,
        events: Vec<StoredEvent>,
    },
    /// The idempotency key was seen before with the same request: the first answer, again.
    Replayed { status: u16, answer: CommandAnswer },
}

impl Executed {
    pub fn answer(&self) -> &CommandAnswer {
        match self {
            Self::New { answer, .. } | Self::Replayed { answer, .. } => answer,
        }
    }
}

/// A snapshot of an aggregate every this many events, by default (`SNAPSHOT_EVERY`).
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 100;

#[derive(Clone, Debug)]
pub struct EventStore {
    pool: PgPool,
    max_attempts: u32,
    snapshot_every: u64,
}

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
        }
    }

    /// Snapshots every `every` events (0: none; loads read every event).
    pub fn with_snapshots_every(mut self, every: u64) -> Self {
        self.snapshot_every = every;
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Rebuilds an aggregate: its snapshot (when snapshots are on and a usable one exists),
    /// then every later event in sequence order.
    pub async fn load<A: Aggregate>(&self, aggregate_id: &str) -> Result<LoadedAggregate<A>, StoreError> {
        let mut loaded = LoadedAggregate {
            state: A::default(),
            version: 0,
            last_position: None,
            snapshot_version: 0,
        };
        if self.snapshot_every > 0 {
            if let Some(snapshot) = snapshot::read::<A>(&self.pool, aggregate_id).await? {
                loaded = LoadedAggregate {
                    state: snapshot.state,
                    version: snapshot.version,
                    last_position: Some(snapshot.last_position),
                    snapshot_version: snapshot.version,
                };
            }
        }
        let rows: Vec<(i64, String, serde_json::Value, i64)> = sqlx::query_as(
            "SELECT sequence, event_type, payload, position FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 ORDER BY sequence",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(loaded.version as i64)
        .fetch_all(&self.pool)
        .await?;
        for (sequence, event_type, payload, position) in rows {
            let event: A::Event =
                decode_event(&event_type, &payload).map_err(|source| StoreError::Decode {
                    aggregate_type: A::TYPE.to_owned(),
                    aggregate_id: aggregate_id.to_owned(),
                    sequence,
                    source,
                })?;
            loaded.state.apply(&event);
            loaded.version = sequence as u64;
            loaded.last_position = Some(position);
        }
        Ok(loaded)
    }

    /// Every stored event of one aggregate, oldest first.
    pub async fn events_of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query_as::<_, EventRow>(&format!(
            "{SELECT_EVENT} WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence"
        ))
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// Whether every event after version `expected` (up to `current`) is a settlement
    /// ([`Aggregate::is_settlement`]), so an `If-Match: expected` still holds.
    async fn only_settled_since<A: Aggregate>(
        &self,
        aggregate_id: &str,
        expected: u64,
        current: u64,
    ) -> Result<bool, StoreError> {
        if expected > current {
            return Ok(false);
        }
        let rows = sqlx::query_as::<_, EventRow>(&format!(
            "{SELECT_EVENT} WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 ORDER BY sequence"
        ))
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(i64::try_from(expected).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).all(|stored| {
            stored
                .to_domain::<A::Event>()
                .is_ok_and(|event| A::is_settlement(&event))
        }))
    }

    /// Decides `command` against the aggregate's current state and appends the resulting
    /// events, retrying on a lost race. With an idempotency key, a key already stored answers
    /// the first answer again (or refuses a different request), and the key's record commits in
    /// the same transaction as the events.
    pub async fn execute<A>(
        &self,
        aggregate_id: &str,
        iccid: &str,
        command: A::Command,
        ctx: &CommandContext,
    ) -> Result<Executed, ExecuteError<A::Error>>
    where
        A: Aggregate,
        A::Command: Clone,
    {
        self.execute_with::<A, _>(aggregate_id, iccid, ctx, |state| state.handle(command.clone()))
            .await
    }

    /// Like [`execute`](Self::execute), with the decision given as a function of the state:
    /// several commands that must succeed or fail together (see [`handle_in_turn`]).
    pub async fn execute_with<A, F>(
        &self,
        aggregate_id: &str,
        iccid: &str,
        ctx: &CommandContext,
        decide: F,
    ) -> Result<Executed, ExecuteError<A::Error>>
    where
        A: Aggregate,
        F: Fn(&A) -> Result<Vec<A::Event>, A::Error>,
    {
        for _ in 0..self.max_attempts {
            if let Some(idempotency) = &ctx.idempotency {
                if let Some(replay) = self.replay(idempotency).await? {
                    return replay;
                }
            }
            let loaded = self.load::<A>(aggregate_id).await?;
            let mut met = None;
            if let Some(expected) = ctx.expected_version {
                if expected != loaded.version {
                    if !self
                        .only_settled_since::<A>(aggregate_id, expected, loaded.version)
                        .await?
                    {
                        return Err(ExecuteError::VersionMismatch {
                            expected,
                            actual: loaded.version,
                        });
                    }
                    // Met: what the client saw is still current; append after the settlements.
                    met = Some(CommandContext {
                        expected_version: Some(loaded.version),
                        ..ctx.clone()
                    });
                }
            }
            let events = decide(&loaded.state).map_err(ExecuteError::Domain)?;
            match self
                .append_decided(aggregate_id, iccid, &loaded, events, met.as_ref().unwrap_or(ctx))
                .await?
            {
                Some(executed) => return Ok(executed),
                None => continue,
            }
        }
        Err(ExecuteError::Conflict)
    }

    /// Stores `events`, decided by the caller against `loaded` (one load per command: the
    /// caller needed the state anyway), in one attempt: `ExecuteError::Conflict` when another
    /// writer took the version meanwhile (load and decide again), `VersionMismatch` when
    /// `If-Match` names another version, the first answer again for a known idempotency key.
    pub async fn execute_decided<A: Aggregate>(
        &self,
        aggregate_id: &str,
        iccid: &str,
        loaded: &LoadedAggregate<A>,
        events: Vec<A::Event>,
        ctx: &CommandContext,
    ) -> Result<Executed, ExecuteError<A::Error>> {
        if let Some(idempotency) = &ctx.idempotency {
            if let Some(replay) = self.replay(idempotency).await? {
                return replay;
            }
        }
        self.append_decided(aggregate_id, iccid, loaded, events, ctx)
            .await?
            .ok_or(ExecuteError::Conflict)
    }

    /// The write half of a command; `Ok(None)` when the race for the version (or for the
    /// idempotency key) was lost.
    async fn append_decided<A: Aggregate>(
        &self,
        aggregate_id: &str,
        iccid: &str,
        loaded: &LoadedAggregate<A>,
        events: Vec<A::Event>,
        ctx: &CommandContext,
    ) -> Result<Option<Executed>, ExecuteError<A::Error>> {
        if let Some(expected) = ctx.expected_version {
            if expected != loaded.version {
                return Err(ExecuteError::VersionMismatch {
                    expected,
                    actual: loaded.version,
                });
            }
        }
        let mut tx = self.pool.begin().await?;
        let stored = match append(
            &mut tx,
            A::TYPE,
            aggregate_id,
            iccid,
            loaded.version,
            &events,
            ctx,
        )
        .await
        {
            Ok(stored) => stored,
            Err(AppendError::VersionTaken) => return Ok(None),
            Err(AppendError::Store(error)) => return Err(error.into()),
        };
        let answer = CommandAnswer {
            command_id: ctx.metadata.command_id,
            aggregate_id: aggregate_id.to_owned(),
            version: loaded.version + stored.len() as u64,
            position: stored
                .last()
                .map(|event| event.position)
                .or(loaded.last_position)
                .unwrap_or(0),
        };
        if let Some(idempotency) = &ctx.idempotency {
            if !record_idempotency(&mut tx, idempotency, &answer).await? {
                // A concurrent request with the same key committed first: answer as it did.
                tx.rollback().await?;
                return Ok(None);
            }
        }
        tx.commit().await?;
        self.snapshot_after(aggregate_id, loaded, &events, &answer).await;
        Ok(Some(Executed::New {
            answer,
            events: stored,
        }))
    }

    /// After a commit: a snapshot when the version crossed a multiple of `snapshot_every`
    /// since the one the command started from. Best effort: a snapshot is only a cache.
    async fn snapshot_after<A: Aggregate>(
        &self,
        aggregate_id: &str,
        loaded: &LoadedAggregate<A>,
        events: &[A::Event],
        answer: &CommandAnswer,
    ) {
        let every = self.snapshot_every;
        if every == 0 || events.is_empty() || answer.version / every <= loaded.snapshot_version / every {
            return;
        }
        let mut state = loaded.state.clone();
        for event in events {
            state.apply(event);
        }
        if let Err(error) =
            snapshot::write(&self.pool, aggregate_id, &state, answer.version, answer.position).await
        {
            tracing::warn!(aggregate_type = A::TYPE, aggregate_id, %error, "cannot write a snapshot; loads stay slower");
        }
    }

    async fn replay<E: std::error::Error>(
        &self,
        idempotency: &Idempotency,
    ) -> Result<Option<Result<Executed, ExecuteError<E>>>, StoreError> {
        let row: Option<(String, i16, serde_json::Value)> = sqlx::query_as(
            "SELECT request_hash, response_status, response_body FROM command_idempotency \
             WHERE scope = $1 AND idempotency_key = $2",
        )
        .bind(&idempotency.scope)
        .bind(&idempotency.key)
        .fetch_optional(&self.pool)
        .await?;
        let Some((request_hash, status, body)) = row else {
            return Ok(None);
        };
        if request_hash != idempotency.request_hash {
            return Ok(Some(Err(ExecuteError::IdempotencyKeyReused)));
        }
        let answer: CommandAnswer = serde_json::from_value(body).map_err(|source| StoreError::Decode {
            aggregate_type: "command_idempotency".into(),
            aggregate_id: idempotency.key.clone(),
            sequence: 0,
            source,
        })?;
        Ok(Some(Ok(Executed::Replayed {
            status: status as u16,
            answer,
        })))
    }
}

/// Handles `commands` one after the other, each against the state the previous ones left, and
/// returns all their events; the first refusal refuses them all.
pub fn handle_in_turn<A: Aggregate>(
    state: &A,
    commands: impl IntoIterator<Item = A::Command>,
) -> Result<Vec<A::Event>, A::Error> {
    let mut state = state.clone();
    let mut all = Vec::new();
    for command in commands {
        let events = state.handle(command)?;
        for event in &events {
            state.apply(event);
        }
        all.extend(events);
    }
    Ok(all)
}

enum AppendError {
    /// Another writer stored this aggregate's next version first.
    VersionTaken,
    Store(StoreError),
}

impl From<sqlx::Error> for AppendError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.constraint() == Some("events_pkey") => Self::VersionTaken,
            _ => Self::Store(StoreError::Database(error)),
        }
    }
}

async fn append<E: DomainEvent>(
    tx: &mut Transaction<'_, Postgres>,
    aggregate_type: &str,
    aggregate_id: &str,
    iccid: &str,
    version: u64,
    events: &[E],
    ctx: &CommandContext,
) -> Result<Vec<StoredEvent>, AppendError> {
    let metadata =
        serde_json::to_value(&ctx.metadata).map_err(|e| AppendError::Store(StoreError::Encode(e)))?;
    let mut stored = Vec::with_capacity(events.len());
    for (offset, event) in events.iter().enumerate() {
        let payload = encode_payload(event).map_err(|e| AppendError::Store(StoreError::Encode(e)))?;
        let sequence = (version + offset as u64 + 1) as i64;
        let (position, transaction_id, recorded_at): (i64, String, DateTime<Utc>) = sqlx::query_as(
            "INSERT INTO events \
             (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, iccid) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             RETURNING position, transaction_id::text, recorded_at",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(sequence)
        .bind(event.event_type())
        .bind(event.event_version())
        .bind(&payload)
        .bind(&metadata)
        .bind(iccid)
        .fetch_one(&mut **tx)
        .await?;
        stored.push(StoredEvent {
            position,
            transaction_id: transaction_id.parse().ok(),
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            sequence,
            event_type: event.event_type().to_owned(),
            event_version: event.event_version().to_owned(),
            iccid: iccid.to_owned(),
            recorded_at,
            metadata: metadata.clone(),
            payload,
        });
    }
    Ok(stored)
}

/// Returns false when the key is already taken (by a transaction that committed meanwhile).
async fn record_idempotency(
    tx: &mut Transaction<'_, Postgres>,
    idempotency: &Idempotency,
    answer: &CommandAnswer,
) -> Result<bool, StoreError> {
    let body = serde_json::to_value(answer).map_err(StoreError::Encode)?;
    let inserted = sqlx::query(
        "INSERT INTO command_idempotency \
         (scope, idempotency_key, request_hash, command_id, response_status, response_body) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(&idempotency.scope)
    .bind(&idempotency.key)
    .bind(&idempotency.request_hash)
    .bind(answer.command_id)
    .bind(idempotency.response_status as i16)
    .bind(body)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// The columns of a stored event, shared by every reader (add the `WHERE` and `ORDER BY`).
///
/// The transaction id is read as text under another name on purpose: an output column named
/// `transaction_id` would be what `ORDER BY transaction_id` sorts, as text ("1000" before
/// "999"), and a reader of the global log would skip events whenever transaction ids gain a
/// digit. `ORDER BY transaction_id` must mean the `xid8` column.
pub const SELECT_EVENT: &str =
    "SELECT position, transaction_id::text AS transaction_id_text, aggregate_type, \
     aggregate_id, sequence, event_type, event_version, iccid, recorded_at, metadata, payload FROM events";

/// A row of [`SELECT_EVENT`]; converts into a [`StoredEvent`].
#[derive(sqlx::FromRow)]
pub struct EventRow {
    position: i64,
    #[sqlx(rename = "transaction_id_text")]
    transaction_id: String,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    iccid: String,
    recorded_at: DateTime<Utc>,
    metadata: serde_json::Value,
    payload: serde_json::Value,
}

impl From<EventRow> for StoredEvent {
    fn from(row: EventRow) -> Self {
        Self {
            position: row.position,
            transaction_id: row.transaction_id.parse().ok(),
            aggregate_type: row.aggregate_type,
            aggregate_id: row.aggregate_id,
            sequence: row.sequence,
            event_type: row.event_type,
            event_version: row.event_version,
            iccid: row.iccid,
            recorded_at: row.recorded_at,
            metadata: row.metadata,
            payload: row.payload,
        }
    }
}
