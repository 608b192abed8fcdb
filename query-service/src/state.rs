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
    /// Read through only, except the fleet summary: the projectors write SIM entries after
    /// each commit, and a reader writing one could put back a row an invalidation just removed.
    pub cache: Cache,
    pub authenticator: Authenticator,
    pub metrics: Metrics,
    pub cache_hits: IntCounterVec,
    pub cache_misses: IntCounterVec,
    pub consistency_timeouts: prometheus::IntCounter,
    pub consistency: ConsistencySettings,
    pub max_body_bytes: usize,
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
            consistency: ConsistencySettings {
                max_wait: config.consistency_wait,
                poll: config.consistency_poll,
                projector: config.consistency_projector.clone(),
            },
            max_body_bytes: config.max_body_bytes,
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
