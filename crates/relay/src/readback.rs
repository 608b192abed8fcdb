//! Reading the stream back to compare it with the store: its state, its messages by sequence,
//! and each message beside the stored event it names. The relay's sync and the operator's
//! `verify` ([`crate::admin`]) both read it so.

use std::collections::HashMap;

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{self, RawMessageErrorKind};
use eventstore::StoredEvent;
use uuid::Uuid;

use crate::error::RelayError;
use crate::wire;

/// The stream's state as the server reports it now (message count, first and last sequence).
pub(crate) async fn state(stream: &mut stream::Stream) -> Result<stream::State, RelayError> {
    Ok(stream
        .info()
        .await
        .map_err(|e| RelayError::stream("stream info", e))?
        .state
        .clone())
}

/// The message at `sequence`; `None` when that sequence was deleted.
pub(crate) async fn message_at(
    stream: &stream::Stream,
    sequence: u64,
) -> Result<Option<StreamMessage>, RelayError> {
    match stream.get_raw_message(sequence).await {
        Ok(message) => Ok(Some(message)),
        Err(error) if error.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
        Err(error) => Err(RelayError::stream("message get", error)),
    }
}

/// The stream's last message, stepping back over deleted sequences; `None` when it holds none.
/// With `probe_limit`, gives up ([`RelayError::TailNotFound`]) after probing that many
/// sequences.
pub(crate) async fn last_message(
    stream: &stream::Stream,
    state: &stream::State,
    probe_limit: Option<u64>,
) -> Result<Option<StreamMessage>, RelayError> {
    if state.messages == 0 {
        return Ok(None);
    }
    let mut sequence = state.last_sequence;
    let mut probed = 0;
    while sequence >= state.first_sequence.max(1) {
        if probe_limit == Some(probed) {
            return Err(RelayError::TailNotFound {
                stream: stream.cached_info().config.name.clone(),
                probed,
            });
        }
        probed += 1;
        if let Some(message) = message_at(stream, sequence).await? {
            return Ok(Some(message));
        }
        sequence -= 1;
    }
    Ok(None)
}

/// The positions the messages name (see [`wire::Message::position`]), to look their events up
/// in one query.
pub(crate) fn named_positions(messages: &[StreamMessage]) -> Vec<i64> {
    messages
        .iter()
        .filter_map(|message| wire::Message::stored(message).position())
        .collect()
}

/// Events as looked up, by position.
pub(crate) fn by_position(events: Vec<StoredEvent>) -> HashMap<i64, StoredEvent> {
    events.into_iter().map(|event| (event.position, event)).collect()
}

/// The stored event at the position `message` names (from `stored`, the events looked up by
/// position), and whether the message is exactly that event ([`wire::check`]).
pub(crate) fn check<'a>(
    message: &StreamMessage,
    stored: &'a HashMap<i64, StoredEvent>,
    store_id: Uuid,
    subject_prefix: &str,
) -> (Option<&'a StoredEvent>, Result<(), wire::Mismatch>) {
    let claim = wire::Message::stored(message);
    let event = claim.position().and_then(|position| stored.get(&position));
    (event, wire::check(&claim, event, store_id, subject_prefix))
}
