//! One batch of the log onto the stream: pipelined publishes, each expecting the stream's last
//! sequence (and its predecessor's message id), confirmed in order.

use std::collections::VecDeque;

use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::stream::RawMessageErrorKind;
use async_nats::HeaderMap;
use eventstore::{LogCursor, StoredEvent};

use crate::error::RelayError;
use crate::relay::Relay;
use crate::wire::{
    self, message_id, HEADER_EXPECTED_LAST_MSG_ID, HEADER_EXPECTED_LAST_SEQUENCE, HEADER_EXPECTED_STREAM,
    HEADER_MSG_ID, HEADER_POSITION, HEADER_STORE_ID, HEADER_TRANSACTION_ID,
};

/// What became of a batch.
pub(crate) struct Published {
    /// Leading events of the batch that the stream holds now (stored, or already there).
    pub acked: usize,
    /// Of them, newly stored by this batch.
    pub stored: usize,
    /// The stream's last sequence after the newly stored ones.
    pub last_sequence: u64,
    /// The stream already held an event of the batch: its numbering is not what this relay
    /// assumed, so look at it again before the next batch (quietly: nothing went wrong).
    pub resync: bool,
    pub failure: Option<RelayError>,
}

/// How one acknowledgement was taken.
enum Confirmed {
    Stored,
    /// A duplicate acknowledgement for this very event (same id, position, transaction and
    /// body at the sequence JetStream named): it is in the stream, which is all that counts.
    AlreadyThere,
}

impl Relay {
    /// Publishes `batch` with up to `max_in_flight` acknowledgements outstanding.
    ///
    /// The k-th message expects the stream's last sequence to be `last_sequence + k`, and
    /// (from the second on) the stream's last message id to be its predecessor's. The sequence
    /// alone is not enough with several in flight: after a refusal, a later message can match
    /// again when exactly that many foreign messages were appended, and would be stored with a
    /// gap before it. The id chain makes every stored message follow its predecessor, so the
    /// stream always holds a prefix of the batch.
    pub(crate) async fn publish_batch(&self, batch: &[StoredEvent], last_sequence: u64) -> Published {
        let mut outcome = Published {
            acked: 0,
            stored: 0,
            last_sequence,
            resync: false,
            failure: None,
        };
        let mut in_flight: VecDeque<(usize, PublishAckFuture)> = VecDeque::new();
        let mut sent = 0;
        while outcome.failure.is_none() && (sent < batch.len() || !in_flight.is_empty()) {
            if sent < batch.len() && in_flight.len() < self.config.max_in_flight {
                let previous = sent.checked_sub(1).map(|i| &batch[i]);
                match self
                    .send(&batch[sent], previous, last_sequence + sent as u64)
                    .await
                {
                    Ok(ack) => in_flight.push_back((sent, ack)),
                    // What is already in flight may still be stored; only acknowledged events
                    // count, the next sync finds the rest in the stream.
                    Err(error) => outcome.failure = Some(error),
                }
                sent += 1;
                continue;
            }
            let Some((index, ack)) = in_flight.pop_front() else {
                break;
            };
            let expected = last_sequence + index as u64;
            match self.confirm(&batch[index], expected, ack.await).await {
                // `confirm` checked the sequence: the stream grew exactly as numbered.
                Ok(Confirmed::Stored) => {
                    outcome.acked += 1;
                    outcome.stored += 1;
                    outcome.last_sequence = expected + 1;
                }
                Ok(Confirmed::AlreadyThere) => {
                    self.metrics.republished_duplicates.inc();
                    outcome.acked += 1;
                    outcome.resync = true;
                }
                // After an event the stream already held, the numbering the rest was sent with
                // may be off: their refusals are expected, and the re-sync sorts them out.
                Err(RelayError::StaleSequence { .. }) if outcome.resync => break,
                Err(error) => outcome.failure = Some(error),
            }
        }
        outcome
    }

    async fn send(
        &self,
        event: &StoredEvent,
        previous: Option<&StoredEvent>,
        expected_last_sequence: u64,
    ) -> Result<PublishAckFuture, RelayError> {
        let subject = self
            .config
            .subject(&event.iccid, &event.event_type)
            .ok_or_else(|| RelayError::InvalidSubject {
                position: event.position,
                iccid: event.iccid.clone(),
                event_type: event.event_type.clone(),
            })?;
        let cursor = LogCursor::after(event);
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_MSG_ID, message_id(event).as_str());
        headers.insert(HEADER_EXPECTED_STREAM, self.config.stream.as_str());
        headers.insert(
            HEADER_EXPECTED_LAST_SEQUENCE,
            expected_last_sequence.to_string().as_str(),
        );
        // Not on a batch's first message: after a server restart the stream's last id may be
        // unknown to it (older than the duplicate window), and the sequence, fresh from the
        // sync, is enough there.
        if let Some(previous) = previous {
            headers.insert(HEADER_EXPECTED_LAST_MSG_ID, message_id(previous).as_str());
        }
        headers.insert(HEADER_POSITION, cursor.position.to_string().as_str());
        headers.insert(HEADER_TRANSACTION_ID, cursor.transaction_id.to_string().as_str());
        if let Some(store_id) = self.store_id {
            headers.insert(HEADER_STORE_ID, store_id.to_string().as_str());
        }
        let body = serde_json::to_vec(event)?;
        Ok(self
            .jetstream
            .publish_with_headers(subject, headers, body.into())
            .await?)
    }

    /// Checks that the acknowledgement is for a new message at exactly the expected sequence,
    /// or for this very event, already in the stream.
    async fn confirm(
        &self,
        event: &StoredEvent,
        expected_last: u64,
        ack: Result<PublishAck, PublishError>,
    ) -> Result<Confirmed, RelayError> {
        let ack = match ack {
            Ok(ack) => ack,
            Err(error)
                if matches!(
                    error.kind(),
                    PublishErrorKind::WrongLastSequence | PublishErrorKind::WrongLastMessageId
                ) =>
            {
                return Err(RelayError::StaleSequence {
                    stream: self.config.stream.clone(),
                    expected: expected_last,
                    source: error,
                })
            }
            Err(error) => return Err(error.into()),
        };
        if ack.duplicate {
            return self.classify_duplicate(event, ack.sequence).await;
        }
        if ack.stream != self.config.stream || ack.sequence != expected_last + 1 {
            return Err(RelayError::UnexpectedAck {
                stream: ack.stream,
                sequence: ack.sequence,
                expected_stream: self.config.stream.clone(),
                expected: expected_last + 1,
            });
        }
        Ok(Confirmed::Stored)
    }

    /// A duplicate acknowledgement names the sequence of the message with the same id:
    /// - this very event: success (it is in the stream);
    /// - another message with this event's id: the stream is not this store's;
    /// - nothing there (deleted, purged) while JetStream still remembers the id: the event
    ///   cannot be republished before the duplicate window has passed.
    async fn classify_duplicate(&self, event: &StoredEvent, sequence: u64) -> Result<Confirmed, RelayError> {
        let msg_id = message_id(event);
        let stream = match self.jetstream.get_stream_no_info(&self.config.stream).await {
            Ok(stream) => stream,
            // Unknown: the next sync looks at the stream again.
            Err(_) => return Err(RelayError::Duplicate { msg_id, sequence }),
        };
        match stream.get_raw_message(sequence).await {
            Ok(message) => {
                let claim = wire::Message::stored(&message);
                let store_id = self.store_id.unwrap_or_default();
                match wire::check(&claim, Some(event), store_id, &self.config.subject_prefix) {
                    Ok(()) => Ok(Confirmed::AlreadyThere),
                    Err(reason) => Err(RelayError::StreamMismatch {
                        stream: self.config.stream.clone(),
                        sequence,
                        reason,
                    }),
                }
            }
            Err(error) if error.kind() == RawMessageErrorKind::NoMessageFound => {
                tracing::error!(
                    stream = %self.config.stream,
                    %msg_id,
                    sequence,
                    "JetStream lost a message whose id it still remembers; it will be republished \
                     once the duplicate window has passed"
                );
                Err(RelayError::ForgottenDuplicate { msg_id, sequence })
            }
            Err(_) => Err(RelayError::Duplicate { msg_id, sequence }),
        }
    }
}
