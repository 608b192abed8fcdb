use std::net::SocketAddr;
use std::time::Duration;

use platform::config::{CommonConfig, ConfigError, Settings};

/// The query API's settings, read once at start.
#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// `QUERY_ADDR`, default 127.0.0.1:8080.
    pub addr: SocketAddr,
    /// `MAX_BODY_BYTES`, default 16 KiB: queries carry no body.
    pub max_body_bytes: usize,
    /// `DB_MAX_CONNECTIONS`, default 20.
    pub db_max_connections: u32,
    /// `REDIS_KEY_PREFIX`, default `simplatform`: must match the projectors', which fill the cache.
    pub redis_key_prefix: String,
    /// `REDIS_TIMEOUT_MS`, default 100: a slower cache counts as a miss.
    pub redis_timeout: Duration,
    /// `FLEET_SUMMARY_CACHE_SECS`, default 1: how long this service keeps `GET /fleet/summary`
    /// before computing it again (once, however many requests wait).
    pub fleet_summary_ttl: Duration,
    /// `CONSISTENCY_WAIT_MS`, default 5000: the longest a query with `X-Consistency-Token` waits
    /// for the read models before answering 503.
    pub consistency_wait: Duration,
    /// `CONSISTENCY_POLL_MS`, default 20: how often the checkpoint is read while waiting.
    pub consistency_poll: Duration,
    /// `CONSISTENCY_PROJECTOR`, default `read-models`: the `projection_checkpoints` row a
    /// consistency token waits for.
    pub consistency_projector: String,
    /// `LIST_EXACT_COUNT_LIMIT`, default 1000: a list's `X-Total-Count` is exact up to this
    /// many matches; beyond, it is the planner's estimate (`X-Total-Count-Exact: false`), so a
    /// page never counts 100,000 rows.
    pub list_exact_count_limit: i64,
    /// `LIST_TOTAL_CACHE_MS`, default 1000 (0: off): how long `GET /sims` keeps a filter's
    /// `X-Total-Count` (the page's rows are always read fresh; a consistency token counts
    /// afresh).
    pub list_total_cache: Duration,
    /// `FLEET_METRICS_INTERVAL_SECS`, default 30: how often the fleet gauges of `/metrics`
    /// (`sims_total{status}`, `fleet_*`) are loaded from the read models.
    pub fleet_metrics_interval: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars = Settings::new(|name: &str| std::env::var(name).ok());
        let common = CommonConfig::from_env()?;
        let addr = vars.addr("QUERY_ADDR", "127.0.0.1:8080")?;
        Ok(Self {
            addr,
            max_body_bytes: vars.number("MAX_BODY_BYTES", 16 * 1024)? as usize,
            db_max_connections: vars.number("DB_MAX_CONNECTIONS", 20)?.max(2) as u32,
            redis_key_prefix: vars.text_or("REDIS_KEY_PREFIX", "simplatform"),
            redis_timeout: Duration::from_millis(vars.number("REDIS_TIMEOUT_MS", 100)?.max(1)),
            fleet_summary_ttl: Duration::from_secs(vars.number("FLEET_SUMMARY_CACHE_SECS", 1)?.max(1)),
            consistency_wait: Duration::from_millis(vars.number("CONSISTENCY_WAIT_MS", 5000)?),
            consistency_poll: Duration::from_millis(vars.number("CONSISTENCY_POLL_MS", 20)?.max(1)),
            consistency_projector: vars.text_or("CONSISTENCY_PROJECTOR", "read-models"),
            list_exact_count_limit: vars
                .number("LIST_EXACT_COUNT_LIMIT", 1000)?
                .clamp(1, i64::MAX as u64) as i64,
            list_total_cache: Duration::from_millis(vars.number("LIST_TOTAL_CACHE_MS", 1000)?),
            fleet_metrics_interval: Duration::from_secs(
                vars.number("FLEET_METRICS_INTERVAL_SECS", 30)?.max(1),
            ),
            common,
        })
    }

    /// Settings for a test: everything local, the given database, a random port.
    pub fn for_tests(database_url: &str) -> Self {
        Self {
            common: CommonConfig::for_tests(database_url),
            addr: "127.0.0.1:0".parse().expect("literal address"),
            max_body_bytes: 16 * 1024,
            db_max_connections: 10,
            redis_key_prefix: format!("test-{}", uuid::Uuid::new_v4()),
            redis_timeout: Duration::from_millis(500),
            fleet_summary_ttl: Duration::from_secs(1),
            consistency_wait: Duration::from_secs(5),
            consistency_poll: Duration::from_millis(20),
            consistency_projector: "read-models".to_owned(),
            list_exact_count_limit: 1000,
            // Tests write rows and list them at once; the cache has a test of its own.
            list_total_cache: Duration::ZERO,
            fleet_metrics_interval: Duration::from_millis(200),
        }
    }

    /// The Redis cache's settings.
    pub fn cache_config(&self) -> readmodel::CacheConfig {
        let mut cache = readmodel::CacheConfig::new(&self.common.redis_url, &self.redis_key_prefix);
        cache.timeout = self.redis_timeout;
        cache.fleet_summary_ttl = self.fleet_summary_ttl;
        cache
    }
}
