use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::AsyncCommands;

use crate::views::{FleetSummary, SimView};

/// Where the cache lives and how long entries stay.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub redis_url: String,
    /// Prefixes every key, so environments (and tests) sharing a Redis don't collide.
    pub key_prefix: String,
    pub sim_ttl: Duration,
    pub fleet_summary_ttl: Duration,
    /// A cache that answers slower than this is treated as absent.
    pub timeout: Duration,
}

impl CacheConfig {
    pub fn new(redis_url: impl Into<String>, key_prefix: impl Into<String>) -> Self {
        Self {
            redis_url: redis_url.into(),
            key_prefix: key_prefix.into(),
            sim_ttl: Duration::from_secs(300),
            fleet_summary_ttl: Duration::from_secs(60),
            timeout: Duration::from_millis(100),
        }
    }
}

/// Redis in front of the read models. Only ever a cache: every failure (Redis stopped,
/// flushed, slow) is logged and answered as a miss, never as an error, so readers fall back
/// to Postgres.
#[derive(Clone)]
pub struct Cache {
    connection: Option<ConnectionManager>,
    config: CacheConfig,
}

impl Cache {
    /// Connects when Redis answers; otherwise a cache that always misses (and says so once).
    pub async fn connect(config: CacheConfig) -> Self {
        let connection = match redis::Client::open(config.redis_url.as_str()) {
            Ok(client) => {
                match tokio::time::timeout(Duration::from_secs(2), client.get_connection_manager()).await {
                    Ok(Ok(connection)) => Some(connection),
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "Redis unavailable; reads go to Postgres");
                        None
                    }
                    Err(_) => {
                        tracing::warn!("Redis did not answer in time; reads go to Postgres");
                        None
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "invalid REDIS_URL; caching disabled");
                None
            }
        };
        Self { connection, config }
    }

    /// A cache that never holds anything.
    pub fn disabled() -> Self {
        Self {
            connection: None,
            config: CacheConfig::new("redis://disabled", "disabled"),
        }
    }

    pub fn sim_key(&self, iccid: &str) -> String {
        format!("{}:sim:{iccid}", self.config.key_prefix)
    }

    pub fn fleet_summary_key(&self) -> String {
        format!("{}:fleet:summary", self.config.key_prefix)
    }

    pub async fn get_sim(&self, iccid: &str) -> Option<SimView> {
        self.get_json(&self.sim_key(iccid)).await
    }

    pub async fn put_sim(&self, sim: &SimView) {
        self.put_json(&self.sim_key(&sim.iccid), sim, self.config.sim_ttl)
            .await;
    }

    pub async fn get_fleet_summary(&self) -> Option<FleetSummary> {
        self.get_json(&self.fleet_summary_key()).await
    }

    pub async fn put_fleet_summary(&self, summary: &FleetSummary) {
        self.put_json(&self.fleet_summary_key(), summary, self.config.fleet_summary_ttl)
            .await;
    }

    /// Drops entries an event made stale.
    pub async fn invalidate(&self, keys: &[String]) {
        let Some(mut connection) = self.connection.clone() else {
            return;
        };
        let deleted = tokio::time::timeout(self.config.timeout, connection.del::<_, ()>(keys)).await;
        if !matches!(deleted, Ok(Ok(()))) {
            tracing::warn!(?keys, "cache invalidation failed; entries expire with their TTL");
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        let mut connection = self.connection.clone()?;
        let found = tokio::time::timeout(self.config.timeout, connection.get::<_, Option<String>>(key)).await;
        match found {
            Ok(Ok(Some(text))) => serde_json::from_str(&text).ok(),
            Ok(Ok(None)) => None,
            Ok(Err(error)) => {
                tracing::debug!(%error, key, "cache read failed");
                None
            }
            Err(_) => None,
        }
    }

    async fn put_json<T: serde::Serialize>(&self, key: &str, value: &T, ttl: Duration) {
        let Some(mut connection) = self.connection.clone() else {
            return;
        };
        let Ok(text) = serde_json::to_string(value) else {
            return;
        };
        let written = tokio::time::timeout(
            self.config.timeout,
            connection.set_ex::<_, _, ()>(key, text, ttl.as_secs().max(1)),
        )
        .await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::debug!(key, "cache write failed");
        }
    }
}
