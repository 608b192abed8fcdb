use std::time::Duration;

use axum::extract::FromRef;
use eventstore::{EventStore, GlobalLog};
use platform::auth::{AuthError, JwtKeys};
use platform::{Authenticator, Metrics};
use prometheus::{IntCounterVec, Opts};
use readmodel::Cache;
use sqlx::PgPool;

use crate::config::Config;

/// What a query with `X-Consistency-Token` waits for.
#[derive(Debug, Clone)]
pub struct ConsistencySettings {
    pub max_wait: Duration,
    pub poll: Duration,
    pub projector: String,
}

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub store: EventStore,
    pub log: GlobalLog,
    /// SIM rows: the projectors write them after each commit; a miss here puts the row read
    /// from Postgres, and only when it is not older (`last_position`) than the entry Redis
    /// holds, so a reader never puts back a row the projectors replaced.
    pub cache: Cache,
    pub authenticator: Authenticator,
    pub metrics: Metrics,
    pub cache_hits: IntCounterVec,
    pub cache_misses: IntCounterVec,
    pub consistency_timeouts: prometheus::IntCounter,
    pub consistency: ConsistencySettings,
    pub max_body_bytes: usize,
    pub fleet_summary: std::sync::Arc<FleetSummaryCache>,
    pub lists: ListSettings,
    /// `GET /sims` totals per filter, for `LIST_TOTAL_CACHE_MS`.
    pub list_totals: std::sync::Arc<crate::routes::paging::Totals>,
}

/// How paged lists count.
#[derive(Debug, Clone, Copy)]
pub struct ListSettings {
    /// Totals up to this are exact; above it, estimates (`X-Total-Count-Exact: false`).
    pub exact_count_limit: i64,
}

/// `GET /fleet/summary` under load: at most one query for it at a time in this process
/// (the others wait for its answer), and none while the last answer is younger than
/// `max_age` (`FLEET_SUMMARY_CACHE_SECS`). Events do not invalidate it: a summary of 100,000
/// SIMs is a second old at most, instead of being recomputed after every event.
pub struct FleetSummaryCache {
    pub max_age: Duration,
    last: tokio::sync::Mutex<Option<(std::time::Instant, readmodel::FleetSummary)>>,
}

impl FleetSummaryCache {
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The cached summary when young enough, else `load`'s (awaited by one caller at a time).
    pub async fn get_or_load<F, Fut, E>(&self, load: F) -> Result<(readmodel::FleetSummary, bool), E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<readmodel::FleetSummary, E>>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, summary)) = last.as_ref() {
            if at.elapsed() < self.max_age {
                return Ok((summary.clone(), true));
            }
        }
        let summary = load().await?;
        *last = Some((std::time::Instant::now(), summary.clone()));
        Ok((summary, false))
    }

    /// Forgets the cached summary (tests, and a consistency-token read that found it stale).
    pub async fn clear(&self) {
        *self.last.lock().await = None;
    }
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.authenticator.clone()
    }
}

impl AppState {
    pub fn new(config: &Config, pool: PgPool, cache: Cache) -> Result<Self, AuthError> {
        let jwt = JwtKeys::from_config(&config.common)?;
        let metrics = Metrics::new();
        let cache_hits = IntCounterVec::new(
            Opts::new("query_cache_hits_total", "Reads answered from Redis, by kind"),
            &["kind"],
        )
        .expect("valid metric");
        let cache_misses = IntCounterVec::new(
            Opts::new(
                "query_cache_misses_total",
                "Reads Redis could not answer, by kind",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let consistency_timeouts = prometheus::IntCounter::new(
            "query_consistency_timeouts_total",
            "Queries whose consistency token the read models did not reach in time",
        )
        .expect("valid metric");
        for metric in [&cache_hits, &cache_misses] {
            metrics
                .registry()
                .register(Box::new(metric.clone()))
                .expect("metric registered once");
        }
        metrics
            .registry()
            .register(Box::new(consistency_timeouts.clone()))
            .expect("metric registered once");
        for kind in ["sim", "fleet_summary"] {
            cache_hits.with_label_values(&[kind]);
            cache_misses.with_label_values(&[kind]);
        }
        Ok(Self {
            store: EventStore::new(pool.clone()),
            log: GlobalLog::new(pool.clone()),
            cache,
            authenticator: Authenticator::new(jwt, pool.clone()),
            metrics,
            cache_hits,
            cache_misses,
            consistency_timeouts,
            fleet_summary: std::sync::Arc::new(FleetSummaryCache::new(config.fleet_summary_ttl)),
            consistency: ConsistencySettings {
                max_wait: config.consistency_wait,
                poll: config.consistency_poll,
                projector: config.consistency_projector.clone(),
            },
            max_body_bytes: config.max_body_bytes,
            lists: ListSettings {
                exact_count_limit: config.list_exact_count_limit,
            },
            list_totals: std::sync::Arc::new(crate::routes::paging::Totals::new(
                config.list_total_cache,
                config.list_exact_count_limit,
            )),
            pool,
        })
    }

    pub fn cache_hit(&self, kind: &str) {
        self.cache_hits.with_label_values(&[kind]).inc();
    }

    pub fn cache_miss(&self, kind: &str) {
        self.cache_misses.with_label_values(&[kind]).inc();
    }
}
