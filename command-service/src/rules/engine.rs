//! The rule engine: a task of the command API (like the bulk worker and the webhook
//! dispatcher) that holds one lease over all replicas, reads the global log after its cursor,
//! and for each event fires every enabled rule whose trigger matches. Exactly once per (rule,
//! event): the command carries an idempotency key of (rule, event), a firing is recorded once,
//! and the cursor moves past an event only after all of its firings are recorded; a restart in
//! between reads the event again, finds the record or gets the command's first answer back.

use eventstore::{GlobalLog, LogCursor};
use tokio::sync::watch;
use uuid::Uuid;

use super::store::{Cause, RuleTables};
use super::{about_a_sim, event_ids, facts_of, fire, load_rules, RuleSettings};
use crate::state::AppState;

/// Events read at a time.
const BATCH: i64 = 200;

pub struct Engine {
    state: AppState,
    tables: RuleTables,
    log: GlobalLog,
    id: Uuid,
    settings: RuleSettings,
}

impl Engine {
    pub fn new(state: AppState) -> Self {
        Self {
            tables: RuleTables::new(state.pool.clone()),
            log: GlobalLog::new(state.pool.clone()),
            id: Uuid::now_v7(),
            settings: state.rules.clone(),
            state,
        }
    }

    /// Runs until `stop` says so (or its sender is gone), then gives back its lease.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(engine = %self.id, "rule engine started");
        let mut started = false;
        while !stopping(&stop) {
            if let Err(error) = self.round(&stop, &mut started).await {
                tracing::warn!(%error, "rule engine: trying again");
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(self.settings.poll) => {}
            }
        }
        if let Err(error) = self.tables.release(self.id).await {
            tracing::warn!(%error, "rule engine stopped; its lease runs out by itself");
        }
    }

    /// One look at the log: claim, read a batch, fire, move the cursor event by event.
    async fn round(
        &self,
        stop: &watch::Receiver<bool>,
        started: &mut bool,
    ) -> Result<(), platform::ApiError> {
        if !*started {
            let head = self.log.cursor_at(self.log.head().await?).await?;
            self.tables.start_at((head.transaction_id, head.position)).await?;
            *started = true;
        }
        let Some(cursor) = self.tables.claim(self.id, self.settings.lease).await? else {
            return Ok(());
        };
        let cursor = LogCursor {
            transaction_id: cursor.0,
            position: cursor.1,
        };
        let events = self.log.read_after(cursor, BATCH).await?;
        if events.is_empty() {
            return Ok(());
        }
        let rules: Vec<_> = load_rules(&self.state)
            .await?
            .into_iter()
            .filter(|stored| stored.rule.enabled())
            .collect();
        for event in &events {
            if stopping(stop) {
                return Ok(());
            }
            if about_a_sim(event) {
                let candidates: Vec<_> = rules
                    .iter()
                    .filter(|stored| stored.on_for(event))
                    .filter(|stored| {
                        stored
                            .rule
                            .spec()
                            .is_some_and(|spec| spec.trigger.event_type == event.event_type)
                    })
                    .collect();
                if !candidates.is_empty() {
                    let with_tags = candidates
                        .iter()
                        .any(|stored| stored.rule.spec().is_some_and(|spec| spec.trigger.tag.is_some()));
                    let facts = facts_of(&self.state, event, with_tags).await?;
                    for stored in candidates {
                        let Some(spec) = stored.rule.spec() else { continue };
                        if !spec.trigger.matches(&facts.facts())
                            || self.tables.fired(stored.id, event.position).await?
                        {
                            continue;
                        }
                        let fired = fire(&self.state, stored, event, &facts).await?;
                        let (event_id, _) = event_ids(event);
                        let cause = Cause {
                            rule_id: stored.id,
                            position: event.position,
                            event_id: &event_id,
                            event_type: &event.event_type,
                            iccid: &event.iccid,
                            action: spec.action.as_str(),
                        };
                        self.tables.record(&cause, &fired).await?;
                        self.state
                            .rule_firings_total
                            .with_label_values(&[fired.outcome])
                            .inc();
                        tracing::info!(rule = %stored.id, position = event.position, outcome = fired.outcome, "rule fired");
                    }
                }
            }
            let next = LogCursor::after(event);
            if !self
                .tables
                .advance(self.id, (next.transaction_id, next.position))
                .await?
            {
                return Ok(());
            }
        }
        Ok(())
    }
}

fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}
