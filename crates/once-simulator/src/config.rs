//! The simulator's configuration: read once from `SIMULATOR_*` variables, with defaults that need
//! nothing set on a development machine.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use platform::config::ConfigError;

use crate::stream::StreamConfig;

#[derive(Clone)]
pub struct SimulatorConfig {
    /// SIMs generated at start.
    pub sims: usize,
    /// Seed of everything generated (fleet, usage profiles, autonomous behaviour).
    pub seed: u64,
    /// Simulated seconds per real second while the clock runs (60 = a simulated minute per second).
    pub clock_speed: f64,
    /// When off, nothing changes by itself: only API calls and test controls change state.
    pub autonomous: bool,
    pub client_id: String,
    pub client_secret: String,
    pub token_ttl_secs: u64,
    /// `/v1/sims…` requests per second for the account (0 = no limit).
    pub sims_rate_limit_per_sec: u32,
    /// `/oauth/token` requests per minute (0 = no limit).
    pub oauth_rate_limit_per_min: u32,
    /// The data quota every generated SIM starts with, in MB (1 MB = 1,000,000 bytes).
    pub data_quota_mb: u64,
    /// The SMS quota every generated SIM starts with.
    pub sms_quota: u64,
    /// What the standard top-up product adds.
    pub topup_data_mb: u64,
    pub topup_sms: u64,
    /// The simulated clock's start; `None` = the real time at start.
    pub start_time: Option<DateTime<Utc>>,
    pub faults: Faults,
    /// The Data Streamer: pushes the fleet's usage and events to a receiver (off by default).
    pub stream: StreamConfig,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            sims: 1000,
            seed: 1,
            clock_speed: 1.0,
            autonomous: true,
            client_id: "simulator".into(),
            client_secret: "simulator-secret".into(),
            token_ttl_secs: 3600,
            sims_rate_limit_per_sec: 10,
            oauth_rate_limit_per_min: 600,
            data_quota_mb: 500,
            sms_quota: 250,
            topup_data_mb: 500,
            topup_sms: 250,
            start_time: None,
            faults: Faults::default(),
            stream: StreamConfig::default(),
        }
    }
}

// Hand-written so the client secret never reaches a log line through `{:?}`.
impl fmt::Debug for SimulatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatorConfig")
            .field("sims", &self.sims)
            .field("seed", &self.seed)
            .field("clock_speed", &self.clock_speed)
            .field("autonomous", &self.autonomous)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("sims_rate_limit_per_sec", &self.sims_rate_limit_per_sec)
            .field("oauth_rate_limit_per_min", &self.oauth_rate_limit_per_min)
            .field("data_quota_mb", &self.data_quota_mb)
            .field("sms_quota", &self.sms_quota)
            .field("topup_data_mb", &self.topup_data_mb)
            .field("topup_sms", &self.topup_sms)
            .field("start_time", &self.start_time)
            .field("faults", &self.faults)
            .field("stream", &self.stream)
            .finish()
    }
}

/// Faults injected into provider answers. Shares are probabilities in 0..=1, drawn once per
/// request in this order: 429, 500, truncated, malformed (so their sum should stay ≤ 1).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Faults {
    pub error_429_share: f64,
    pub error_500_share: f64,
    /// Added before the request is handled.
    pub latency_ms: u64,
    pub truncated_share: f64,
    /// An HTML gateway page with 502, or (GET only) a 200 with broken JSON.
    pub malformed_share: f64,
    /// Delays the answer AFTER the handler has changed state.
    pub slow_response: Option<SlowResponse>,
    /// Apply the faults above to `/oauth/token` too (otherwise only to `/v1`).
    pub oauth_faults: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SlowResponse {
    /// Applies to requests whose path contains this (e.g. "/topup").
    pub path_contains: String,
    pub delay_ms: u64,
}

impl SimulatorConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads from any lookup, so tests don't have to mutate the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        // An empty variable counts as unset.
        let var = |key: &str| get(key).filter(|v| !v.trim().is_empty());
        let slow_response = match (var("SIMULATOR_FAULT_SLOW_PATH"), var("SIMULATOR_FAULT_SLOW_MS")) {
            (None, None) => None,
            (Some(path_contains), Some(ms)) => Some(SlowResponse {
                path_contains,
                delay_ms: parse("SIMULATOR_FAULT_SLOW_MS", &ms)?,
            }),
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    var: "SIMULATOR_FAULT_SLOW_PATH",
                    reason: "set both SIMULATOR_FAULT_SLOW_PATH and SIMULATOR_FAULT_SLOW_MS, or neither"
                        .into(),
                })
            }
        };
        let faults = Faults {
            error_429_share: opt(&var, "SIMULATOR_FAULT_429_SHARE", 0.0)?,
            error_500_share: opt(&var, "SIMULATOR_FAULT_500_SHARE", 0.0)?,
            latency_ms: opt(&var, "SIMULATOR_FAULT_LATENCY_MS", 0)?,
            truncated_share: opt(&var, "SIMULATOR_FAULT_TRUNCATED_SHARE", 0.0)?,
            malformed_share: opt(&var, "SIMULATOR_FAULT_MALFORMED_SHARE", 0.0)?,
            slow_response,
            oauth_faults: match var("SIMULATOR_FAULT_OAUTH") {
                None => false,
                Some(v) => parse_bool("SIMULATOR_FAULT_OAUTH", &v)?,
            },
        };
        let config = Self {
            sims: opt(&var, "SIMULATOR_SIMS", d.sims)?,
            seed: opt(&var, "SIMULATOR_SEED", d.seed)?,
            clock_speed: opt(&var, "SIMULATOR_CLOCK_SPEED", d.clock_speed)?,
            autonomous: match var("SIMULATOR_AUTONOMOUS") {
                None => d.autonomous,
                Some(v) => parse_bool("SIMULATOR_AUTONOMOUS", &v)?,
            },
            client_id: var("SIMULATOR_CLIENT_ID").unwrap_or(d.client_id),
            client_secret: var("SIMULATOR_CLIENT_SECRET").unwrap_or(d.client_secret),
            token_ttl_secs: opt(&var, "SIMULATOR_TOKEN_TTL_SECS", d.token_ttl_secs)?,
            sims_rate_limit_per_sec: opt(&var, "SIMULATOR_RATE_LIMIT", d.sims_rate_limit_per_sec)?,
            oauth_rate_limit_per_min: opt(&var, "SIMULATOR_OAUTH_RATE_LIMIT", d.oauth_rate_limit_per_min)?,
            data_quota_mb: opt(&var, "SIMULATOR_DATA_QUOTA_MB", d.data_quota_mb)?,
            sms_quota: opt(&var, "SIMULATOR_SMS_QUOTA", d.sms_quota)?,
            topup_data_mb: opt(&var, "SIMULATOR_TOPUP_DATA_MB", d.topup_data_mb)?,
            topup_sms: opt(&var, "SIMULATOR_TOPUP_SMS", d.topup_sms)?,
            start_time: match var("SIMULATOR_START_TIME") {
                None => None,
                Some(v) => Some(
                    DateTime::parse_from_rfc3339(v.trim())
                        .map_err(|e| invalid("SIMULATOR_START_TIME", e))?
                        .with_timezone(&Utc),
                ),
            },
            faults,
            stream: StreamConfig::from_lookup(&var)?,
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.clock_speed.is_finite() && self.clock_speed >= 0.0) {
            return Err(invalid("SIMULATOR_CLOCK_SPEED", "must be a finite number ≥ 0"));
        }
        if self.sims > 10_000_000 {
            return Err(invalid("SIMULATOR_SIMS", "at most 10,000,000"));
        }
        if self.client_id.contains(':') {
            return Err(invalid(
                "SIMULATOR_CLIENT_ID",
                "must not contain ':' (HTTP Basic)",
            ));
        }
        if self.data_quota_mb == 0 || self.sms_quota == 0 {
            return Err(invalid("SIMULATOR_DATA_QUOTA_MB", "quotas must be > 0"));
        }
        self.faults.validate()?;
        self.stream.validate()
    }
}

impl Faults {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let shares = [
            ("SIMULATOR_FAULT_429_SHARE", self.error_429_share),
            ("SIMULATOR_FAULT_500_SHARE", self.error_500_share),
            ("SIMULATOR_FAULT_TRUNCATED_SHARE", self.truncated_share),
            ("SIMULATOR_FAULT_MALFORMED_SHARE", self.malformed_share),
        ];
        for (var, share) in shares {
            if !(0.0..=1.0).contains(&share) {
                return Err(invalid(var, "a share must be between 0 and 1"));
            }
        }
        if shares.iter().map(|(_, s)| s).sum::<f64>() > 1.0 + 1e-9 {
            return Err(invalid(
                "SIMULATOR_FAULT_429_SHARE",
                "the fault shares add up to more than 1",
            ));
        }
        Ok(())
    }
}

pub(crate) fn invalid(var: &'static str, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        var,
        reason: reason.to_string(),
    }
}

pub(crate) fn parse<T: std::str::FromStr>(var: &'static str, v: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    v.trim().parse().map_err(|e| invalid(var, e))
}

pub(crate) fn opt<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    match lookup(var) {
        None => Ok(default),
        Some(v) => parse(var, &v),
    }
}

pub(crate) fn parse_bool(var: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(invalid(var, format!("expected true or false, got {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_without_variables() {
        let c = SimulatorConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(c.sims, 1000);
        assert_eq!(c.client_id, "simulator");
        assert_eq!(c.sims_rate_limit_per_sec, 10);
        assert!(c.autonomous);
        assert_eq!(c.faults, Faults::default());
    }

    #[test]
    fn reads_variables_and_refuses_bad_ones() {
        let c = SimulatorConfig::from_lookup(lookup(&[
            ("SIMULATOR_SIMS", "250"),
            ("SIMULATOR_AUTONOMOUS", "false"),
            ("SIMULATOR_FAULT_429_SHARE", "0.2"),
            ("SIMULATOR_FAULT_SLOW_PATH", "/topup"),
            ("SIMULATOR_FAULT_SLOW_MS", "3000"),
        ]))
        .unwrap();
        assert_eq!(c.sims, 250);
        assert!(!c.autonomous);
        assert_eq!(c.faults.error_429_share, 0.2);
        assert_eq!(c.faults.slow_response.unwrap().delay_ms, 3000);
        assert!(SimulatorConfig::from_lookup(lookup(&[("SIMULATOR_SIMS", "many")])).is_err());
        assert!(SimulatorConfig::from_lookup(lookup(&[("SIMULATOR_FAULT_500_SHARE", "1.5")])).is_err());
        assert!(SimulatorConfig::from_lookup(lookup(&[("SIMULATOR_FAULT_SLOW_MS", "5")])).is_err());
        let secret = format!("{:?}", SimulatorConfig::default());
        assert!(!secret.contains("simulator-secret"), "{secret}");
    }
}
