use std::net::SocketAddr;
use std::time::Duration;

use platform::config::{CommonConfig, ConfigError};

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
    /// `FLEET_SUMMARY_CACHE_SECS`, default 10: how long this service caches `GET /fleet/summary`.
    pub fleet_summary_ttl: Duration,
    /// `CONSISTENCY_WAIT_MS`, default 5000: the longest a query with `X-Consistency-Token` waits
    /// for the read models before answering 503.
    pub consistency_wait: Duration,
    /// `CONSISTENCY_POLL_MS`, default 20: how often the checkpoint is read while waiting.
    pub consistency_poll: Duration,
    /// `CONSISTENCY_PROJECTOR`, default `read-models`: the `projection_checkpoints` row a
    /// consistency token waits for.
    pub consistency_projector: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let common = CommonConfig::from_env()?;
        let number = |var: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(var) {
                None => Ok(default),
                Some(value) => value.trim().parse().map_err(|_| ConfigError::Invalid {
                    var,
                    reason: format!("{value:?} is not a whole number"),
                }),
            }
        };
        let addr = get("QUERY_ADDR").unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let addr = addr.parse().map_err(|_| ConfigError::Invalid {
            var: "QUERY_ADDR",
            reason: format!("{addr:?} is not host:port"),
        })?;
        Ok(Self {
            addr,
            max_body_bytes: number("MAX_BODY_BYTES", 16 * 1024)? as usize,
            db_max_connections: number("DB_MAX_CONNECTIONS", 20)?.max(2) as u32,
            redis_key_prefix: get("REDIS_KEY_PREFIX").unwrap_or_else(|| "simplatform".to_owned()),
            redis_timeout: Duration::from_millis(number("REDIS_TIMEOUT_MS", 100)?.max(1)),
            fleet_summary_ttl: Duration::from_secs(number("FLEET_SUMMARY_CACHE_SECS", 10)?.max(1)),
            consistency_wait: Duration::from_millis(number("CONSISTENCY_WAIT_MS", 5000)?),
            consistency_poll: Duration::from_millis(number("CONSISTENCY_POLL_MS", 20)?.max(1)),
            consistency_projector: get("CONSISTENCY_PROJECTOR").unwrap_or_else(|| "read-models".to_owned()),
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
            fleet_summary_ttl: Duration::from_secs(10),
            consistency_wait: Duration::from_secs(5),
            consistency_poll: Duration::from_millis(20),
            consistency_projector: "read-models".to_owned(),
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
