//! The Data Streamer's settings (`SIMULATOR_STREAM_*`): where to push, with which Basic auth,
//! and how 1NCE-like the delivery is (batch size, interval, duplicates, reordering, retries).

use std::fmt;
use std::time::Duration;

use crate::config::{invalid, opt, parse, parse_bool, ConfigError};

/// 1NCE's documented maximum of records per POST.
pub const MAX_BATCH: usize = 3000;

#[derive(Clone, PartialEq)]
pub struct StreamConfig {
    /// The receiver (`POST` of a JSON array); `None` = the simulator does not stream.
    pub url: Option<String>,
    /// `user`, `password` for HTTP Basic authentication (required when `url` is set, as the
    /// 1NCE portal requires the field).
    pub basic_auth: Option<(String, String)>,
    /// Records per POST, 1..=3000.
    pub batch_max: usize,
    /// Pause between POSTs while records are waiting.
    pub interval: Duration,
    /// Share of delivered batches sent once more, unchanged (same record ids), 0..=1.
    pub duplicate_rate: f64,
    /// Share of batches whose records are shuffled, and (drawn again) of batches that keep
    /// some of their records back for the next batch, 0..=1.
    pub reorder_rate: f64,
    /// Failed attempts after the first that a batch gets before the stream goes FAILED.
    pub retries: u32,
    /// The first retry's delay; each further one doubles, up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Per POST.
    pub timeout: Duration,
    /// Records kept per stream while the receiver does not take them; beyond, the oldest are
    /// dropped (and counted).
    pub buffer_max: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            url: None,
            basic_auth: None,
            batch_max: MAX_BATCH,
            interval: Duration::from_millis(1000),
            duplicate_rate: 0.01,
            reorder_rate: 0.01,
            retries: 8,
            backoff_initial: Duration::from_millis(1000),
            backoff_max: Duration::from_millis(60_000),
            timeout: Duration::from_millis(10_000),
            buffer_max: 200_000,
        }
    }
}

// Hand-written so the password never reaches a log line.
impl fmt::Debug for StreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamConfig")
            .field("url", &self.url)
            .field("basic_auth_user", &self.basic_auth.as_ref().map(|(u, _)| u))
            .field("batch_max", &self.batch_max)
            .field("interval", &self.interval)
            .field("duplicate_rate", &self.duplicate_rate)
            .field("reorder_rate", &self.reorder_rate)
            .field("retries", &self.retries)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("timeout", &self.timeout)
            .field("buffer_max", &self.buffer_max)
            .finish()
    }
}

impl StreamConfig {
    pub fn is_on(&self) -> bool {
        self.url.is_some()
    }

    /// The stream configured to push to `url` with `user:password`, other settings default.
    pub fn pushing_to(url: impl Into<String>, user: &str, password: &str) -> Self {
        Self {
            url: Some(url.into()),
            basic_auth: Some((user.to_owned(), password.to_owned())),
            ..Self::default()
        }
    }

    /// The delay before retry `n` (1 = the first retry).
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(30));
        self.backoff_initial.saturating_mul(factor).min(self.backoff_max)
    }

    pub(crate) fn from_lookup(var: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let ms = |key: &'static str, default: Duration| -> Result<Duration, ConfigError> {
            Ok(Duration::from_millis(opt(var, key, default.as_millis() as u64)?))
        };
        // Several comma-separated pairs (as the receiver's STREAMER_BASIC_AUTH takes them, for
        // rotation) name the same receiver: the first is used.
        let basic_auth = match var("SIMULATOR_STREAM_BASIC_AUTH") {
            None => None,
            Some(pairs) => match pairs.split(',').next().unwrap_or("").trim().split_once(':') {
                Some((user, password)) if !user.is_empty() => Some((user.to_owned(), password.to_owned())),
                _ => return Err(invalid("SIMULATOR_STREAM_BASIC_AUTH", "expected user:password")),
            },
        };
        let reorder_rate = match var("SIMULATOR_STREAM_REORDER") {
            None => d.reorder_rate,
            Some(v) => match parse::<f64>("SIMULATOR_STREAM_REORDER", &v) {
                Ok(rate) => rate,
                // `true` reorders every batch, `false` none.
                Err(_) => f64::from(u8::from(parse_bool("SIMULATOR_STREAM_REORDER", &v)?)),
            },
        };
        let config = Self {
            url: var("SIMULATOR_STREAM_URL").map(|u| u.trim().to_owned()),
            basic_auth,
            batch_max: opt(var, "SIMULATOR_STREAM_BATCH_MAX", d.batch_max)?,
            interval: ms("SIMULATOR_STREAM_INTERVAL_MS", d.interval)?,
            duplicate_rate: opt(var, "SIMULATOR_STREAM_DUPLICATE_RATE", d.duplicate_rate)?,
            reorder_rate,
            retries: opt(var, "SIMULATOR_STREAM_RETRIES", d.retries)?,
            backoff_initial: ms("SIMULATOR_STREAM_BACKOFF_INITIAL_MS", d.backoff_initial)?,
            backoff_max: ms("SIMULATOR_STREAM_BACKOFF_MAX_MS", d.backoff_max)?,
            timeout: ms("SIMULATOR_STREAM_TIMEOUT_MS", d.timeout)?,
            buffer_max: opt(var, "SIMULATOR_STREAM_BUFFER_MAX", d.buffer_max)?,
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    "SIMULATOR_STREAM_URL",
                    "must be an http:// or https:// URL",
                ));
            }
            if self.basic_auth.is_none() {
                return Err(invalid(
                    "SIMULATOR_STREAM_BASIC_AUTH",
                    "required with SIMULATOR_STREAM_URL (user:password; 1NCE requires it too)",
                ));
            }
        }
        if !(1..=MAX_BATCH).contains(&self.batch_max) {
            return Err(invalid("SIMULATOR_STREAM_BATCH_MAX", "between 1 and 3000"));
        }
        for (var, rate) in [
            ("SIMULATOR_STREAM_DUPLICATE_RATE", self.duplicate_rate),
            ("SIMULATOR_STREAM_REORDER", self.reorder_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(invalid(var, "a rate between 0 and 1"));
            }
        }
        if self.interval.is_zero() || self.backoff_initial.is_zero() || self.timeout.is_zero() {
            return Err(invalid(
                "SIMULATOR_STREAM_INTERVAL_MS",
                "intervals, backoff and timeout must be > 0",
            ));
        }
        if self.backoff_max < self.backoff_initial {
            return Err(invalid(
                "SIMULATOR_STREAM_BACKOFF_MAX_MS",
                "must not be below SIMULATOR_STREAM_BACKOFF_INITIAL_MS",
            ));
        }
        if self.buffer_max == 0 {
            return Err(invalid("SIMULATOR_STREAM_BUFFER_MAX", "must be > 0"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<StreamConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        StreamConfig::from_lookup(&|k: &str| map.get(k).cloned())
    }

    #[test]
    fn off_by_default_and_read_from_variables() {
        let d = read(&[]).unwrap();
        assert!(!d.is_on());
        assert_eq!(d.batch_max, 3000);
        let c = read(&[
            ("SIMULATOR_STREAM_URL", "http://127.0.0.1:9102/1nce/data-streamer"),
            (
                "SIMULATOR_STREAM_BASIC_AUTH",
                "1nce:s3cret:with-colon,old:previous",
            ),
            ("SIMULATOR_STREAM_BATCH_MAX", "500"),
            ("SIMULATOR_STREAM_REORDER", "true"),
            ("SIMULATOR_STREAM_DUPLICATE_RATE", "0.5"),
            ("SIMULATOR_STREAM_BACKOFF_INITIAL_MS", "100"),
        ])
        .unwrap();
        assert!(c.is_on());
        assert_eq!(c.basic_auth, Some(("1nce".into(), "s3cret:with-colon".into())));
        assert_eq!((c.batch_max, c.reorder_rate, c.duplicate_rate), (500, 1.0, 0.5));
        assert_eq!(c.backoff(1), Duration::from_millis(100));
        assert_eq!(c.backoff(3), Duration::from_millis(400));
        assert_eq!(c.backoff(40), Duration::from_secs(60), "capped");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn refuses_bad_settings() {
        let url = ("SIMULATOR_STREAM_URL", "http://receiver/x");
        let auth = ("SIMULATOR_STREAM_BASIC_AUTH", "u:p");
        assert!(read(&[url]).is_err(), "auth is required");
        assert!(read(&[url, ("SIMULATOR_STREAM_BASIC_AUTH", "no-colon")]).is_err());
        assert!(read(&[("SIMULATOR_STREAM_URL", "ftp://x"), auth]).is_err());
        assert!(read(&[url, auth, ("SIMULATOR_STREAM_BATCH_MAX", "3001")]).is_err());
        assert!(read(&[url, auth, ("SIMULATOR_STREAM_BATCH_MAX", "0")]).is_err());
        assert!(read(&[url, auth, ("SIMULATOR_STREAM_DUPLICATE_RATE", "1.5")]).is_err());
        assert!(read(&[url, auth, ("SIMULATOR_STREAM_REORDER", "maybe")]).is_err());
        assert!(read(&[url, auth, ("SIMULATOR_STREAM_BACKOFF_MAX_MS", "10")]).is_err());
    }
}
