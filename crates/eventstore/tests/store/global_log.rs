//! The global log never skips an event that a slower, concurrent transaction commits later.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventstore::{GlobalLog, LogCursor, StoredEvent};
use rand::Rng;
use sqlx::{PgConnection, PgPool};

async fn insert(conn: &mut PgConnection, aggregate_id: &str, sequence: i64) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, iccid) \
         VALUES ('test', $1, $2, 'Happened', '1.0', '{}', '{}', '8988303000000000001') RETURNING position",
    )
    .bind(aggregate_id)
    .bind(sequence)
    .fetch_one(conn)
    .await
    .expect("insert event")
}

/// Transaction ids are cluster-wide: a transaction of a test running in parallel (in another
/// database) also holds the horizon back for a moment. So reads that expect events poll.
async fn read_expecting(log: &GlobalLog, cursor: LogCursor, expected: usize) -> Vec<StoredEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let events = log.read_after(cursor, 100).await.unwrap();
        if events.len() >= expected || tokio::time::Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn positions(events: &[StoredEvent]) -> Vec<i64> {
    events.iter().map(|event| event.position).collect()
}

/// The case that defeats a position-only cursor: T1 writes 1, T2 writes 2, T1 writes 3, T1
/// commits first. A reader that moved to position 3 would never read 2.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn reader_reads_position_committed_late_after_a_higher_one(pool: PgPool) {
    let log = GlobalLog::new(pool.clone());
    let mut t1 = pool.begin().await.unwrap();
    let mut t2 = pool.begin().await.unwrap();
    let p1 = insert(&mut t1, "a", 1).await;
    let p2 = insert(&mut t2, "b", 1).await;
    let p3 = insert(&mut t1, "a", 2).await;
    assert!(p1 < p2 && p2 < p3);

    assert!(
        log.read_after(LogCursor::START, 100).await.unwrap().is_empty(),
        "nothing committed yet"
    );

    t1.commit().await.unwrap();
    let first = read_expecting(&log, LogCursor::START, 2).await;
    assert_eq!(positions(&first), vec![p1, p3]);
    let cursor = LogCursor::after(first.last().unwrap());
    assert!(
        log.read_after(cursor, 100).await.unwrap().is_empty(),
        "T2 is still in flight"
    );

    t2.commit().await.unwrap();
    let second = read_expecting(&log, cursor, 1).await;
    assert_eq!(
        positions(&second),
        vec![p2],
        "the event at position 2 must still be read"
    );

    // What a position-only cursor would have done: position 2 is behind it, lost for good.
    let after_three: Vec<i64> = sqlx::query_scalar("SELECT position FROM events WHERE position > $1")
        .bind(p3)
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(after_three.is_empty());
}

/// A younger transaction that commits first is held back until the older one ends, so the
/// older one's events are not skipped either.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn younger_transaction_committed_first_waits_for_the_older(pool: PgPool) {
    let log = GlobalLog::new(pool.clone());
    let mut older = pool.begin().await.unwrap();
    let p_old = insert(&mut older, "old", 1).await;
    let mut younger = pool.begin().await.unwrap();
    let p_young = insert(&mut younger, "young", 1).await;
    younger.commit().await.unwrap();

    assert!(
        log.read_after(LogCursor::START, 100).await.unwrap().is_empty(),
        "the younger transaction must wait behind the older one still in flight"
    );
    assert_eq!(log.head().await.unwrap(), 0);

    older.commit().await.unwrap();
    let events = read_expecting(&log, LogCursor::START, 2).await;
    assert_eq!(positions(&events), vec![p_old, p_young]);
    assert_eq!(
        log.head().await.unwrap(),
        p_young,
        "head follows what is readable"
    );
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn rolled_back_events_are_never_read(pool: PgPool) {
    let log = GlobalLog::new(pool.clone());
    let mut aborted = pool.begin().await.unwrap();
    insert(&mut aborted, "gone", 1).await;
    let mut kept = pool.begin().await.unwrap();
    let p_kept = insert(&mut kept, "kept", 1).await;
    aborted.rollback().await.unwrap();
    kept.commit().await.unwrap();

    let events = read_expecting(&log, LogCursor::START, 1).await;
    assert_eq!(positions(&events), vec![p_kept]);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn cursor_of_a_position_continues_after_that_event(pool: PgPool) {
    let log = GlobalLog::new(pool.clone());
    let mut conn = pool.acquire().await.unwrap();
    let p1 = insert(&mut conn, "x", 1).await;
    let p2 = insert(&mut conn, "x", 2).await;
    let p3 = insert(&mut conn, "x", 3).await;

    let cursor = log.cursor_at(p1).await.unwrap();
    assert_eq!(cursor.position, p1);
    assert_eq!(positions(&read_expecting(&log, cursor, 2).await), vec![p2, p3]);
    assert_eq!(
        positions(&log.read_after(cursor, 1).await.unwrap()),
        vec![p2],
        "limit is honoured"
    );
    assert_eq!(log.cursor_at(0).await.unwrap(), LogCursor::START);
    assert!(
        log.cursor_at(p3 + 1000).await.is_err(),
        "an unknown position is an error"
    );
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_log_is_append_only(pool: PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    insert(&mut conn, "x", 1).await;
    let update = sqlx::query("UPDATE events SET payload = '{\"forged\": true}'")
        .execute(&pool)
        .await;
    assert!(update.is_err(), "an UPDATE of a stored event must be refused");
    let delete = sqlx::query("DELETE FROM events").execute(&pool).await;
    assert!(delete.is_err(), "a DELETE of a stored event must be refused");
}

/// Many writers commit in random order with pauses inside their transactions (and some roll
/// back) while a reader follows the log: it reads every committed event exactly once, and each
/// aggregate's events in sequence order.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_following_reader_sees_every_commit_exactly_once(pool: PgPool) {
    const WRITERS: usize = 6;
    const TRANSACTIONS: usize = 15;
    let committed = Arc::new(tokio::sync::Mutex::new(BTreeSet::new()));
    // How many events the reader must end up with; known once every writer is done.
    let target = Arc::new(AtomicUsize::new(usize::MAX));

    let reader = {
        let log = GlobalLog::new(pool.clone());
        let target = target.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let mut cursor = LogCursor::START;
            let mut seen: Vec<StoredEvent> = Vec::new();
            while seen.len() < target.load(Ordering::SeqCst) && tokio::time::Instant::now() < deadline {
                let batch = log.read_after(cursor, 7).await.unwrap();
                match batch.last() {
                    Some(last) => cursor = LogCursor::after(last),
                    None => tokio::time::sleep(Duration::from_millis(2)).await,
                }
                seen.extend(batch);
            }
            // Anything more would be a duplicate or an invention.
            seen.extend(log.read_after(cursor, 100).await.unwrap());
            seen
        })
    };

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let pool = pool.clone();
        let committed = committed.clone();
        writers.push(tokio::spawn(async move {
            let aggregate = format!("w{writer}");
            let mut sequence = 0;
            for _ in 0..TRANSACTIONS {
                let (events, pause_ms, roll_back) = {
                    let mut rng = rand::rng();
                    (
                        rng.random_range(1..=3),
                        rng.random_range(0..4u64),
                        rng.random_bool(0.2),
                    )
                };
                let mut tx = pool.begin().await.unwrap();
                let mut written = Vec::new();
                for _ in 0..events {
                    sequence += 1;
                    written.push(insert(&mut tx, &aggregate, sequence).await);
                    tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                }
                if roll_back {
                    tx.rollback().await.unwrap();
                    sequence -= events;
                } else {
                    tx.commit().await.unwrap();
                    committed.lock().await.extend(written);
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    target.store(committed.lock().await.len(), Ordering::SeqCst);
    let seen = reader.await.unwrap();

    let seen_positions: Vec<i64> = positions(&seen);
    let unique: BTreeSet<i64> = seen_positions.iter().copied().collect();
    assert_eq!(unique.len(), seen_positions.len(), "an event was read twice");
    assert_eq!(
        unique,
        *committed.lock().await,
        "the reader missed or invented events"
    );

    let mut last_sequence: BTreeMap<&str, i64> = BTreeMap::new();
    for event in &seen {
        let previous = last_sequence
            .insert(&event.aggregate_id, event.sequence)
            .unwrap_or(0);
        assert_eq!(
            event.sequence,
            previous + 1,
            "aggregate {} out of order",
            event.aggregate_id
        );
    }
}

/// `partition_of` (Rust) and `sim_partition` (SQL) agree; each share reads its SIMs' events
/// in log order, all shares together every event once, and each share's read covers the log
/// past the other shares' events.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn shares_of_the_log_partition_it_by_sim(pool: PgPool) {
    use eventstore::{partition_of, Share};
    for partitions in [1, 2, 3, 4, 7, 16] {
        let iccids: Vec<String> = (0..500u64).map(|n| format!("89883030{:011}", n * 7919)).collect();
        let sql: Vec<i32> = sqlx::query_scalar("SELECT sim_partition(i, $2) FROM unnest($1::text[]) i")
            .bind(&iccids)
            .bind(partitions as i32)
            .fetch_all(&pool)
            .await
            .unwrap();
        let rust: Vec<i32> = iccids
            .iter()
            .map(|i| partition_of(i, partitions) as i32)
            .collect();
        assert_eq!(sql, rust, "{partitions} partitions");
    }

    let mut conn = pool.acquire().await.unwrap();
    for n in 0..40 {
        let iccid = format!("89883030000000000{n:02}");
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, iccid) \
             VALUES ('test', $1, 1, 'Happened', '1.0', '{}', '{}', $1)",
        )
        .bind(&iccid)
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    let all = read_expecting(&GlobalLog::new(pool.clone()), LogCursor::START, 40).await;
    assert_eq!(all.len(), 40);
    let end = LogCursor::after(all.last().unwrap());
    let head = LogCursor {
        transaction_id: u64::MAX,
        position: i64::MAX,
    };
    let mut union = Vec::new();
    for index in 0..3 {
        let share = Share { index, of: 3 };
        // Pages of 4, each covering exactly the share's events up to where it read. Other
        // tests' event writers (on other databases of this server: transaction ids are the
        // cluster's) may hold the horizon for a moment; the walk waits for them.
        let mut cursor = LogCursor::START;
        let mut mine = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while cursor != end {
            let read = GlobalLog::read_share_on(&mut conn, cursor, head, 4, share)
                .await
                .unwrap();
            let Some(through) = read.through else {
                assert!(std::time::Instant::now() < deadline, "the log stayed unreadable");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            assert!(read.events.iter().all(|e| share.holds(&e.iccid)));
            assert!(read.events.len() <= 4);
            // Exactly the share's events of (cursor, through] were read.
            let covered: Vec<i64> = all
                .iter()
                .filter(|e| share.holds(&e.iccid))
                .filter(|e| LogCursor::after(e) > cursor && LogCursor::after(e) <= through)
                .map(|e| e.position)
                .collect();
            assert_eq!(positions(&read.events), covered);
            assert!(through > cursor && through <= end);
            mine.extend(read.events);
            cursor = through;
        }
        assert_eq!(cursor, end);
        let expected: Vec<i64> = all
            .iter()
            .filter(|e| share.holds(&e.iccid))
            .map(|e| e.position)
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(positions(&mine), expected, "share {index} in log order");
        union.extend(positions(&mine));
    }
    union.sort();
    assert_eq!(union, positions(&all));
}

/// The horizon is held back by event writers only: a transaction with an id that writes no
/// events (a projector's apply, a TimescaleDB job, a report elsewhere on the cluster) does not
/// hold the log back; one that wrote an event does; a transaction that wrote something else
/// before its events is refused (it had an id before it was marked as a writer).
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn only_event_writers_hold_the_horizon(pool: PgPool) {
    let log = GlobalLog::new(pool.clone());
    // Another database's or another component's transaction: it has an id and stays open.
    let mut bystander = pool.begin().await.unwrap();
    sqlx::raw_sql("CREATE TEMP TABLE bystander (x int); INSERT INTO bystander VALUES (1)")
        .execute(&mut *bystander)
        .await
        .unwrap();
    let bystander_xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
        .fetch_one(&mut *bystander)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let p1 = insert(&mut conn, "after-bystander", 1).await;
    let read = read_expecting(&log, LogCursor::START, 1).await;
    assert_eq!(
        positions(&read),
        vec![p1],
        "an event committed after a transaction that writes no events ({bystander_xid}) is readable while it is open"
    );

    // An event writer still open holds everything after it.
    let mut writer = pool.begin().await.unwrap();
    insert(&mut writer, "held", 1).await;
    let p3 = insert(&mut conn, "behind-the-writer", 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        positions(&log.read_after(LogCursor::START, 100).await.unwrap()),
        vec![p1],
        "nothing after an open event writer"
    );
    writer.commit().await.unwrap();
    let all = read_expecting(&log, LogCursor::START, 3).await;
    assert_eq!(all.len(), 3);
    assert_eq!(all.last().unwrap().position, p3);
    assert!(
        log.horizon_holder_age().await.unwrap() >= 0.0,
        "the holder's age is measured"
    );

    // Something else written first, events after: refused.
    let mut mixed = pool.begin().await.unwrap();
    sqlx::raw_sql("CREATE TEMP TABLE mixed (x int); INSERT INTO mixed VALUES (1)")
        .execute(&mut *mixed)
        .await
        .unwrap();
    let refused = sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, iccid) \
         VALUES ('test', 'mixed', 1, 'Happened', '1.0', '{}', '{}', '8988303000000000001')",
    )
    .execute(&mut *mixed)
    .await
    .unwrap_err();
    assert!(
        refused.to_string().contains("before it writes anything else"),
        "{refused}"
    );
    mixed.rollback().await.unwrap();
    bystander.rollback().await.unwrap();
}
