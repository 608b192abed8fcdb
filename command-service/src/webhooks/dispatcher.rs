//! The webhook dispatcher: a task of the command API (started by `App::run_until_stopped`,
//! stopped with it, like the bulk worker) that claims due subscriptions under a lease, reads
//! the global log after each one's cursor in order, and POSTs each event its filter matches.
//! The cursor moves past an event only after a 2xx (at least once, in order per subscription);
//! a failure stops that subscription until its backoff is over, and after
//! `WEBHOOK_MAX_ATTEMPTS` marks it `failing`. Replicas each run one: the leases keep two from
//! sending for one subscription at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use eventstore::{EventStore, GlobalLog, LogCursor, StoredEvent};
use reqwest::Client;
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;
use webhooks::{signature, Claimed, Webhooks};

use super::{target, WebhookSettings};

/// Subscriptions claimed at a time.
const CLAIM: i64 = 16;

pub struct Dispatcher {
    hooks: Webhooks,
    log: GlobalLog,
    store: EventStore,
    id: Uuid,
    settings: WebhookSettings,
    client: Client,
    deliveries_total: prometheus::IntCounterVec,
}

/// How one attempt ended.
enum Attempt {
    /// A 2xx, with its status; `moved`: the cursor moved past it (false: the lease was lost).
    Delivered {
        status: i32,
        moved: bool,
    },
    Failed {
        status: Option<i32>,
        reason: String,
    },
}

/// The dispatcher's HTTP client: it connects only to addresses `resolver` checked (the DNS
/// answer that was checked is the one used: no rebinding between check and connect).
pub fn client(settings: &WebhookSettings, resolver: target::Resolver) -> Result<Client, reqwest::Error> {
    Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .dns_resolver(Arc::new(resolver))
        // A proxy would resolve the name itself, out of the check's reach.
        .no_proxy()
        // A redirect could lead to an internal address the target check refused.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("sim-platform-webhooks/1")
        .build()
}

impl Dispatcher {
    pub fn new(
        pool: sqlx::PgPool,
        settings: WebhookSettings,
        deliveries_total: prometheus::IntCounterVec,
    ) -> Result<Self, reqwest::Error> {
        let client = client(&settings, target::Resolver::system(settings.allow_private))?;
        Ok(Self {
            hooks: Webhooks::new(pool.clone()),
            store: EventStore::new(pool.clone()),
            log: GlobalLog::new(pool),
            id: Uuid::now_v7(),
            settings,
            client,
            deliveries_total,
        })
    }

    /// Runs until `stop` says so (or its sender is gone), then gives back its leases.
    ///
    /// Each claimed subscription is delivered by a task of its own, and the loop claims more
    /// while those run: a receiver that hangs until the timeout holds back its own
    /// subscription only, never the others' deliveries or retries.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(dispatcher = %self.id, "webhook dispatcher started");
        let this = Arc::new(self);
        let mut in_flight: JoinSet<bool> = JoinSet::new();
        // The subscription each delivery task is at.
        let mut busy: HashMap<tokio::task::Id, Uuid> = HashMap::new();
        // A subscription came back with more waiting: claim again at once.
        let mut again = false;
        while !stopping(&stop) {
            let free = CLAIM - busy.len() as i64;
            let mut wait = this.settings.poll;
            if free > 0 {
                let busy_ids: Vec<Uuid> = busy.values().copied().collect();
                match this
                    .hooks
                    .claim(this.id, free, this.settings.lease, &busy_ids)
                    .await
                {
                    Ok(claimed) => {
                        for subscription in claimed {
                            let id = subscription.id;
                            let (this, stop) = (this.clone(), stop.clone());
                            let task =
                                in_flight.spawn(async move { this.deliver(subscription, &stop).await });
                            busy.insert(task.id(), id);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "webhook dispatcher cannot claim subscriptions; trying again");
                        wait = this.settings.poll.max(Duration::from_secs(1));
                    }
                }
            }
            if std::mem::take(&mut again) {
                wait = Duration::ZERO;
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(wait) => {}
                Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                    match done {
                        Ok((task, behind)) => {
                            busy.remove(&task);
                            // A backlog is drained without pausing between batches.
                            again |= behind;
                        }
                        Err(error) => {
                            let subscription = busy.remove(&error.id());
                            tracing::error!(%error, ?subscription, "a webhook delivery task ended abnormally");
                        }
                    }
                }
            }
        }
        // Deliveries see the stop between events; let them finish the one they are at.
        while let Some(done) = in_flight.join_next().await {
            if let Err(error) = done {
                tracing::error!(%error, "a webhook delivery task ended abnormally");
            }
        }
        match this.hooks.release(this.id).await {
            Ok(released) => tracing::info!(dispatcher = %this.id, released, "webhook dispatcher stopped"),
            Err(error) => {
                tracing::warn!(%error, "webhook dispatcher stopped; its leases run out by themselves")
            }
        }
    }

    /// Delivers the events after the subscription's cursor, in order, until one fails, the
    /// batch ends, or the lease is lost. True when a whole batch went through (more may wait).
    async fn deliver(&self, subscription: Claimed, stop: &watch::Receiver<bool>) -> bool {
        let cursor = LogCursor {
            transaction_id: subscription.cursor_transaction_id as u64,
            position: subscription.cursor_position,
        };
        let events = match self.log.read_after(cursor, self.settings.batch).await {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(%error, subscription = %subscription.id, "cannot read the log for a webhook");
                return false;
            }
        };
        // Events the filter skips since the last cursor write: written with the next delivery,
        // before a failure, or at the end.
        let mut skipped: Option<LogCursor> = None;
        for event in &events {
            if stopping(stop) {
                break;
            }
            match self.wanted(&subscription, event).await {
                Ok(true) => {}
                Ok(false) => {
                    skipped = Some(LogCursor::after(event));
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, subscription = %subscription.id, "cannot read a SIM's tags for a webhook");
                    if let Some(cursor) = skipped {
                        self.advance(&subscription, cursor).await;
                    }
                    return false;
                }
            }
            match self.attempt(&subscription, event).await {
                Ok(Attempt::Delivered { moved, .. }) => {
                    skipped = None;
                    if !moved {
                        return false;
                    }
                }
                Ok(Attempt::Failed { status, reason }) => {
                    if let Some(cursor) = skipped {
                        self.advance(&subscription, cursor).await;
                    }
                    let attempts = subscription.attempts + 1;
                    let backoff = self.settings.backoff_after(attempts);
                    tracing::info!(subscription = %subscription.id, position = event.position, ?status, %reason, attempts, "webhook delivery failed");
                    match self
                        .hooks
                        .failed(
                            self.id,
                            subscription.id,
                            backoff,
                            self.settings.max_attempts,
                            &reason,
                        )
                        .await
                    {
                        Ok(true) => {
                            tracing::warn!(subscription = %subscription.id, %reason, "webhook subscription failing")
                        }
                        Ok(false) => {}
                        Err(error) => tracing::warn!(%error, "cannot record a failed webhook attempt"),
                    }
                    return false;
                }
                Err(error) => {
                    tracing::warn!(%error, subscription = %subscription.id, "cannot record a webhook delivery; trying again");
                    return false;
                }
            }
        }
        if let Some(cursor) = skipped {
            self.advance(&subscription, cursor).await;
        }
        !stopping(stop) && events.len() as i64 >= self.settings.batch
    }

    /// Whether the subscription delivers `event`: a rule's request naming it, or an event its
    /// type filter and tag filter (the tags the SIM had at the event) both match.
    async fn wanted(
        &self,
        subscription: &Claimed,
        event: &StoredEvent,
    ) -> Result<bool, eventstore::StoreError> {
        if event.aggregate_type == "rule"
            && event.event_type == webhooks::RULE_WEBHOOK_REQUESTED
            && event.payload.get("webhook_id").and_then(|id| id.as_str())
                == Some(subscription.id.to_string().as_str())
        {
            return Ok(true);
        }
        if !webhooks::matches(&subscription.event_types, &event.event_type) {
            return Ok(false);
        }
        match &subscription.tag {
            None => Ok(true),
            Some(tag) => Ok(crate::rules::tags_at(&self.store, event).await?.contains(tag)),
        }
    }

    async fn advance(&self, subscription: &Claimed, cursor: LogCursor) -> bool {
        let to = (cursor.transaction_id, cursor.position);
        match self
            .hooks
            .advance(self.id, subscription.id, to, self.settings.lease)
            .await
        {
            Ok(moved) => moved,
            Err(error) => {
                tracing::warn!(%error, subscription = %subscription.id, "cannot move a webhook cursor");
                false
            }
        }
    }

    /// One POST of `event`, recorded in the delivery log; a delivered one also moves the
    /// cursor past it (one statement).
    async fn attempt(&self, subscription: &Claimed, event: &StoredEvent) -> Result<Attempt, sqlx::Error> {
        let event_id = relay::wire::message_id(event);
        let delivery = self
            .hooks
            .delivery_id(subscription.id, event.position, &event_id, &event.event_type)
            .await?;
        let attempt = self.send(subscription, event, &event_id, delivery).await;
        match attempt {
            Attempt::Delivered { status, .. } => {
                self.deliveries_total.with_label_values(&["delivered"]).inc();
                let after = LogCursor::after(event);
                let moved = self
                    .hooks
                    .delivered(
                        self.id,
                        subscription.id,
                        delivery,
                        status,
                        (after.transaction_id, after.position),
                        self.settings.lease,
                    )
                    .await?;
                Ok(Attempt::Delivered { status, moved })
            }
            Attempt::Failed { status, reason } => {
                self.deliveries_total.with_label_values(&["failed"]).inc();
                self.hooks
                    .record_attempt(self.id, delivery, status, Some(&reason), false)
                    .await?;
                Ok(Attempt::Failed { status, reason })
            }
        }
    }

    async fn send(
        &self,
        subscription: &Claimed,
        event: &StoredEvent,
        event_id: &str,
        delivery: Uuid,
    ) -> Attempt {
        let failed = |status: Option<i32>, reason: String| Attempt::Failed { status, reason };
        // A literal IP is checked here; a name by the client's resolver when it connects.
        let url = match target::check_literal(&subscription.url, self.settings.allow_private) {
            Ok(url) => url,
            Err((code, message)) => return failed(None, format!("{code}: {message}")),
        };
        // The same JSON as the NATS message body and an item of GET /events.
        let body = match serde_json::to_vec(event) {
            Ok(body) => body,
            Err(error) => return failed(None, format!("cannot encode the event: {error}")),
        };
        let now = chrono::Utc::now().timestamp();
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header(
                "x-signature",
                signature::signature_header(&subscription.secret, now, &body),
            )
            .header(
                "x-sim-signature",
                signature::body_signature_header(&subscription.secret, &body),
            )
            .header("x-sim-timestamp", now.to_string())
            .header("x-sim-event-id", event_id)
            .header("x-sim-event-type", &event.event_type)
            .header("x-sim-delivery", delivery.to_string())
            .body(body)
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => Attempt::Delivered {
                status: i32::from(response.status().as_u16()),
                moved: false,
            },
            Ok(response) => {
                let status = response.status();
                failed(
                    Some(i32::from(status.as_u16())),
                    format!("the receiver answered {status}"),
                )
            }
            Err(error) if error.is_timeout() => failed(
                None,
                format!("no answer within {} ms", self.settings.timeout.as_millis()),
            ),
            Err(error) => match target::refusal_in(&error) {
                Some(refused) => failed(None, refused.to_string()),
                None => failed(None, format!("cannot reach the receiver: {error}")),
            },
        }
    }
}

fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}
