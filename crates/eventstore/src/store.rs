use chrono::{DateTime, Utc};
use domain::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::error::{ExecuteError, StoreError};
use crate::metadata::{CommandContext, Idempotency};
use crate::stored::{decode_event, encode_payload, StoredEvent};

/// How often a command is decided again after another writer won the race for the same
/// version. Each retry reloads the aggregate, so the domain sees the winner's events.
const DEFAULT_MAX_ATTEMPTS: u32 = 8;

/// An aggregate rebuilt from its events.
#[derive(Debug, Clone)]
pub struct LoadedAggregate<A> {
    pub state: A,
    /// The number of events applied (0: the aggregate does not exist yet).
    pub version: u64,
    /// The global position of its last event.
    pub last_position: Option<i64>,
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

#[derive(Clone, Debug)]
pub struct EventStore {
    pool: PgPool,
    max_attempts: u32,
}

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Rebuilds an aggregate by applying all of its events in sequence order.
    pub async fn load<A: Aggregate>(&self, aggregate_id: &str) -> Result<LoadedAggregate<A>, StoreError> {
        let rows: Vec<(i64, String, serde_json::Value, i64)> = sqlx::query_as(
            "SELECT sequence, event_type, payload, position FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .fetch_all(&self.pool)
        .await?;
        let mut loaded = LoadedAggregate {
            state: A::default(),
            version: 0,
            last_position: None,
        };
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
            if let Some(expected) = ctx.expected_version {
                if expected != loaded.version {
                    return Err(ExecuteError::VersionMismatch {
                        expected,
                        actual: loaded.version,
                    });
                }
            }
            let events = decide(&loaded.state).map_err(ExecuteError::Domain)?;

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
                Err(AppendError::VersionTaken) => continue,
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
                    continue;
                }
            }
            tx.commit().await?;
            return Ok(Executed::New {
                answer,
                events: stored,
            });
        }
        Err(ExecuteError::Conflict)
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
