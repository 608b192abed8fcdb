//! Structured logs. JSON by default so log shippers can index fields (request_id, route, …).

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` filters (default `info`). Safe to call more than
/// once (tests, several services in one process): later calls are no-ops and return `false`.
pub fn init_tracing(service: &str, format: LogFormat) -> bool {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let installed = match format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(true)
            .with_span_list(false)
            .with_target(true)
            .try_init()
            .is_ok(),
        LogFormat::Pretty => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .try_init()
            .is_ok(),
    };
    if installed {
        // Every service logs this once, so a log stream can be attributed to a service.
        tracing::info!(
            service,
            version = env!("CARGO_PKG_VERSION"),
            "tracing initialised"
        );
    }
    installed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_init_is_a_harmless_no_op() {
        let _first = init_tracing("test", LogFormat::Json);
        // Whatever the first call did (another test may have installed one), a second call
        // must not panic and must report that nothing new was installed.
        assert!(!init_tracing("test", LogFormat::Pretty));
    }
}

/// A warning that may come in floods (every message of a stream that is not ours, every
/// request of a misbehaving client): the first is logged, then at most one line per
/// `every`, saying how many were held back in between.
#[derive(Debug)]
pub struct RateLimitedLog {
    every: std::time::Duration,
    state: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

impl RateLimitedLog {
    pub const fn new(every: std::time::Duration) -> Self {
        Self {
            every,
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    /// `Some(n)` when this occurrence should be logged, `n` being how many were held back
    /// since the last line; `None` to keep quiet.
    pub fn admit(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < self.every => {
                state.1 += 1;
                None
            }
            _ => {
                let held_back = state.1;
                *state = (Some(now), 0);
                Some(held_back)
            }
        }
    }
}

#[cfg(test)]
mod rate_limit_tests {
    use super::RateLimitedLog;

    #[test]
    fn the_first_is_logged_then_one_per_period_with_the_count() {
        let log = RateLimitedLog::new(std::time::Duration::from_millis(200));
        assert_eq!(log.admit(), Some(0));
        assert_eq!(log.admit(), None);
        assert_eq!(log.admit(), None);
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert_eq!(log.admit(), Some(2));
    }
}
