//! One stream's delivery task: every interval it takes up to a batch of records from the
//! fleet's journal and POSTs them; a batch that is not answered 200 is sent again, unchanged,
//! after a growing delay, and after `retries` failed retries the stream goes FAILED and waits
//! for a reset. Order is kept except where the reorder rate says otherwise.

use std::collections::VecDeque;

use axum::body::Bytes;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::{records, Attempt, StreamConfig, StreamKind};
use crate::fleet::Fleet;
use crate::format::mix;
use crate::Simulator;

struct Batch {
    body: Bytes,
    records: u64,
    /// A full batch was taken: more may wait, so the next one goes without a pause.
    full: bool,
}

/// Runs until aborted (the simulator's `App` aborts it when it stops).
pub(crate) async fn deliver(sim: Simulator, kind: StreamKind) {
    let mut config = sim.config().stream.clone();
    // Rates from code (not read through `validate`) must not make `random_bool` panic.
    config.duplicate_rate = config.duplicate_rate.clamp(0.0, 1.0);
    config.reorder_rate = config.reorder_rate.clamp(0.0, 1.0);
    let (Some(url), Some((user, password))) = (config.url.clone(), config.basic_auth.clone()) else {
        return;
    };
    // 1NCE does not follow redirects: a 3xx is a failed attempt.
    let http = match reqwest::Client::builder()
        .timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(http) => http,
        Err(err) => {
            tracing::error!(error = %err, "the Data Streamer's HTTP client could not be built");
            return;
        }
    };
    let post = |body: Bytes| {
        let request = http
            .post(&url)
            .basic_auth(&user, Some(&password))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        async move {
            match request.send().await {
                Ok(answer) if answer.status().as_u16() == 200 => Ok(()),
                Ok(answer) => {
                    let status = answer.status().as_u16();
                    Err(Attempt {
                        status: Some(status),
                        error: format!("the receiver answered HTTP {status}"),
                    })
                }
                Err(err) => Err(Attempt {
                    status: None,
                    error: format!("no answer from the receiver: {err}"),
                }),
            }
        }
    };
    let streamer = sim.streamer();
    let mut rng = StdRng::seed_from_u64(mix(sim.config().seed ^ kind as u64 ^ 0x5742));
    let mut carry: Vec<Value> = Vec::new();
    let mut batch: Option<Batch> = None;
    let mut failures = 0u32;
    let mut backlog = false;
    loop {
        if streamer.is_failed(kind) {
            streamer.side(kind).reset.notified().await;
            failures = 0;
            continue;
        }
        let Some(current) = &batch else {
            // POSTs go out at intervals while records wait; a backlog (after an outage or a
            // reset) drains batch after batch, as fast as the receiver takes them.
            if !backlog {
                tokio::time::sleep(config.interval).await;
            }
            let queued;
            (batch, queued) = next_batch(&sim, kind, &config, &mut carry, &mut rng);
            backlog = batch.as_ref().is_some_and(|b| b.full);
            let in_flight = batch.as_ref().map_or(0, |b| b.records) + carry.len() as u64;
            streamer.set_in_flight(kind, in_flight, queued);
            continue;
        };
        match post(current.body.clone()).await {
            Ok(()) => {
                streamer.delivered(kind, current.records);
                failures = 0;
                if rng.random_bool(config.duplicate_rate) {
                    // As after an acknowledgement 1NCE did not see: the same batch again.
                    let answer = post(current.body.clone()).await;
                    streamer.duplicated(kind, current.records, answer);
                }
                let queued = queue_figures(&sim.fleet(), kind).0;
                streamer.set_in_flight(kind, carry.len() as u64, queued);
                batch = None;
            }
            Err(attempt) => {
                failures += 1;
                tracing::warn!(stream = kind.name(), failures, error = %attempt.error, "Data Streamer POST failed");
                streamer.attempt_failed(kind, attempt);
                if failures > config.retries {
                    tracing::error!(
                        stream = kind.name(),
                        "Data Streamer stream FAILED: no more deliveries until reset"
                    );
                    streamer.fail(kind);
                } else {
                    tokio::time::sleep(config.backoff(failures)).await;
                }
            }
        }
    }
}

/// The records kept back last time, then the journal's oldest, up to a batch; reordered at
/// the configured rate (`None` when nothing waits); and how many stay in the journal.
fn next_batch(
    sim: &Simulator,
    kind: StreamKind,
    config: &StreamConfig,
    carry: &mut Vec<Value>,
    rng: &mut StdRng,
) -> (Option<Batch>, u64) {
    let mut records = std::mem::take(carry);
    let (queued, dropped) = {
        let mut fleet = sim.fleet();
        let room = config.batch_max.saturating_sub(records.len());
        records.extend(take(&mut fleet, kind, room));
        queue_figures(&fleet, kind)
    };
    sim.streamer().note_dropped(kind, dropped);
    if records.is_empty() {
        return (None, queued);
    }
    let full = records.len() == config.batch_max;
    let mut reordered = false;
    if records.len() > 1 && rng.random_bool(config.reorder_rate) {
        records.shuffle(rng);
        reordered = true;
    }
    if records.len() > 1 && rng.random_bool(config.reorder_rate) {
        // Some records wait for the next batch, behind records that came after them.
        let keep = (records.len() / 10).max(1);
        for _ in 0..keep {
            let i = rng.random_range(0..records.len());
            carry.push(records.remove(i));
        }
        reordered = true;
    }
    if reordered {
        sim.streamer().reordered(kind);
    }
    let body = serde_json::to_vec(&records).unwrap_or_default();
    let batch = Batch {
        body: Bytes::from(body),
        records: records.len() as u64,
        full,
    };
    (Some(batch), queued)
}

/// Up to `room` of the journal's oldest entries of this stream, rendered (a SIM is never
/// removed, so every entry has its SIM).
fn take(fleet: &mut Fleet, kind: StreamKind, room: usize) -> Vec<Value> {
    let mut out = Vec::new();
    match kind {
        StreamKind::Usage => {
            let entries = drain(&mut fleet.journal.usage, room);
            for e in &entries {
                if let Ok(sim) = fleet.sim(e.iccid) {
                    out.push(records::usage(sim, e));
                }
            }
        }
        StreamKind::Events => {
            let entries = drain(&mut fleet.journal.events, room);
            for e in &entries {
                if let Ok(sim) = fleet.sim(e.iccid) {
                    out.push(records::event(sim, e));
                }
            }
        }
    }
    out
}

fn drain<T>(queue: &mut VecDeque<T>, room: usize) -> Vec<T> {
    let n = room.min(queue.len());
    queue.drain(..n).collect()
}

/// Records of this stream in the journal, and dropped from it so far.
pub(crate) fn queue_figures(fleet: &Fleet, kind: StreamKind) -> (u64, u64) {
    let journal = &fleet.journal;
    match kind {
        StreamKind::Usage => (journal.usage.len() as u64, journal.dropped_usage),
        StreamKind::Events => (journal.events.len() as u64, journal.dropped_events),
    }
}
