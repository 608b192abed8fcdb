//! Where publishing stands: the stream's last message, checked against the store, and the
//! checkpoint. Run at start, after every reconnect and after every refused publish.

use async_nats::jetstream::stream;
use eventstore::LogCursor;

use crate::checkpoint::Checkpoint;
use crate::error::RelayError;
use crate::lock::timed;
use crate::readback;
use crate::relay::{Position, Relay, READINESS_FLAG};
use crate::wire;

/// How far back from the stream's end the relay looks past deleted sequences for the last
/// message.
const TAIL_PROBE_LIMIT: u64 = 10_000;
/// At most this many messages since the checkpoint are checked against the store at a sync.
const VERIFY_LIMIT: u64 = 1_000;

impl Relay {
    /// Finds where publishing stands. The stream's last message must be an event of this
    /// store (same store, position, transaction, id, subject and body); otherwise the stream
    /// is another database's, or holds a forged or foreign message, and the relay refuses to
    /// publish into it ([`RelayError::StreamMismatch`]). Then, against the checkpoint:
    /// - stream behind the checkpoint: JetStream lost acknowledged messages (its fsync is lazy);
    ///   rewind to the stream's last message (or the start) and republish the rest;
    /// - stream ahead: a relay published and died before its checkpoint commit; move forward,
    ///   so nothing is published twice.
    pub(crate) async fn sync(&mut self, connects: u64) -> Result<Position, RelayError> {
        let mut stream = self.ensure_stream().await?;
        let state = readback::state(&mut stream).await?;
        self.store_id().await?;
        let checkpoint = self.read_checkpoint().await?;
        let tail = match self.verify_since(&stream, &state, checkpoint).await {
            Ok(tail) => tail,
            Err(RelayError::StreamMismatch { sequence, reason, .. }) => {
                return Err(self.enter_mismatch(sequence, reason));
            }
            Err(error) => return Err(error),
        };
        self.leave_mismatch();
        let stream_name = &self.config.stream;
        let cursor = match (checkpoint, tail) {
            (None, tail) => tail.unwrap_or(LogCursor::START),
            (Some(checkpoint), Some(tail)) if tail >= checkpoint.cursor => {
                if tail > checkpoint.cursor {
                    tracing::info!(stream = %stream_name, ?tail, checkpoint = ?checkpoint.cursor,
                        "stream is ahead of the checkpoint; continuing after the stream's last message");
                }
                tail
            }
            (Some(checkpoint), tail) => {
                let target = tail.unwrap_or(LogCursor::START);
                if self.last_rewind != Some((checkpoint.cursor, target)) {
                    self.metrics.rewinds.inc();
                    self.last_rewind = Some((checkpoint.cursor, target));
                }
                tracing::warn!(stream = %stream_name, checkpoint = ?checkpoint.cursor, ?target,
                    stream_messages = state.messages,
                    "stream holds less than was acknowledged; republishing from its last message");
                target
            }
        };
        tracing::debug!(stream = %stream_name, ?cursor, last_sequence = state.last_sequence, "synced with the stream");
        Ok(Position {
            cursor,
            last_sequence: state.last_sequence,
            connects,
        })
    }

    /// Checks every message the stream got since this relay's checkpoint (at most
    /// [`VERIFY_LIMIT`], the newest), or only its last one without a usable checkpoint, against
    /// the store, and returns the cursor of the last one. Not only the tail: after a refused
    /// publish, messages that were already in flight may have been stored behind a foreign
    /// one whose id they follow.
    async fn verify_since(
        &self,
        stream: &stream::Stream,
        state: &stream::State,
        checkpoint: Option<Checkpoint>,
    ) -> Result<Option<LogCursor>, RelayError> {
        let Some(tail) = readback::last_message(stream, state, Some(TAIL_PROBE_LIMIT)).await? else {
            return Ok(None);
        };
        let known_good = checkpoint
            .map(|c| c.stream_sequence)
            .filter(|&s| s >= state.first_sequence && s < tail.sequence);
        let mut messages = Vec::new();
        if let Some(known_good) = known_good {
            let from = (known_good + 1).max(tail.sequence.saturating_sub(VERIFY_LIMIT - 1));
            for sequence in from..tail.sequence {
                messages.extend(readback::message_at(stream, sequence).await?);
            }
        }
        messages.push(tail);
        let store_id = self.store_id.unwrap_or_default();
        let positions = readback::named_positions(&messages);
        let stored = readback::by_position(
            timed(
                self.config.query_timeout,
                "event lookup",
                self.log.events_at(&positions),
            )
            .await?,
        );
        let mut last = None;
        for message in &messages {
            let (event, matches) = readback::check(message, &stored, store_id, &self.config.subject_prefix);
            if let Err(reason) = matches {
                return Err(RelayError::StreamMismatch {
                    stream: self.config.stream.clone(),
                    sequence: message.sequence,
                    reason,
                });
            }
            last = event.map(LogCursor::after);
        }
        Ok(last)
    }

    /// Stops publishing, loudly once: the error log names the stream sequence and the way out,
    /// `relay_stream_mismatch` is 1, `/ready` answers 503 with the reason.
    pub(crate) fn enter_mismatch(&mut self, sequence: u64, reason: wire::Mismatch) -> RelayError {
        let error = RelayError::StreamMismatch {
            stream: self.config.stream.clone(),
            sequence,
            reason,
        };
        let described = format!(
            "{error}. The relay publishes nothing until this is resolved. If another platform \
             publishes to this stream, give each its own stream (NATS_STREAM, \
             NATS_SUBJECT_PREFIX) or NATS account; if the stream is from another database or the \
             store was restored from a backup, `projectors relay reset-stream` republishes this \
             store's events into a fresh stream (see docs/relay.md)"
        );
        if self.mismatch.as_deref() != Some(described.as_str()) {
            tracing::error!(stream = %self.config.stream, stream_sequence = sequence, "{described}");
        }
        self.metrics.stream_mismatch.set(1);
        if let Some(flags) = &self.readiness {
            flags.set(READINESS_FLAG, described.clone());
        }
        self.mismatch = Some(described);
        self.position = None;
        error
    }

    pub(crate) fn leave_mismatch(&mut self) {
        if self.mismatch.take().is_some() {
            tracing::info!(stream = %self.config.stream, "the stream matches the event store again; publishing resumes");
        }
        self.metrics.stream_mismatch.set(0);
        if let Some(flags) = &self.readiness {
            flags.clear(READINESS_FLAG);
        }
    }

    /// The stream, created when missing (file storage, the configured duplicate window); an
    /// existing stream is used as it is.
    pub async fn ensure_stream(&self) -> Result<stream::Stream, RelayError> {
        self.jetstream
            .get_or_create_stream(self.config.stream_config())
            .await
            .map_err(|e| RelayError::stream("stream create", e))
    }
}
