//! The connector's settings, read once from the environment with local defaults that point at
//! the built-in 1NCE simulator.

use std::net::SocketAddr;
use std::time::Duration;

use once_client::ClientConfig;
use platform::config::{ConfigError, Settings};
use platform::CommonConfig;

/// The simulator's development credentials (see `docs/simulator.md`).
pub const SIMULATOR_CLIENT_ID: &str = "simulator";
pub const SIMULATOR_CLIENT_SECRET: &str = "simulator-secret";

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// `CONNECTOR_ADDR`: health, readiness and metrics.
    pub addr: SocketAddr,
    /// `ONCE_API_URL`, `ONCE_CLIENT_ID`, `ONCE_CLIENT_SECRET`, `SYNC_REQUESTS_PER_SECOND` (this
    /// instance's share of the account's 10 requests/s), `SYNC_PROVIDER_TIMEOUT_SECS` (per
    /// attempt), `SYNC_PROVIDER_MAX_RETRIES`.
    pub provider: ClientConfig,
    pub schedule: Schedule,
    pub shard: Shard,
    /// `NATS_STREAM` and `NATS_SUBJECT_PREFIX`, as the relay publishes them.
    pub stream: String,
    pub subject_prefix: String,
    /// `SYNC_CONSUMER_PREFIX`: durable consumer names are `<prefix>-<event type>`.
    pub consumer_prefix: String,
    /// `SYNC_REQUEST_ACK_WAIT_SECS`: how long JetStream waits before redelivering an operator
    /// request the connector took and did not settle (e.g. because it crashed).
    pub request_ack_wait: Duration,
    /// `SYNC_SMS_SOURCE_ADDRESS`: the sender shown for MT SMS that name none.
    pub sms_source_address: String,
    pub db_max_connections: u32,
    pub streamer: StreamerConfig,
}

/// The 1NCE Data Streamer receiver (`POST /1nce/data-streamer`).
#[derive(Clone)]
pub struct StreamerConfig {
    /// `STREAMER_BASIC_AUTH=user:password[,user:password…]`: every pair is accepted (rotation).
    /// Empty (unset): the receiver is off and its route answers 404.
    pub credentials: Vec<String>,
    /// `STREAMER_MAX_BODY_BYTES` (default 16 MiB): larger bodies answer 413.
    pub max_body_bytes: usize,
    /// `STREAMER_MAX_RECORDS` (default 3000, 1NCE's batch maximum): more answer 413.
    pub max_records: usize,
    /// `STREAMER_APPLY_BATCH` (default 500): records the applier claims at once.
    pub apply_batch: i64,
    /// `STREAMER_APPLY_CONCURRENCY` (default 8): SIMs whose records are applied at once.
    pub apply_concurrency: usize,
    /// `STREAMER_PENDING_RECHECK_SECS` (default 30): how often records of SIMs the platform
    /// did not know are looked at again without a new SIM having been registered.
    pub pending_recheck: Duration,
    /// `STREAMER_RETENTION_DAYS` (default 30): settled records and rejects older than this
    /// are deleted.
    pub retention: Duration,
}

impl std::fmt::Debug for StreamerConfig {
    // The passwords never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamerConfig")
            .field("credentials", &format_args!("{} pair(s)", self.credentials.len()))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_records", &self.max_records)
            .field("apply_batch", &self.apply_batch)
            .field("apply_concurrency", &self.apply_concurrency)
            .field("pending_recheck", &self.pending_recheck)
            .field("retention", &self.retention)
            .finish()
    }
}

impl StreamerConfig {
    fn from_settings<F: Fn(&str) -> Option<String>>(vars: &Settings<F>) -> Result<Self, ConfigError> {
        let credentials: Vec<String> = vars
            .text_or("STREAMER_BASIC_AUTH", "")
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = credentials.iter().position(|pair| !pair.contains(':')) {
            return Err(ConfigError::Invalid {
                var: "STREAMER_BASIC_AUTH",
                reason: format!("pair {} is not user:password", bad + 1),
            });
        }
        Ok(Self {
            credentials,
            max_body_bytes: vars
                .number("STREAMER_MAX_BODY_BYTES", 16 * 1024 * 1024)?
                .max(1024) as usize,
            max_records: vars.number("STREAMER_MAX_RECORDS", 3000)?.max(1) as usize,
            apply_batch: vars.number("STREAMER_APPLY_BATCH", 500)?.clamp(1, 10_000) as i64,
            apply_concurrency: vars.number("STREAMER_APPLY_CONCURRENCY", 8)?.clamp(1, 64) as usize,
            pending_recheck: Duration::from_secs(vars.number("STREAMER_PENDING_RECHECK_SECS", 30)?.max(1)),
            retention: Duration::from_secs(
                vars.number("STREAMER_RETENTION_DAYS", 30)?.clamp(1, 3650) * 86_400,
            ),
        })
    }

    pub fn enabled(&self) -> bool {
        !self.credentials.is_empty()
    }
}

/// How often each kind of work is due; the call budget decides how much of it gets done.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// `SYNC_POLL_INTERVAL_SECS`: the SIM-list sweep period.
    pub poll_interval: Duration,
    /// `SYNC_DETAIL_INTERVAL_SECS` (default one day): the safety net's period; every SIM gets
    /// a full refresh (every part) this often, whatever the list or the streamer said.
    pub detail_interval: Duration,
    /// `SYNC_FIRST_REFRESH=full|usage` (default `full`): what a SIM new to the connector gets
    /// beside its list entry; `usage` defers the rest to its first full refresh (spread over
    /// `detail_interval`), so a large fleet's first sync is one usage call per SIM.
    pub first_refresh_usage_only: bool,
    /// `SYNC_LIST_BUDGET_PERCENT` (default 25): the list sweep's share of the call budget at
    /// most; a fleet whose sweep would take more starts its sweeps further apart than
    /// `poll_interval`.
    pub list_budget_percent: u32,
    /// `SYNC_FIRST_SYNC_LIST_BUDGET_PERCENT` (default 2, never above `list_budget_percent`):
    /// the list's share while the first full sync is under way (the SIMs that have not had
    /// their first per-SIM refresh need longer than a sweep period). Until then the fleet's usage is not yet known at all, and every list
    /// call is a usage call less: at 100,000 SIMs and 10 calls/s the first sync is one usage
    /// call per SIM (2.8 h), which a 25 % list would stretch to 3.7 h; at 2 % the list still
    /// sweeps every 83 minutes meanwhile.
    pub first_sync_list_budget_percent: u32,
    /// The Data Streamer receiver is configured: usage, connectivity and quota levels arrive
    /// streamed, and the list's quota movements no longer cost per-SIM calls.
    pub streamer: bool,
    /// `SYNC_USAGE_INTERVAL_SECS` (default 3600 without the Data Streamer, 0 = off with it):
    /// the usage round; each SIM's usage is polled at least this often (the list does not show
    /// traffic until a quota level is crossed). The budget stretches it for large fleets.
    pub usage_interval: Option<Duration>,
    /// `SYNC_USAGE_DAYS`: how many recent days each usage call asks for.
    pub usage_days: u32,
    /// `SYNC_BACKGROUND`: run the round-robin at all (on by default).
    pub background: bool,
    /// `SYNC_JOB_POLL_SECS`: how often queued sync jobs are looked for without a NATS wake-up.
    pub job_poll: Duration,
    /// `SYNC_NETWORK_EVENTS=auto|on|off` (default `auto`: on when the Data Streamer receiver is
    /// off): the per-SIM refresh also reads the SIM's new events (`GET /v1/sims/{iccid}/events`).
    pub network_events: bool,
}

/// Which part of the ICCID space this instance owns: `SYNC_SHARD_INDEX` of `SYNC_SHARD_COUNT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Self { index: 0, count: 1 }
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
        let base_url = vars.text_or("ONCE_API_URL", "http://127.0.0.1:8090");
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                var: "ONCE_API_URL",
                reason: format!("{base_url:?} is not an http(s) URL"),
            });
        }
        let requests_per_second = vars.number("SYNC_REQUESTS_PER_SECOND", 9)?;
        if !(1..=1000).contains(&requests_per_second) {
            return Err(ConfigError::Invalid {
                var: "SYNC_REQUESTS_PER_SECOND",
                reason: "must be between 1 and 1000".into(),
            });
        }
        let shard = Shard {
            index: vars.number("SYNC_SHARD_INDEX", 0)? as u32,
            count: vars.number("SYNC_SHARD_COUNT", 1)? as u32,
        };
        if shard.count == 0 || shard.index >= shard.count {
            return Err(ConfigError::Invalid {
                var: "SYNC_SHARD_INDEX",
                reason: format!("shard {} of {} does not exist", shard.index, shard.count),
            });
        }
        let streamer = StreamerConfig::from_settings(&vars)?;
        let list_budget_percent = vars.number("SYNC_LIST_BUDGET_PERCENT", 25)?.clamp(1, 100) as u32;
        Ok(Self {
            addr: vars.addr("CONNECTOR_ADDR", "127.0.0.1:9102")?,
            provider: ClientConfig {
                requests_per_second: requests_per_second as u32,
                timeout: Duration::from_secs(vars.number("SYNC_PROVIDER_TIMEOUT_SECS", 30)?.max(1)),
                max_retries: vars.number("SYNC_PROVIDER_MAX_RETRIES", 5)?.min(20) as u32,
                ..ClientConfig::new(
                    base_url.trim_end_matches('/'),
                    vars.text_or("ONCE_CLIENT_ID", SIMULATOR_CLIENT_ID),
                    vars.text_or("ONCE_CLIENT_SECRET", SIMULATOR_CLIENT_SECRET),
                )
            },
            request_ack_wait: Duration::from_secs(vars.number("SYNC_REQUEST_ACK_WAIT_SECS", 120)?.max(1)),
            schedule: Schedule {
                poll_interval: Duration::from_secs(vars.number("SYNC_POLL_INTERVAL_SECS", 300)?.max(1)),
                detail_interval: Duration::from_secs(
                    vars.number("SYNC_DETAIL_INTERVAL_SECS", 86_400)?.max(1),
                ),
                first_refresh_usage_only: match vars.text_or("SYNC_FIRST_REFRESH", "full").trim() {
                    "full" => false,
                    "usage" => true,
                    other => {
                        return Err(ConfigError::Invalid {
                            var: "SYNC_FIRST_REFRESH",
                            reason: format!("`{other}` is not full or usage"),
                        })
                    }
                },
                list_budget_percent,
                first_sync_list_budget_percent: (vars
                    .number("SYNC_FIRST_SYNC_LIST_BUDGET_PERCENT", 2)?
                    .clamp(1, 100) as u32)
                    .min(list_budget_percent),
                streamer: !streamer.credentials.is_empty(),
                usage_interval: Some(vars.number(
                    "SYNC_USAGE_INTERVAL_SECS",
                    if streamer.credentials.is_empty() { 3600 } else { 0 },
                )?)
                .filter(|secs| *secs > 0)
                .map(Duration::from_secs),
                usage_days: vars.number("SYNC_USAGE_DAYS", 2)?.clamp(1, 180) as u32,
                background: vars.flag("SYNC_BACKGROUND", true)?,
                job_poll: Duration::from_secs(vars.number("SYNC_JOB_POLL_SECS", 5)?.max(1)),
                network_events: match vars.text_or("SYNC_NETWORK_EVENTS", "auto").trim() {
                    "on" => true,
                    "off" => false,
                    "auto" => streamer.credentials.is_empty(),
                    other => {
                        return Err(ConfigError::Invalid {
                            var: "SYNC_NETWORK_EVENTS",
                            reason: format!("`{other}` is not auto, on or off"),
                        })
                    }
                },
            },
            shard,
            stream: vars.token("NATS_STREAM", relay::wire::DEFAULT_STREAM)?,
            subject_prefix: vars.token("NATS_SUBJECT_PREFIX", relay::wire::DEFAULT_SUBJECT_PREFIX)?,
            consumer_prefix: vars.token("SYNC_CONSUMER_PREFIX", "sync-connector")?,
            sms_source_address: vars.text_or("SYNC_SMS_SOURCE_ADDRESS", "1NCE"),
            db_max_connections: vars.number("DB_MAX_CONNECTIONS", 10)?.max(4) as u32,
            streamer,
            common,
        })
    }
}

impl Shard {
    /// Whether this instance owns the SIM: a stable hash of the ICCID, so every instance
    /// agrees without talking to the others.
    pub fn owns(&self, iccid: &str) -> bool {
        self.count <= 1 || shard_of(iccid, self.count) == self.index
    }
}

impl sync_jobs::ShardOf for Shard {
    fn label(&self) -> String {
        format!("{}/{}", self.index, self.count)
    }

    fn count(&self) -> u32 {
        self.count
    }

    fn owns(&self, iccid: &str) -> bool {
        Shard::owns(self, iccid)
    }
}

/// FNV-1a of the ICCID's digits, modulo the shard count (stable across builds and platforms,
/// unlike `std`'s hasher).
pub fn shard_of(iccid: &str, count: u32) -> u32 {
    (shard_of_hash(iccid) % u64::from(count.max(1))) as u32
}

/// The hash [`shard_of`] takes modulo the shard count (the streamer's inbox stores it, so each
/// shard can claim its SIMs' records in SQL).
pub fn shard_of_hash(iccid: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in iccid.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(platform::config::pairs(vars))
    }

    #[test]
    fn defaults_point_at_the_local_simulator() {
        let config = from(&[]).unwrap();
        assert_eq!(config.addr.to_string(), "127.0.0.1:9102");
        assert_eq!(config.provider.base_url, "http://127.0.0.1:8090");
        assert_eq!(config.provider.client_id, SIMULATOR_CLIENT_ID);
        assert_eq!(config.schedule.poll_interval, Duration::from_secs(300));
        assert_eq!(config.shard, Shard::default());
        assert!(!format!("{:?}", config.provider).contains(SIMULATOR_CLIENT_SECRET));
        assert!(!config.streamer.enabled());
    }

    #[test]
    fn streamer_credentials_are_pairs_and_never_printed() {
        let config = from(&[("STREAMER_BASIC_AUTH", "1nce:old-pw1, 1nce:new-pw2")]).unwrap();
        assert_eq!(config.streamer.credentials, ["1nce:old-pw1", "1nce:new-pw2"]);
        assert!(!format!("{config:?}").contains("pw1"));
    }

    #[test]
    fn network_events_follow_the_receiver_unless_set() {
        assert!(from(&[]).unwrap().schedule.network_events);
        let streamed = [("STREAMER_BASIC_AUTH", "1nce:pw")];
        assert!(!from(&streamed).unwrap().schedule.network_events);
        let forced = [("STREAMER_BASIC_AUTH", "1nce:pw"), ("SYNC_NETWORK_EVENTS", "on")];
        assert!(from(&forced).unwrap().schedule.network_events);
        assert!(
            !from(&[("SYNC_NETWORK_EVENTS", "off")])
                .unwrap()
                .schedule
                .network_events
        );
        assert!(from(&[("SYNC_NETWORK_EVENTS", "sometimes")]).is_err());
    }

    #[test]
    fn change_driven_polling_defaults_follow_the_streamer() {
        let polled = from(&[]).unwrap().schedule;
        assert_eq!(polled.detail_interval, Duration::from_secs(86_400));
        assert_eq!(polled.usage_interval, Some(Duration::from_secs(3600)));
        assert!(!polled.first_refresh_usage_only && !polled.streamer);
        assert_eq!(polled.list_budget_percent, 25);
        assert_eq!(polled.first_sync_list_budget_percent, 2);
        let small_list = from(&[("SYNC_LIST_BUDGET_PERCENT", "1")]).unwrap().schedule;
        assert_eq!(
            small_list.first_sync_list_budget_percent, 1,
            "never above the list's share"
        );
        let streamed = from(&[("STREAMER_BASIC_AUTH", "1nce:pw")]).unwrap().schedule;
        assert!(streamed.streamer);
        assert_eq!(streamed.usage_interval, None, "usage comes from the stream");
        let set = from(&[("SYNC_FIRST_REFRESH", "usage"), ("SYNC_USAGE_INTERVAL_SECS", "0")])
            .unwrap()
            .schedule;
        assert!(set.first_refresh_usage_only);
        assert_eq!(set.usage_interval, None);
        assert!(from(&[("SYNC_FIRST_REFRESH", "some")]).is_err());
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_named() {
        for (var, value) in [
            ("SYNC_POLL_INTERVAL_SECS", "soon"),
            ("SYNC_SHARD_INDEX", "3"),
            ("ONCE_API_URL", "ftp://x"),
            ("SYNC_REQUESTS_PER_SECOND", "0"),
            ("SYNC_BACKGROUND", "maybe"),
            ("STREAMER_BASIC_AUTH", "user:secret,nopassword"),
        ] {
            let error = from(&[(var, value), ("SYNC_SHARD_COUNT", "2")]).unwrap_err();
            assert!(error.to_string().contains(var), "{var}: {error}");
        }
    }

    #[test]
    fn shards_split_the_iccid_space_without_overlap() {
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        let mut per_shard = [0usize; 3];
        for n in 0..3000u64 {
            let iccid = format!("89882806600{n:08}");
            let owners: Vec<u32> = shards
                .iter()
                .filter(|s| s.owns(&iccid))
                .map(|s| s.index)
                .collect();
            assert_eq!(owners.len(), 1, "{iccid} owned by {owners:?}");
            per_shard[owners[0] as usize] += 1;
        }
        assert!(per_shard.iter().all(|&n| n > 800), "{per_shard:?}");
    }
}
