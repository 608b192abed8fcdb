use std::net::SocketAddr;
use std::time::Duration;

use platform::config::{CommonConfig, ConfigError, Settings};

pub use crate::browser_session::AllowedOrigins;
use crate::bulk::BulkSettings;
use crate::rules::RuleSettings;
use crate::webhooks::WebhookSettings;

/// The command API's settings, read once at start.
#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// `COMMAND_ADDR`, default 127.0.0.1:8081.
    pub addr: SocketAddr,
    /// `BOOTSTRAP_ADMIN_USERNAME` / `BOOTSTRAP_ADMIN_PASSWORD`: created when no user exists.
    pub bootstrap_admin: Option<(String, String)>,
    /// `MAX_BODY_BYTES`, default 64 KiB: commands are small.
    pub max_body_bytes: usize,
    /// `LOGIN_RATE_PER_MINUTE` per client IP and per username, default 10.
    pub login_rate_per_minute: u32,
    /// `TOPUP_DATA_MB` and `TOPUP_SMS`: the volume of the provider's standard top-up product.
    pub topup_data_bytes: u64,
    pub topup_sms: u64,
    /// `DB_MAX_CONNECTIONS`, default 20.
    pub db_max_connections: u32,
    /// `PASSWORD_HASH_WAIT_MS`: how long a login may wait for a hashing slot, default 2000.
    pub password_hash_wait: Duration,
    /// `BULK_*`: the bulk jobs' worker and limits.
    pub bulk: BulkSettings,
    /// `WEBHOOK_*`: the webhook dispatcher and the targets it may reach.
    pub webhooks: WebhookSettings,
    /// `RULE_ENGINE*`: the rule engine.
    pub rules: RuleSettings,
    /// `AUTH_ALLOWED_ORIGINS`: origins, besides the request's own, whose pages may use the
    /// refresh cookie (comma-separated, e.g. a dashboard served from another host); default
    /// none.
    pub auth_allowed_origins: AllowedOrigins,
    /// `BACKLOG_METRICS_INTERVAL_SECS`: how often the webhook and bulk-job gauges are read
    /// from the database, default 30.
    pub backlog_metrics_interval: Duration,
}

/// 1NCE states volumes in MB, decimal (its usage strings such as "0.002803" are whole bytes
/// only at 10^6 bytes per MB); bytes are stored as integers.
pub const BYTES_PER_MB: u64 = 1_000_000;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars = Settings::new(|name: &str| std::env::var(name).ok());
        let common = CommonConfig::from_env()?;
        let addr = vars.addr("COMMAND_ADDR", "127.0.0.1:8081")?;
        let bootstrap_admin = match (
            vars.text("BOOTSTRAP_ADMIN_USERNAME"),
            vars.text("BOOTSTRAP_ADMIN_PASSWORD"),
        ) {
            (Some(user), Some(password)) => Some((user, password)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    var: "BOOTSTRAP_ADMIN_USERNAME",
                    reason: "set both BOOTSTRAP_ADMIN_USERNAME and BOOTSTRAP_ADMIN_PASSWORD, or neither"
                        .into(),
                })
            }
        };
        Ok(Self {
            addr,
            bootstrap_admin,
            max_body_bytes: vars.number("MAX_BODY_BYTES", 64 * 1024)? as usize,
            login_rate_per_minute: vars.number("LOGIN_RATE_PER_MINUTE", 10)?.max(1) as u32,
            topup_data_bytes: vars.number("TOPUP_DATA_MB", 500)? * BYTES_PER_MB,
            topup_sms: vars.number("TOPUP_SMS", 250)?,
            db_max_connections: vars.number("DB_MAX_CONNECTIONS", 20)?.max(2) as u32,
            password_hash_wait: Duration::from_millis(vars.number("PASSWORD_HASH_WAIT_MS", 2000)?),
            bulk: bulk_settings(&vars)?,
            webhooks: webhook_settings(&vars)?,
            rules: RuleSettings {
                engine: vars.flag("RULE_ENGINE", true)?,
                poll: Duration::from_millis(vars.number("RULE_ENGINE_POLL_MS", 500)?.max(10)),
                lease: Duration::from_secs(vars.number("RULE_ENGINE_LEASE_SECS", 30)?.max(2)),
            },
            auth_allowed_origins: AllowedOrigins::parse(&vars.text_or("AUTH_ALLOWED_ORIGINS", "")).map_err(
                |reason| ConfigError::Invalid {
                    var: "AUTH_ALLOWED_ORIGINS",
                    reason,
                },
            )?,
            backlog_metrics_interval: Duration::from_secs(
                vars.number("BACKLOG_METRICS_INTERVAL_SECS", 30)?.max(1),
            ),
            common,
        })
    }

    /// Settings for a test: everything local, the given database, a random port.
    pub fn for_tests(database_url: &str) -> Self {
        Self {
            common: CommonConfig::for_tests(database_url),
            addr: "127.0.0.1:0".parse().expect("literal address"),
            bootstrap_admin: None,
            max_body_bytes: 64 * 1024,
            login_rate_per_minute: 10,
            topup_data_bytes: 500 * BYTES_PER_MB,
            topup_sms: 250,
            db_max_connections: 20,
            password_hash_wait: Duration::from_secs(5),
            bulk: BulkSettings::default(),
            webhooks: WebhookSettings::default(),
            rules: RuleSettings::default(),
            auth_allowed_origins: AllowedOrigins::default(),
            backlog_metrics_interval: Duration::from_millis(200),
        }
    }
}

fn bulk_settings<F: Fn(&str) -> Option<String>>(vars: &Settings<F>) -> Result<BulkSettings, ConfigError> {
    let defaults = BulkSettings::default();
    Ok(BulkSettings {
        worker: vars.flag("BULK_WORKER", defaults.worker)?,
        items_per_sec: vars
            .number("BULK_ITEMS_PER_SEC", u64::from(defaults.items_per_sec))?
            .clamp(1, 100_000) as u32,
        lease: Duration::from_secs(vars.number("BULK_LEASE_SECS", defaults.lease.as_secs())?.max(2)),
        max_items: vars.number("BULK_MAX_ITEMS", defaults.max_items as u64)?.max(1) as usize,
        max_body_bytes: vars.number("BULK_MAX_BODY_BYTES", defaults.max_body_bytes as u64)? as usize,
        poll: defaults.poll,
    })
}

fn webhook_settings<F: Fn(&str) -> Option<String>>(
    vars: &Settings<F>,
) -> Result<WebhookSettings, ConfigError> {
    let defaults = WebhookSettings::default();
    let millis = |name: &'static str, default: Duration| -> Result<Duration, ConfigError> {
        Ok(Duration::from_millis(
            vars.number(name, default.as_millis() as u64)?,
        ))
    };
    Ok(WebhookSettings {
        worker: vars.flag("WEBHOOK_WORKER", defaults.worker)?,
        timeout: millis("WEBHOOK_TIMEOUT_MS", defaults.timeout)?
            .clamp(Duration::from_millis(100), Duration::from_secs(60)),
        max_attempts: vars
            .number("WEBHOOK_MAX_ATTEMPTS", defaults.max_attempts as u64)?
            .clamp(1, 1_000) as i32,
        backoff: millis("WEBHOOK_BACKOFF_MS", defaults.backoff)?,
        backoff_max: Duration::from_secs(
            vars.number("WEBHOOK_BACKOFF_MAX_SECS", defaults.backoff_max.as_secs())?,
        ),
        allow_private: vars.flag("WEBHOOK_ALLOW_PRIVATE", defaults.allow_private)?,
        lease: Duration::from_secs(
            vars.number("WEBHOOK_LEASE_SECS", defaults.lease.as_secs())?
                .max(2),
        ),
        poll: millis("WEBHOOK_POLL_MS", defaults.poll)?.max(Duration::from_millis(10)),
        batch: defaults.batch,
    })
}
