//! The `/v1` request budget: evenly spaced slots, handed out by priority, FIFO within a lane.
//!
//! Slots are spaced rather than bucketed so the provider never sees a burst: with a budget of
//! N per second, two attempts leave at least 1/N s apart (plus a small margin for jitter on the
//! way), so no one-second window at the provider holds more than N.

use std::collections::BTreeSet;
use std::pin::pin;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Who is waiting for a slot; served in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// An operator is waiting for the answer.
    OperatorRequest,
    /// The periodic walk of the SIM list.
    ListSweep,
    /// Details of SIMs the list showed to have changed.
    ChangedSims,
    /// Everything else.
    Background,
}

/// Margin on the spacing: a request granted on time can still reach the provider a few
/// milliseconds late or early, which must not make two of them land in one window. 1 %: the
/// provider throttles with a token bucket that holds a second's worth of calls (an API
/// gateway's burst; the simulator does the same), which absorbs such jitter, and every point
/// of margin is a point of the account's budget never used (5 % cost a 100,000-SIM first
/// sync 8 minutes).
const SPACING_MARGIN_PERCENT: u32 = 1;

pub(crate) struct PriorityLimiter {
    spacing: Duration,
    /// How late a grant may be (the timer wakes a waiter a millisecond or so after its slot)
    /// without pushing the slots after it back: without this, each grant's lateness adds to the
    /// spacing, which cost 10 % of a budget of 100 calls/s. Any `N + 1` consecutive grants still
    /// span at least `N × spacing − forgiven` > 1 s, so no second holds more than `N` grants.
    forgiven: Duration,
    state: Mutex<State>,
    turn_changed: Notify,
}

struct State {
    next_slot: Instant,
    /// Waiting tickets, best first: (lane, arrival number).
    waiting: BTreeSet<(Priority, u64)>,
    arrivals: u64,
}

impl PriorityLimiter {
    pub(crate) fn per_second(requests_per_second: u32) -> Self {
        let per_second = requests_per_second.max(1);
        let spacing = Duration::from_secs(1) / per_second * (100 + SPACING_MARGIN_PERCENT) / 100;
        // Half the margin: any N + 1 grants still span at least a second plus half the margin
        // (1.005 s at 1 %), the other half left for jitter on the way.
        let forgiven = ((spacing * per_second).saturating_sub(Duration::from_secs(1)) / 2).min(spacing / 2);
        Self {
            spacing,
            forgiven,
            state: Mutex::new(State {
                next_slot: Instant::now(),
                waiting: BTreeSet::new(),
                arrivals: 0,
            }),
            turn_changed: Notify::new(),
        }
    }

    /// Waits for this caller's slot and returns how long that took.
    pub(crate) async fn acquire(&self, priority: Priority) -> Duration {
        let started = Instant::now();
        let ticket = {
            let mut state = self.lock();
            state.arrivals += 1;
            let ticket = (priority, state.arrivals);
            state.waiting.insert(ticket);
            ticket
        };
        // A newcomer may be ahead of the one currently waiting for the next slot.
        self.turn_changed.notify_waiters();
        let mut guard = Ticket {
            limiter: self,
            ticket,
            served: false,
        };
        loop {
            let mut turn_changed = pin!(self.turn_changed.notified());
            turn_changed.as_mut().enable();
            let wait_until = {
                let mut state = self.lock();
                if state.waiting.first() == Some(&ticket) {
                    let now = Instant::now();
                    if now >= state.next_slot {
                        state.waiting.remove(&ticket);
                        // On time (a little late) → the slot after the last one; later than
                        // that (nobody was waiting) → a spacing from now.
                        state.next_slot = self.slot_after(state.next_slot, now);
                        guard.served = true;
                        drop(state);
                        self.turn_changed.notify_waiters();
                        return started.elapsed();
                    }
                    Some(state.next_slot)
                } else {
                    None
                }
            };
            match wait_until {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = turn_changed => {}
                    }
                }
                None => turn_changed.await,
            }
        }
    }

    /// The next slot after a grant at `granted` of the slot `slot`.
    fn slot_after(&self, slot: Instant, granted: Instant) -> Instant {
        slot.max(granted.checked_sub(self.forgiven).unwrap_or(granted)) + self.spacing
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-changed (every change is
        // a single insert/remove/assignment), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Takes a caller that gave up (its future dropped) out of the queue, so it does not block
/// the ones behind it.
struct Ticket<'a> {
    limiter: &'a PriorityLimiter,
    ticket: (Priority, u64),
    served: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.served {
            self.limiter.lock().waiting.remove(&self.ticket);
            self.limiter.turn_changed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn no_second_holds_more_than_the_budget() {
        let limiter = PriorityLimiter::per_second(50);
        let mut grants = Vec::new();
        for _ in 0..101 {
            limiter.acquire(Priority::Background).await;
            grants.push(std::time::Instant::now());
        }
        // No second holds more than 50: any 51 grants span at least a second.
        for window in grants.windows(51) {
            assert!(
                window[50] - window[0] >= Duration::from_secs(1),
                "{:?}",
                window[50] - window[0]
            );
        }
    }

    #[test]
    fn a_late_grant_does_not_push_the_later_slots_back() {
        let limiter = PriorityLimiter::per_second(100);
        let spacing = limiter.spacing;
        assert_eq!(spacing, Duration::from_micros(10_100));
        let start = Instant::now();
        // Every grant a millisecond late (the timer): the slots stay on the 10.1 ms grid, so
        // the budget is used in full (without this, 100 calls/s became 90).
        let mut slot = start;
        let mut grants = Vec::new();
        for _ in 0..1000 {
            let granted = slot + Duration::from_millis(1);
            grants.push(granted);
            slot = limiter.slot_after(slot, granted);
        }
        assert_eq!(slot - start, spacing * 1000);
        // Lateness of up to 20 ms, in any pattern, still leaves no second with more than 100.
        let mut slot = start;
        let mut grants = Vec::new();
        for n in 0..1000u64 {
            let granted = slot + Duration::from_micros((n * 7919) % 20_000);
            grants.push(granted);
            slot = limiter.slot_after(slot, granted);
        }
        for window in grants.windows(101) {
            assert!(
                window[100] - window[0] >= Duration::from_secs(1),
                "{:?}",
                window[100] - window[0]
            );
        }
        // Idle (nobody waited for the slot): the next one is a spacing after the grant, less
        // what is forgiven (5 ms here, half the margin of 10 ms a second), not the old grid's
        // next slot.
        let idle = slot + Duration::from_secs(5);
        assert_eq!(
            limiter.slot_after(slot, idle),
            idle + spacing - Duration::from_millis(5)
        );
    }

    #[tokio::test]
    async fn higher_lanes_are_served_first_and_fifo_within_a_lane() {
        let limiter = Arc::new(PriorityLimiter::per_second(5));
        // Take the first slot so everyone else queues.
        limiter.acquire(Priority::Background).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        let lanes = [
            (Priority::Background, 1),
            (Priority::Background, 2),
            (Priority::ChangedSims, 3),
            (Priority::OperatorRequest, 4),
            (Priority::ListSweep, 5),
            (Priority::OperatorRequest, 6),
        ];
        for (lane, name) in lanes {
            let limiter = limiter.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                limiter.acquire(lane).await;
                order.lock().unwrap().push(name);
            }));
            // Arrive in the listed order, all within the first spacing of 202 ms.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![4, 6, 5, 3, 1, 2]);
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_does_not_block_the_queue() {
        let limiter = Arc::new(PriorityLimiter::per_second(20));
        limiter.acquire(Priority::Background).await;
        let impatient = tokio::time::timeout(
            Duration::from_millis(10),
            limiter.acquire(Priority::OperatorRequest),
        );
        assert!(impatient.await.is_err());
        let waited = tokio::time::timeout(Duration::from_secs(1), limiter.acquire(Priority::Background))
            .await
            .unwrap();
        assert!(waited <= Duration::from_millis(80), "{waited:?}");
    }
}
