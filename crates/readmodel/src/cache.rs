use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::AsyncCommands;

use crate::{FleetSummary, SimView};

/// SET with a TTL, unless the stored JSON's `last_position` is higher than ARGV[2].
const PUT_IF_NOT_OLDER: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' and tonumber(decoded['last_position'])
     and tonumber(decoded['last_position']) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[3]))
return 1
";

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
    /// After a failure, Redis is left alone until then (Unix ms), so a Redis that is down
    /// costs one timeout per pause, not one per request.
    paused_until: Arc<AtomicU64>,
}

/// How long the cache is bypassed after a Redis failure.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(2);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Cache {
    /// Connects when Redis answers. Otherwise the cache misses until Redis comes back: the
    /// connection is then made lazily, on a later request (each bounded by the timeout).
    pub async fn connect(config: CacheConfig) -> Self {
        let connection = match redis::Client::open(config.redis_url.as_str()) {
            Ok(client) => {
                match tokio::time::timeout(Duration::from_secs(2), client.get_connection_manager()).await {
                    Ok(Ok(connection)) => Some(connection),
                    outcome => {
                        match outcome {
                            Ok(Err(error)) => {
                                tracing::warn!(%error, "Redis unavailable; reads go to Postgres until it answers")
                            }
                            _ => tracing::warn!(
                                "Redis did not answer in time; reads go to Postgres until it answers"
                            ),
                        }
                        let lazy = redis::aio::ConnectionManagerConfig::new()
                            .set_number_of_retries(1)
                            .set_connection_timeout(Some(config.timeout));
                        client.get_connection_manager_lazy(lazy).ok()
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "invalid REDIS_URL; caching disabled");
                None
            }
        };
        Self {
            connection,
            config,
            paused_until: Arc::default(),
        }
    }

    /// The connection, unless Redis failed a moment ago.
    fn usable(&self) -> Option<ConnectionManager> {
        if now_ms() < self.paused_until.load(Ordering::Relaxed) {
            return None;
        }
        self.connection.clone()
    }

    fn failed(&self) {
        self.paused_until.store(
            now_ms() + PAUSE_AFTER_FAILURE.as_millis() as u64,
            Ordering::Relaxed,
        );
    }

    /// A cache that never holds anything.
    pub fn disabled() -> Self {
        Self {
            connection: None,
            config: CacheConfig::new("redis://disabled", "disabled"),
            paused_until: Arc::default(),
        }
    }

    pub fn sim_key(&self, iccid: &str) -> String {
        format!("{}:sim:{iccid}", self.config.key_prefix)
    }

    pub fn fleet_summary_key(&self) -> String {
        format!("{}:fleet:summary", self.config.key_prefix)
    }

    /// Whether Redis answers a PING within the cache's timeout (`/ready` reports it; reads and
    /// writes go on without Redis, so its absence only degrades the service). Asks even during
    /// the pause after a failure, so the report follows Redis at once.
    pub async fn ping(&self) -> bool {
        let Some(mut connection) = self.connection.clone() else {
            return false;
        };
        let ping = redis::cmd("PING");
        let pong = ping.query_async::<String>(&mut connection);
        matches!(tokio::time::timeout(self.config.timeout, pong).await, Ok(Ok(_)))
    }

    pub async fn get_sim(&self, iccid: &str) -> Option<SimView> {
        self.get_json(&self.sim_key(iccid)).await
    }

    /// Writes the SIM's entry unless the cache already holds a newer one (a higher
    /// `last_position`): two writers (projector replicas, a query filling a miss) that loaded
    /// the row at different moments cannot leave the older row cached.
    pub async fn put_sim(&self, sim: &SimView) {
        let Some(mut connection) = self.usable() else {
            return;
        };
        let Ok(text) = serde_json::to_string(sim) else {
            return;
        };
        let script = redis::Script::new(PUT_IF_NOT_OLDER);
        let mut invocation = script.key(self.sim_key(&sim.iccid));
        invocation
            .arg(text)
            .arg(sim.last_position)
            .arg(self.config.sim_ttl.as_secs().max(1));
        let written = tokio::time::timeout(
            self.config.timeout,
            invocation.invoke_async::<i64>(&mut connection),
        )
        .await;
        if !matches!(written, Ok(Ok(_))) {
            self.failed();
            tracing::debug!(iccid = %sim.iccid, "cache write failed");
        }
    }

    /// [`Cache::put_sim`] for many rows in one round trip (a pipeline of the same script), and
    /// the entries of `gone` dropped in it too.
    pub async fn put_sims(&self, sims: &[SimView], gone: &[String]) {
        if sims.is_empty() && gone.is_empty() {
            return;
        }
        let Some(mut connection) = self.usable() else {
            return;
        };
        let script = redis::Script::new(PUT_IF_NOT_OLDER);
        let ttl = self.config.sim_ttl.as_secs().max(1);
        let mut pipe = redis::pipe();
        for sim in sims {
            let Ok(text) = serde_json::to_string(sim) else {
                continue;
            };
            pipe.cmd("EVALSHA")
                .arg(script.get_hash())
                .arg(1)
                .arg(self.sim_key(&sim.iccid))
                .arg(text)
                .arg(sim.last_position)
                .arg(ttl)
                .ignore();
        }
        let gone: Vec<String> = gone.iter().map(|iccid| self.sim_key(iccid)).collect();
        if !gone.is_empty() {
            pipe.del(gone).ignore();
        }
        let mut sent =
            tokio::time::timeout(self.config.timeout, pipe.query_async::<()>(&mut connection)).await;
        if matches!(&sent, Ok(Err(error)) if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
        {
            // The script is not loaded on this server yet (a restart flushed it): load it, again.
            let _ = tokio::time::timeout(
                self.config.timeout,
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(PUT_IF_NOT_OLDER)
                    .query_async::<String>(&mut connection),
            )
            .await;
            sent = tokio::time::timeout(self.config.timeout, pipe.query_async::<()>(&mut connection)).await;
        }
        if !matches!(sent, Ok(Ok(()))) {
            self.failed();
            tracing::debug!(count = sims.len(), "cache pipeline failed");
        }
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
        let Some(mut connection) = self.usable() else {
            return;
        };
        let deleted = tokio::time::timeout(self.config.timeout, connection.del::<_, ()>(keys)).await;
        if !matches!(deleted, Ok(Ok(()))) {
            self.failed();
            tracing::warn!(?keys, "cache invalidation failed; entries expire with their TTL");
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        let mut connection = self.usable()?;
        let found = tokio::time::timeout(self.config.timeout, connection.get::<_, Option<String>>(key)).await;
        match found {
            Ok(Ok(Some(text))) => serde_json::from_str(&text).ok(),
            Ok(Ok(None)) => None,
            Ok(Err(error)) => {
                self.failed();
                tracing::debug!(%error, key, "cache read failed");
                None
            }
            Err(_) => {
                self.failed();
                None
            }
        }
    }

    async fn put_json<T: serde::Serialize>(&self, key: &str, value: &T, ttl: Duration) {
        let Some(mut connection) = self.usable() else {
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
            self.failed();
            tracing::debug!(key, "cache write failed");
        }
    }
}
