//! The durable JetStream consumers of operator requests, one per request event type (NATS 2.9
//! allows one filter subject per consumer: `<prefix>.v1.*.<EventType>`).
//!
//! Messages are handled one at a time per consumer and acknowledged only once the request is
//! settled in the event store; a request that must wait is negatively acknowledged with a
//! delay, so JetStream redelivers it. Several connector instances share the same durable
//! consumers: each request goes to one of them, and `sync_dispatches` keeps two from calling
//! the provider for the same request.

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use eventstore::GlobalLog;
use futures::StreamExt;
use prometheus::IntCounterVec;
use relay::wire;
use tokio::sync::watch;
use uuid::Uuid;

use crate::dispatch::RequestKind;
use crate::requests::{Disposition, Requests};

#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub stream: String,
    pub subject_prefix: String,
    pub name_prefix: String,
    /// Long enough for a provider call with its retries.
    pub ack_wait: Duration,
}

/// Forged requests are counted each; logged at most once per interval.
static FORGED_LOG: platform::telemetry::RateLimitedLog =
    platform::telemetry::RateLimitedLog::new(Duration::from_secs(10));

/// A request message is a wake-up, never a fact: the connector carries out what the store
/// holds at the position the message names, and only when the message is exactly that event
/// (`relay::wire::check`); anything else is counted, logged and acknowledged without effect.
#[derive(Clone)]
pub struct RecordCheck {
    pub log: GlobalLog,
    pub store_id: Uuid,
    pub subject_prefix: String,
    /// `pipeline_forged_messages_total{consumer}`.
    pub forged: IntCounterVec,
}

impl ConsumerSettings {
    pub fn name(&self, kind: RequestKind) -> String {
        format!("{}-{}", self.name_prefix, kind.event_type())
    }

    pub fn filter_subject(&self, kind: RequestKind) -> String {
        format!("{}.v1.*.{}", self.subject_prefix, kind.event_type())
    }
}

/// Consumes `kind`'s requests until `shutdown` turns true.
pub async fn run(
    jetstream: jetstream::Context,
    settings: ConsumerSettings,
    kind: RequestKind,
    requests: Requests,
    check: RecordCheck,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = settings.name(kind);
    // The series exists from the start (at 0), so dashboards and alerts see it.
    check.forged.with_label_values(&[&name]);
    loop {
        let Some(consumer) = consumer(&jetstream, &settings, kind, &mut shutdown).await else {
            return;
        };
        let mut messages = match consumer.stream().max_messages_per_batch(16).messages().await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, consumer = %name, "cannot pull requests; retrying");
                if sleep_or_shutdown(Duration::from_secs(1), &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                next = messages.next() => next,
            };
            match next {
                Some(Ok(message)) => handle(&requests, &check, &name, message).await,
                Some(Err(error)) => {
                    tracing::warn!(%error, consumer = %name, "pull consumer error");
                    // After a reconnect to a server that lost the consumer (a wiped store),
                    // this stream would wait forever: recreate the consumer instead.
                    if matches!(
                        error.kind(),
                        MessagesErrorKind::Pull | MessagesErrorKind::NoResponders
                    ) {
                        break;
                    }
                }
                None => break,
            }
            if *shutdown.borrow() {
                return;
            }
        }
        if sleep_or_shutdown(Duration::from_millis(500), &mut shutdown).await {
            return;
        }
    }
}

async fn handle(requests: &Requests, check: &RecordCheck, consumer: &str, message: jetstream::Message) {
    let claim = wire::Message {
        subject: message.subject.as_str(),
        headers: message.headers.as_ref(),
        payload: &message.payload,
    };
    let stored = match claim.position() {
        Some(position) => match check.log.event_at(position).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(%error, consumer, "cannot read the request's event; will retry");
                let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(5)))).await;
                return;
            }
        },
        None => None,
    };
    let event = match wire::check(&claim, stored.as_ref(), check.store_id, &check.subject_prefix) {
        Ok(()) => stored.expect("checked to match a stored event"),
        Err(mismatch) => {
            if let Some(held_back) = FORGED_LOG.admit() {
                tracing::warn!(subject = %message.subject, consumer, reason = %mismatch, held_back,
                    "request message does not match the stored event it names; acknowledged without \
                     effect (counted in pipeline_forged_messages_total)");
            }
            check.forged.with_label_values(&[consumer]).inc();
            if let Err(error) = message.ack().await {
                tracing::warn!(%error, consumer, "cannot acknowledge a forged request");
            }
            return;
        }
    };
    let ack = match requests.handle(&event).await {
        Ok(Disposition::Done) => AckKind::Ack,
        Ok(Disposition::RetryLater(delay)) => AckKind::Nak(Some(delay)),
        Err(error @ crate::error::SyncError::Decode { .. }) => {
            tracing::error!(%error, position = event.position, consumer, "request cannot be decoded; terminated");
            AckKind::Term
        }
        Err(error) => {
            tracing::warn!(%error, position = event.position, consumer, "request not settled; will retry");
            AckKind::Nak(Some(Duration::from_secs(5)))
        }
    };
    if let Err(error) = message.ack_with(ack).await {
        // Unacknowledged: JetStream redelivers after ack_wait, and the dispatch record makes the
        // repeat harmless.
        tracing::warn!(%error, consumer, "cannot acknowledge a request");
    }
}

/// The durable consumer, created when missing (the stream itself is the relay's); `None` on
/// shutdown.
async fn consumer(
    jetstream: &jetstream::Context,
    settings: &ConsumerSettings,
    kind: RequestKind,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<PullConsumer> {
    let name = settings.name(kind);
    let mut delay = Duration::from_millis(200);
    loop {
        let attempt = async {
            let stream = jetstream
                .get_stream(&settings.stream)
                .await
                .map_err(|e| e.to_string())?;
            stream
                .get_or_create_consumer(&name, consumer_config(settings, kind))
                .await
                .map_err(|e| e.to_string())
        };
        match attempt.await {
            Ok(consumer) => return Some(consumer),
            Err(error) => {
                tracing::warn!(%error, stream = %settings.stream, consumer = %name, "waiting for the stream / consumer");
                if sleep_or_shutdown(delay, shutdown).await {
                    return None;
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The durable consumer of `kind`'s requests (its name and filter are what
/// `deploy/nats/auth.conf` lets the connector's user use).
pub fn consumer_config(settings: &ConsumerSettings, kind: RequestKind) -> pull::Config {
    let name = settings.name(kind);
    pull::Config {
        durable_name: Some(name),
        description: Some(format!(
            "sync connector: {} carried out at 1NCE",
            kind.event_type()
        )),
        deliver_policy: jetstream::consumer::DeliverPolicy::All,
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: settings.ack_wait,
        max_ack_pending: 64,
        filter_subject: settings.filter_subject(kind),
        ..Default::default()
    }
}

/// Sleeps, or returns true early when shutdown is signalled.
pub async fn sleep_or_shutdown(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}
