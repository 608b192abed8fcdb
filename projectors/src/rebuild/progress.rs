//! The rebuild's progress: a log line every few seconds and the `projection_rebuild_*` metrics.

use std::time::{Duration, Instant};

use crate::metrics::RebuildMetrics;

/// How often a running rebuild logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Logs (every [`PROGRESS_EVERY`]) and exports how far the replay is.
pub(super) struct Progress<'a> {
    pub(super) metrics: Option<&'a RebuildMetrics>,
    pub(super) started: Instant,
    pub(super) logged: Instant,
    pub(super) head: i64,
}

impl Progress<'_> {
    pub(super) fn replayed(&mut self, events: u64, total: u64, position: i64) {
        let share = (position as f64 / self.head as f64).min(1.0);
        if let Some(metrics) = self.metrics {
            metrics.events.inc_by(events);
            metrics.position.set(position);
            metrics.progress.set(share);
        }
        if self.logged.elapsed() >= PROGRESS_EVERY {
            self.logged = Instant::now();
            let seconds = self.started.elapsed().as_secs_f64().max(0.001);
            tracing::info!(
                events = total,
                position,
                head = self.head,
                percent = format!("{:.1}", share * 100.0),
                events_per_second = (total as f64 / seconds) as u64,
                "rebuild progress"
            );
        }
    }
}
