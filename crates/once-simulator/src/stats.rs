//! What tests observe about the calls the simulator received.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteCount {
    pub method: String,
    /// The route template, e.g. `/v1/sims/{iccid}/quota/data`.
    pub route: String,
    pub status: u16,
    pub count: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStats {
    /// Provider calls (`/oauth…` and `/v1…`) answered.
    pub total_calls: u64,
    /// `/v1/sims…` arrivals, refused ones included.
    pub sims_calls: u64,
    /// The most `/v1/sims…` arrivals (refused ones included) within any one-second window.
    pub max_sims_calls_in_one_second: u64,
    /// 429s from the rate limit (not injected ones).
    pub rate_limited: u64,
    /// Faults injected (429, 500, truncated, malformed).
    pub injected_faults: u64,
    /// Per method, route template and status.
    pub by_route: Vec<RouteCount>,
}

impl CallStats {
    /// Calls to `method route`, any status.
    pub fn count(&self, method: &str, route: &str) -> u64 {
        self.by_route
            .iter()
            .filter(|c| c.method == method && c.route == route)
            .map(|c| c.count)
            .sum()
    }

    pub fn count_status(&self, method: &str, route: &str, status: u16) -> u64 {
        self.by_route
            .iter()
            .filter(|c| c.method == method && c.route == route && c.status == status)
            .map(|c| c.count)
            .sum()
    }

    /// Token requests, any status.
    pub fn token_calls(&self) -> u64 {
        self.count("POST", "/oauth/token")
    }
}

#[derive(Default)]
pub(crate) struct StatsState {
    calls: BTreeMap<(String, String, u16), u64>,
    window: VecDeque<Instant>,
    max_in_window: u64,
    sims_calls: u64,
    total: u64,
    pub rate_limited: u64,
    pub injected: u64,
}

impl StatsState {
    pub fn sims_arrival(&mut self, at: Instant) {
        self.sims_calls += 1;
        while self
            .window
            .front()
            .is_some_and(|t| at.saturating_duration_since(*t) >= Duration::from_secs(1))
        {
            self.window.pop_front();
        }
        self.window.push_back(at);
        self.max_in_window = self.max_in_window.max(self.window.len() as u64);
    }

    pub fn answered(&mut self, method: &str, route: &str, status: u16) {
        self.total += 1;
        *self
            .calls
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
    }

    pub fn snapshot(&self) -> CallStats {
        CallStats {
            total_calls: self.total,
            sims_calls: self.sims_calls,
            max_sims_calls_in_one_second: self.max_in_window,
            rate_limited: self.rate_limited,
            injected_faults: self.injected,
            by_route: self
                .calls
                .iter()
                .map(|((method, route, status), count)| RouteCount {
                    method: method.clone(),
                    route: route.clone(),
                    status: *status,
                    count: *count,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_arrivals_within_one_second() {
        let mut s = StatsState::default();
        let t0 = Instant::now();
        for i in 0..10 {
            s.sims_arrival(t0 + Duration::from_millis(i * 100));
        }
        // t0 + 1000 ms: the arrival at t0 is exactly one second old and leaves the window.
        s.sims_arrival(t0 + Duration::from_millis(1000));
        assert_eq!(s.snapshot().max_sims_calls_in_one_second, 10);
        s.sims_arrival(t0 + Duration::from_millis(1001));
        assert_eq!(s.snapshot().max_sims_calls_in_one_second, 11);
        assert_eq!(s.snapshot().sims_calls, 12);
    }
}
