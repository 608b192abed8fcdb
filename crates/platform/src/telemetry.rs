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
