//! Command execution: optimistic concurrency, expected versions and idempotency keys.

use domain::{Aggregate, DomainError, DomainEvent, ErrorKind};
use eventstore::{CommandContext, EventMetadata, EventStore, ExecuteError, Executed, Idempotency};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// A minimal aggregate: a ticket that is opened once and claimed once.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Ticket {
    opened: bool,
    claimed_by: Option<String>,
}

#[derive(Debug, Clone)]
enum TicketCommand {
    Open,
    Claim { by: String },
    Touch,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "payload")]
enum TicketEvent {
    Opened {},
    Claimed { by: String },
}

impl DomainEvent for TicketEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Opened {} => "Opened",
            Self::Claimed { .. } => "Claimed",
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum TicketError {
    #[error("no such ticket")]
    NotFound,
    #[error("already claimed")]
    AlreadyClaimed,
}

impl DomainError for TicketError {
    fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "TICKET_NOT_FOUND",
            Self::AlreadyClaimed => "ALREADY_CLAIMED",
        }
    }
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound => ErrorKind::NotFound,
            Self::AlreadyClaimed => ErrorKind::Conflict,
        }
    }
}

impl Aggregate for Ticket {
    const TYPE: &'static str = "ticket";
    type Command = TicketCommand;
    type Event = TicketEvent;
    type Error = TicketError;

    fn handle(&self, command: TicketCommand) -> Result<Vec<TicketEvent>, TicketError> {
        match command {
            TicketCommand::Open if self.opened => Ok(vec![]),
            TicketCommand::Open => Ok(vec![TicketEvent::Opened {}]),
            _ if !self.opened => Err(TicketError::NotFound),
            TicketCommand::Claim { .. } if self.claimed_by.is_some() => Err(TicketError::AlreadyClaimed),
            TicketCommand::Claim { by } => Ok(vec![TicketEvent::Claimed { by }]),
            TicketCommand::Touch => Ok(vec![]),
        }
    }

    fn apply(&mut self, event: &TicketEvent) {
        match event {
            TicketEvent::Opened {} => self.opened = true,
            TicketEvent::Claimed { by } => self.claimed_by = Some(by.clone()),
        }
    }
}

const ICCID: &str = "8988303000000000001";

fn ctx() -> CommandContext {
    CommandContext::new(EventMetadata::new("user:tester"))
}

fn with_key(key: &str, request_hash: &str) -> CommandContext {
    let mut ctx = ctx();
    ctx.idempotency = Some(Idempotency {
        scope: "user:tester".into(),
        key: key.into(),
        request_hash: request_hash.into(),
        response_status: 202,
    });
    ctx
}

/// How many rows `rows` (a table, with a condition if any) holds.
async fn count(pool: &PgPool, rows: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {rows}"))
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn count_events(pool: &PgPool) -> i64 {
    count(pool, "events").await
}

/// A store on `pool` in which ticket `t1` has been opened under `context`.
async fn store_with_t1_opened(pool: &PgPool, context: &CommandContext) -> EventStore {
    let store = EventStore::new(pool.clone());
    store
        .execute::<Ticket>("t1", ICCID, TicketCommand::Open, context)
        .await
        .unwrap();
    store
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn execute_stores_events_with_metadata_and_answers_version_and_position(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    let context = ctx();
    let executed = store
        .execute::<Ticket>("t1", ICCID, TicketCommand::Open, &context)
        .await
        .unwrap();
    let Executed::New { answer, events } = executed else {
        panic!("expected a new execution")
    };
    assert_eq!(answer.version, 1);
    assert_eq!(answer.aggregate_id, "t1");
    assert_eq!(answer.command_id, context.metadata.command_id);
    assert_eq!(events.len(), 1);
    assert_eq!(answer.position, events[0].position);

    let (event_type, metadata, iccid): (String, serde_json::Value, String) =
        sqlx::query_as("SELECT event_type, metadata, iccid FROM events WHERE aggregate_id = 't1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(event_type, "Opened");
    assert_eq!(iccid, ICCID);
    assert_eq!(metadata["actor"], "user:tester");
    assert_eq!(metadata["command_id"], context.metadata.command_id.to_string());
    assert!(metadata["correlation_id"].is_string() && metadata["causation_id"].is_string());
    assert!(metadata["occurred_at"].is_string());

    let claimed = store
        .execute::<Ticket>("t1", ICCID, TicketCommand::Claim { by: "ann".into() }, &ctx())
        .await
        .unwrap();
    assert_eq!(claimed.answer().version, 2);
    assert!(claimed.answer().position > answer.position);
    let loaded = store.load::<Ticket>("t1").await.unwrap();
    assert_eq!(loaded.version, 2);
    assert_eq!(loaded.state.claimed_by.as_deref(), Some("ann"));
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_no_op_stores_nothing_and_keeps_the_version(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    let opened = store
        .execute::<Ticket>("t1", ICCID, TicketCommand::Open, &ctx())
        .await
        .unwrap();
    let touched = store
        .execute::<Ticket>("t1", ICCID, TicketCommand::Touch, &ctx())
        .await
        .unwrap();
    assert_eq!(touched.answer().version, 1);
    assert_eq!(touched.answer().position, opened.answer().position);
    assert_eq!(count_events(&pool).await, 1);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn domain_refusal_stores_nothing(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    let refused = store
        .execute::<Ticket>("nope", ICCID, TicketCommand::Claim { by: "ann".into() }, &ctx())
        .await;
    assert!(matches!(
        refused,
        Err(ExecuteError::Domain(TicketError::NotFound))
    ));
    assert_eq!(count_events(&pool).await, 0);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_stale_expected_version_is_refused(pool: PgPool) {
    let store = store_with_t1_opened(&pool, &ctx()).await;
    let mut stale = ctx();
    stale.expected_version = Some(0);
    let refused = store
        .execute::<Ticket>("t1", ICCID, TicketCommand::Claim { by: "ann".into() }, &stale)
        .await;
    assert!(matches!(
        refused,
        Err(ExecuteError::VersionMismatch {
            expected: 0,
            actual: 1
        })
    ));

    let mut current = ctx();
    current.expected_version = Some(1);
    let accepted = store
        .execute::<Ticket>("t1", ICCID, TicketCommand::Claim { by: "ann".into() }, &current)
        .await
        .unwrap();
    assert_eq!(accepted.answer().version, 2);
}

/// Fifty writers race for one ticket: exactly one claim is stored; everyone else sees the
/// winner's event and is refused by the domain (never two events at one version).
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn concurrent_commands_never_both_apply_to_one_version(pool: PgPool) {
    let store = store_with_t1_opened(&pool, &ctx()).await;
    let racers = (0..50).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .execute::<Ticket>(
                    "t1",
                    ICCID,
                    TicketCommand::Claim {
                        by: format!("racer{i}"),
                    },
                    &ctx(),
                )
                .await
        })
    });
    let results = futures::future::join_all(racers).await;
    let winners = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    let refused = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Ok(Err(ExecuteError::Domain(TicketError::AlreadyClaimed)) | Err(ExecuteError::Conflict))
            )
        })
        .count();
    assert_eq!(winners, 1);
    assert_eq!(refused, 49);
    assert_eq!(count(&pool, "events WHERE event_type = 'Claimed'").await, 1);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_same_key_and_request_answers_the_first_answer_again(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    let first = store
        .execute::<Ticket>("t1", ICCID, TicketCommand::Open, &with_key("k1", "h1"))
        .await
        .unwrap();
    let second = store
        .execute::<Ticket>("t1", ICCID, TicketCommand::Open, &with_key("k1", "h1"))
        .await
        .unwrap();
    assert!(matches!(second, Executed::Replayed { status: 202, .. }));
    assert_eq!(first.answer(), second.answer());
    assert_eq!(count_events(&pool).await, 1);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_same_key_with_another_request_is_refused(pool: PgPool) {
    let store = store_with_t1_opened(&pool, &with_key("k1", "h1")).await;
    let reused = store
        .execute::<Ticket>(
            "t1",
            ICCID,
            TicketCommand::Claim { by: "ann".into() },
            &with_key("k1", "h2"),
        )
        .await;
    assert!(matches!(reused, Err(ExecuteError::IdempotencyKeyReused)));
    assert_eq!(count_events(&pool).await, 1);
}

/// Ten requests with one key at once, each addressed to a fresh aggregate (as an SMS is):
/// one set of events, and all ten answers are the first one.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_same_key_ten_times_at_once_yields_one_set_of_events(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    let requests = (0..10).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .execute::<Ticket>(
                    &format!("fresh-{i}"),
                    ICCID,
                    TicketCommand::Open,
                    &with_key("once", "same"),
                )
                .await
                .unwrap()
        })
    });
    let answers: Vec<_> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.unwrap().answer().clone())
        .collect();
    assert!(
        answers.iter().all(|a| a == &answers[0]),
        "every request answers the first answer"
    );
    assert_eq!(count_events(&pool).await, 1);
    assert_eq!(count(&pool, "command_idempotency").await, 1);
}

/// Keys are scoped per principal: two callers may pick the same key.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn keys_of_different_principals_do_not_collide(pool: PgPool) {
    let store = store_with_t1_opened(&pool, &with_key("k", "h")).await;
    let mut other = with_key("k", "h");
    other.idempotency.as_mut().unwrap().scope = "user:someone-else".into();
    let executed = store
        .execute::<Ticket>("t2", ICCID, TicketCommand::Open, &other)
        .await
        .unwrap();
    assert!(matches!(executed, Executed::New { .. }));
    assert_eq!(count_events(&pool).await, 2);
}

// ---------------------------------------------------------------------------------------------
// Snapshots: a cache of the state, never a source of truth.

async fn relabel(store: &EventStore, iccid: &str, times: usize) {
    for n in 0..times {
        let command = domain::SimCommand::UpdateDetails {
            label: Some(Some(format!("label-{n}"))),
            tags: None,
        };
        store
            .execute::<domain::Sim>(iccid, iccid, command, &ctx())
            .await
            .unwrap();
    }
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn snapshots_change_nothing_but_speed(pool: PgPool) {
    use domain::{Iccid, Imsi, Sim, SimCommand};
    let iccid = "8988303000000000001";
    let store = EventStore::new(pool.clone()).with_snapshots_every(100);
    let register = SimCommand::Register {
        iccid: Iccid::parse(iccid).unwrap(),
        imsi: Imsi::parse("901405100000001").unwrap(),
        msisdn: None,
        label: None,
        tags: vec![],
        at: chrono::Utc::now(),
    };
    store
        .execute::<Sim>(iccid, iccid, register, &ctx())
        .await
        .unwrap();
    relabel(&store, iccid, 249).await;

    let snapshot: (i64, i64) = sqlx::query_as(
        "SELECT version, last_position FROM aggregate_snapshots WHERE aggregate_type = 'sim' AND aggregate_id = $1",
    )
    .bind(iccid)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(snapshot.0, 200, "the last multiple of 100 crossed");
    let from_events = EventStore::new(pool.clone())
        .with_snapshots_every(0)
        .load::<Sim>(iccid)
        .await
        .unwrap();
    let from_snapshot = store.load::<Sim>(iccid).await.unwrap();
    assert_eq!(from_snapshot.snapshot_version, 200);
    assert_eq!(from_snapshot.version, 250);
    assert_eq!(from_snapshot.state, from_events.state);
    assert_eq!(from_snapshot.last_position, from_events.last_position);

    // Of another code version, or not decodable: ignored.
    sqlx::query("UPDATE aggregate_snapshots SET state_version = 'older'")
        .execute(&pool)
        .await
        .unwrap();
    let ignored = store.load::<Sim>(iccid).await.unwrap();
    assert_eq!((ignored.snapshot_version, ignored.version), (0, 250));
    assert_eq!(ignored.state, from_events.state);
    sqlx::query("UPDATE aggregate_snapshots SET state_version = $1, state = '{\"nonsense\": 1}'")
        .bind(<Sim as domain::Aggregate>::STATE_VERSION)
        .execute(&pool)
        .await
        .unwrap();
    let undecodable = store.load::<Sim>(iccid).await.unwrap();
    assert_eq!(
        (undecodable.snapshot_version, undecodable.state.clone()),
        (0, from_events.state.clone())
    );

    // All gone: the same state, and commands go on (writing a fresh snapshot at 300).
    sqlx::query("DELETE FROM aggregate_snapshots")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(store.load::<Sim>(iccid).await.unwrap().state, from_events.state);
    relabel(&store, iccid, 60).await;
    let version: i64 = sqlx::query_scalar("SELECT version FROM aggregate_snapshots")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(version, 300);
    let after = store.load::<Sim>(iccid).await.unwrap();
    assert_eq!(after.version, 310);
    assert_eq!(after.state.label(), Some("label-59"));
}
