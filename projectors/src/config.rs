use std::net::SocketAddr;
use std::time::Duration;

use platform::config::{CommonConfig, ConfigError, NatsCredentials, Settings};

/// The projectors' settings, read once at start.
#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// `PROJECTORS_ADDR`, default 127.0.0.1:9101: `/health`, `/ready`, `/metrics`.
    pub addr: SocketAddr,
    /// `NATS_STREAM`, default `SIM_EVENTS`.
    pub stream: String,
    /// `NATS_SUBJECT_PREFIX`, default `sim`: the consumer filters `<prefix>.v1.>`.
    pub subject_prefix: String,
    /// `REDIS_KEY_PREFIX`, default `simplatform`: must match the query API's.
    pub redis_key_prefix: String,
    /// `PROJECTOR_NAME`, default `read-models`: the durable consumer's name, and the projector
    /// name in `projection_checkpoints` / `projection_versions` (the query API's
    /// `CONSISTENCY_PROJECTOR`).
    pub projector: String,
    /// `DB_MAX_CONNECTIONS`, default 5.
    pub db_max_connections: u32,
    /// `PROJECTOR_PARTITIONS`, default 1 (1 to 64): the log is applied in this many partitions
    /// by SIM, in parallel, shared by the replicas (`crate::partitions`). Every replica must be
    /// started with the same number: a replica with another one re-partitions, and the others
    /// stop.
    pub partitions: u32,
    pub consumer: ConsumerSettings,
    /// `RELAY_NATS_USER` / `RELAY_NATS_PASSWORD` / `RELAY_NATS_CREDS_FILE`: the in-process
    /// relay's own NATS identity (the only one allowed to publish events); unset = the
    /// process's `NATS_*`.
    pub relay_nats_credentials: NatsCredentials,
    /// The in-process relay's settings, from the same variables (`NATS_STREAM`,
    /// `NATS_SUBJECT_PREFIX`, `RELAY_BATCH_SIZE`): one tree, read once.
    pub relay: relay::RelayConfig,
    /// `REBUILD_MAX_ROWS`, default 2,000,000: the rows and versions a rebuild's bulk load
    /// holds in memory before it writes them and lets them go (about 1 KiB each).
    pub rebuild_max_rows: usize,
}

/// How the durable pull consumer is created and read.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// `PROJECTOR_ACK_WAIT_SECS`, default 30: redelivery after this without an ack (the
    /// projector sends "in progress" while it retries a message).
    pub ack_wait: Duration,
    /// `PROJECTOR_MAX_ACK_PENDING`, default 1024 (at least the batch size).
    pub max_ack_pending: i64,
    /// `PROJECTOR_BATCH`, default 256: messages per pull request, and at most this many
    /// messages handled together (one check against the store, one range of the log, one
    /// cache pipeline, then their acknowledgements).
    pub batch: usize,
    /// `PROJECTOR_BATCH_WAIT_MS`, default 2: after a first message, how long the projector
    /// waits for more to handle with it (a short bound: latency stays low when idle).
    pub batch_wait: Duration,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 1024,
            batch: 256,
            batch_wait: Duration::from_millis(2),
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads from any lookup, so tests need not mutate the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_lookup(&get)?;
        let vars = Settings::new(&get);
        Ok(Self {
            addr: vars.addr("PROJECTORS_ADDR", "127.0.0.1:9101")?,
            stream: vars.token("NATS_STREAM", relay::wire::DEFAULT_STREAM)?,
            subject_prefix: vars.token("NATS_SUBJECT_PREFIX", relay::wire::DEFAULT_SUBJECT_PREFIX)?,
            redis_key_prefix: vars.text_or("REDIS_KEY_PREFIX", "simplatform"),
            projector: vars.token("PROJECTOR_NAME", "read-models")?,
            db_max_connections: vars.number("DB_MAX_CONNECTIONS", 5)?.max(2) as u32,
            partitions: vars.number("PROJECTOR_PARTITIONS", 1)?.clamp(1, 64) as u32,
            consumer: ConsumerSettings {
                ack_wait: Duration::from_secs(vars.number("PROJECTOR_ACK_WAIT_SECS", 30)?.max(1)),
                max_ack_pending: vars.number("PROJECTOR_MAX_ACK_PENDING", 1024)?.max(1) as i64,
                batch: vars.number("PROJECTOR_BATCH", 256)?.clamp(1, 1024) as usize,
                batch_wait: Duration::from_millis(vars.number("PROJECTOR_BATCH_WAIT_MS", 2)?.min(1000)),
            },
            relay_nats_credentials: NatsCredentials::from_lookup(&get, "RELAY_")?,
            relay: relay::RelayConfig::from_lookup(&get).map_err(|error| ConfigError::Invalid {
                var: "NATS_STREAM",
                reason: error.to_string(),
            })?,
            rebuild_max_rows: vars.number("REBUILD_MAX_ROWS", 2_000_000)?.max(1000) as usize,
            common,
        })
    }

    /// The subject filter of the consumer: every event of every SIM, version 1.
    pub fn filter_subject(&self) -> String {
        format!("{}.v1.>", self.subject_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(platform::config::pairs(vars))
    }

    #[test]
    fn defaults() {
        let config = from(&[]).unwrap();
        assert_eq!(config.addr.to_string(), "127.0.0.1:9101");
        assert_eq!(config.stream, "SIM_EVENTS");
        assert_eq!(config.filter_subject(), "sim.v1.>");
        assert_eq!(config.redis_key_prefix, "simplatform");
        assert_eq!(config.projector, "read-models");
        assert_eq!(config.consumer.max_ack_pending, 1024);
        assert_eq!(config.consumer.batch, 256);
        assert_eq!(config.rebuild_max_rows, 2_000_000);
        assert_eq!(config.partitions, 1);
    }

    #[test]
    fn overrides_and_invalid_values() {
        let config = from(&[
            ("NATS_STREAM", "X"),
            ("NATS_SUBJECT_PREFIX", "t1"),
            ("PROJECTORS_ADDR", "0.0.0.0:1"),
        ])
        .unwrap();
        assert_eq!(config.stream, "X");
        assert_eq!(config.filter_subject(), "t1.v1.>");
        assert!(from(&[("NATS_SUBJECT_PREFIX", "a.b")]).is_err());
        assert!(from(&[("PROJECTORS_ADDR", "nope")]).is_err());
        assert!(from(&[("PROJECTOR_BATCH", "many")]).is_err());
    }
}
