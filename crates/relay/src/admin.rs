//! The operator's way out when the stream does not match the store (`projectors relay verify`,
//! `projectors relay reset-stream`; docs/relay.md).

use std::collections::HashSet;

use eventstore::{GlobalLog, LogCursor};
use serde::Serialize;
use sqlx::PgPool;

use crate::config::RelayConfig;
use crate::error::RelayError;
use crate::readback;
use crate::wire::{self, message_id};

/// Messages whose details a report lists (the counts cover all of them).
const LISTED: usize = 20;
/// Positions looked up in the store per query during a full check.
const LOOKUP_BATCH: usize = 500;

/// What `projectors relay verify` found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VerifyReport {
    pub stream: String,
    pub stream_exists: bool,
    pub stream_messages: u64,
    pub first_sequence: u64,
    pub last_sequence: u64,
    /// The stream's last message is an event of this store (what the relay checks).
    pub tail_matches: bool,
    pub tail_problem: Option<String>,
    /// With `--full`: every message compared with the store.
    pub full: Option<FullCheck>,
}

impl VerifyReport {
    /// Whether the relay can publish into this stream as it is (and, with `--full`, whether
    /// the stream equals the store).
    pub fn ok(&self) -> bool {
        self.tail_matches && self.full.as_ref().is_none_or(FullCheck::ok)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct FullCheck {
    pub messages_checked: u64,
    pub matching: u64,
    pub mismatching: u64,
    /// Stream sequences of mismatching messages, and why (the first few).
    pub mismatches: Vec<(u64, String)>,
    /// Messages carrying an event already seen earlier in the stream.
    pub duplicates: u64,
    /// Messages whose event comes before the previous message's in the global order.
    pub out_of_order: u64,
    /// Events of the store, up to the last one in the stream, that the stream lacks.
    pub missing_from_stream: u64,
    pub missing_positions: Vec<i64>,
}

impl FullCheck {
    pub fn ok(&self) -> bool {
        self.mismatching == 0
            && self.duplicates == 0
            && self.out_of_order == 0
            && self.missing_from_stream == 0
    }
}

/// Compares the stream with the store: its tail (as the relay does), and with `full` every
/// message, in stream order.
pub async fn verify(
    pool: &PgPool,
    client: async_nats::Client,
    config: &RelayConfig,
    full: bool,
) -> Result<VerifyReport, RelayError> {
    let jetstream = async_nats::jetstream::new(client);
    let log = GlobalLog::new(pool.clone());
    let store_id = log.store_id().await?;
    let mut report = VerifyReport {
        stream: config.stream.clone(),
        stream_exists: false,
        stream_messages: 0,
        first_sequence: 0,
        last_sequence: 0,
        tail_matches: true,
        tail_problem: None,
        full: None,
    };
    let mut stream = match jetstream.get_stream(&config.stream).await {
        Ok(stream) => stream,
        // No stream: the relay creates it and publishes the store into it.
        Err(_) => return Ok(report),
    };
    let state = readback::state(&mut stream).await?;
    report.stream_exists = true;
    report.stream_messages = state.messages;
    report.first_sequence = state.first_sequence;
    report.last_sequence = state.last_sequence;
    if state.messages == 0 {
        return Ok(report);
    }

    // The tail, as the relay checks it.
    if let Some(message) = readback::last_message(&stream, &state, None).await? {
        let claim = wire::Message::stored(&message);
        let stored = match claim.position() {
            Some(position) => log.event_at(position).await?,
            None => None,
        };
        if let Err(reason) = wire::check(&claim, stored.as_ref(), store_id, &config.subject_prefix) {
            report.tail_matches = false;
            report.tail_problem = Some(format!(
                "the message at stream sequence {} {reason}",
                message.sequence
            ));
        }
    }
    if !full {
        return Ok(report);
    }

    // Every message, in stream order, a chunk at a time (only the ids seen stay in memory).
    let mut check = FullCheck::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut previous: Option<LogCursor> = None;
    let mut next = state.first_sequence.max(1);
    while next <= state.last_sequence {
        let mut chunk = Vec::with_capacity(LOOKUP_BATCH);
        while chunk.len() < LOOKUP_BATCH && next <= state.last_sequence {
            chunk.extend(readback::message_at(&stream, next).await?);
            next += 1;
        }
        let stored = readback::by_position(log.events_at(&readback::named_positions(&chunk)).await?);
        for message in &chunk {
            check.messages_checked += 1;
            match readback::check(message, &stored, store_id, &config.subject_prefix) {
                (Some(event), Ok(())) => {
                    check.matching += 1;
                    let cursor = LogCursor::after(event);
                    if !seen.insert(message_id(event)) {
                        check.duplicates += 1;
                    }
                    if previous.is_some_and(|p| cursor <= p) {
                        check.out_of_order += 1;
                    }
                    previous = Some(cursor);
                }
                (_, outcome) => {
                    check.mismatching += 1;
                    if check.mismatches.len() < LISTED {
                        let reason = outcome.err().map(|r| r.to_string()).unwrap_or_default();
                        check.mismatches.push((message.sequence, reason));
                    }
                }
            }
        }
    }
    if let Some(last_matching) = previous {
        count_missing(&log, &seen, last_matching, &mut check).await?;
    }
    report.full = Some(check);
    Ok(report)
}

/// Store events up to `last` (the stream's last event) that no message carried. Only
/// meaningful for a stream that starts at the log's start (no retention limits: the relay
/// creates it so).
async fn count_missing(
    log: &GlobalLog,
    seen: &HashSet<String>,
    last: LogCursor,
    check: &mut FullCheck,
) -> Result<(), RelayError> {
    let mut cursor = LogCursor::START;
    loop {
        let events = log.read_range(cursor, last, LOOKUP_BATCH as i64).await?;
        let Some(tail) = events.last() else {
            return Ok(());
        };
        cursor = LogCursor::after(tail);
        for event in &events {
            if !seen.contains(&message_id(event)) {
                check.missing_from_stream += 1;
                if check.missing_positions.len() < LISTED {
                    check.missing_positions.push(event.position);
                }
            }
        }
    }
}

/// What `projectors relay reset-stream` did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResetReport {
    pub stream: String,
    /// Messages in the stream that was deleted (`None`: there was none).
    pub deleted_messages: Option<u64>,
    /// The store's events, all of which the active relay now publishes again, in order.
    pub events_to_republish: i64,
}

/// Deletes the stream (its messages, its consumers and the memory of its message ids),
/// forgets the relay's checkpoint and creates the stream afresh: the active relay then
/// publishes the store's whole log into it, from the start. Downstream consumers of the old
/// stream are gone with it and must be created again (docs/relay.md).
pub async fn reset_stream(
    pool: &PgPool,
    client: async_nats::Client,
    config: &RelayConfig,
) -> Result<ResetReport, RelayError> {
    let jetstream = async_nats::jetstream::new(client);
    let deleted_messages = match jetstream.get_stream(&config.stream).await {
        Ok(mut stream) => {
            let messages = readback::state(&mut stream).await?.messages;
            jetstream
                .delete_stream(&config.stream)
                .await
                .map_err(|e| RelayError::stream("stream delete", e))?;
            Some(messages)
        }
        Err(_) => None,
    };
    sqlx::query("DELETE FROM relay_checkpoints WHERE stream = $1")
        .bind(&config.stream)
        .execute(pool)
        .await?;
    jetstream
        .get_or_create_stream(config.stream_config())
        .await
        .map_err(|e| RelayError::stream("stream create", e))?;
    let events_to_republish = GlobalLog::new(pool.clone()).count().await?;
    tracing::warn!(stream = %config.stream, ?deleted_messages, events_to_republish,
        "stream reset: the active relay republishes the event store from the start");
    Ok(ResetReport {
        stream: config.stream.clone(),
        deleted_messages,
        events_to_republish,
    })
}
