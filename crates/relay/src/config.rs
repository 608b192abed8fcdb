use std::time::Duration;

use crate::error::RelayError;

/// The shortest duplicate window accepted: a relay that crashes and restarts republishes
/// from its checkpoint, and JetStream drops those repeats only while it remembers their ids.
pub const MIN_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How the relay publishes. `Default` gives the contract's stream and subjects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// The JetStream stream (`NATS_STREAM`, default `SIM_EVENTS`).
    pub stream: String,
    /// Subjects are `<prefix>.v1.<iccid>.<event_type>`; the stream captures `<prefix>.v1.>`
    /// (`NATS_SUBJECT_PREFIX`, default `sim`).
    pub subject_prefix: String,
    /// Events read from the log per batch (`RELAY_BATCH_SIZE`, default 256).
    pub batch_size: usize,
    /// Publish acknowledgements awaited at once (default 64).
    pub max_in_flight: usize,
    /// When the log has nothing new, the relay waits for a commit's notification
    /// (`LISTEN sim_events`), or this long at most (default 250 ms): the fallback poll, for
    /// notifications lost while the listening connection was made again.
    pub poll_interval: Duration,
    /// How often a standby tries to take the lock, and the pause after an error (default 1 s).
    pub lock_retry_interval: Duration,
    /// The stream's duplicate window when the relay creates it (default 10 min, at least 2).
    pub duplicate_window: Duration,
    /// Every database call of the relay gives up after this (default 5 s).
    pub query_timeout: Duration,
    /// While the stream does not match the store, how often the relay looks again (default
    /// 5 s), so that it resumes by itself once an operator reset the stream.
    pub mismatch_recheck_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            stream: crate::wire::DEFAULT_STREAM.to_owned(),
            subject_prefix: crate::wire::DEFAULT_SUBJECT_PREFIX.to_owned(),
            batch_size: 256,
            max_in_flight: 64,
            poll_interval: Duration::from_millis(250),
            lock_retry_interval: Duration::from_secs(1),
            duplicate_window: Duration::from_secs(600),
            query_timeout: Duration::from_secs(5),
            mismatch_recheck_interval: Duration::from_secs(5),
        }
    }
}

impl RelayConfig {
    /// The defaults, overridden by `NATS_STREAM`, `NATS_SUBJECT_PREFIX` and `RELAY_BATCH_SIZE`.
    pub fn from_env() -> Result<Self, RelayError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`RelayConfig::from_env`] from any lookup (a service's one reading of its settings).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, RelayError> {
        let mut config = Self::default();
        if let Some(stream) = lookup("NATS_STREAM").filter(|v| !v.is_empty()) {
            config.stream = stream;
        }
        if let Some(prefix) = lookup("NATS_SUBJECT_PREFIX").filter(|v| !v.is_empty()) {
            config.subject_prefix = prefix;
        }
        if let Some(size) = lookup("RELAY_BATCH_SIZE").filter(|v| !v.is_empty()) {
            config.batch_size = size
                .parse()
                .map_err(|_| RelayError::Config(format!("RELAY_BATCH_SIZE is not a number: {size:?}")))?;
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), RelayError> {
        let bad_token = |s: &str| {
            s.is_empty() || s.contains(|c: char| c == '.' || c == '*' || c == '>' || c.is_whitespace())
        };
        if bad_token(&self.stream) || self.stream.contains(['/', '\\']) {
            return Err(RelayError::Config(format!(
                "invalid stream name {:?}",
                self.stream
            )));
        }
        if self.subject_prefix.is_empty() || self.subject_prefix.split('.').any(bad_token) {
            return Err(RelayError::Config(format!(
                "invalid subject prefix {:?}",
                self.subject_prefix
            )));
        }
        if self.batch_size == 0 || self.max_in_flight == 0 {
            return Err(RelayError::Config(
                "batch size and acknowledgements in flight must be at least 1".to_owned(),
            ));
        }
        if self.duplicate_window < MIN_DUPLICATE_WINDOW {
            return Err(RelayError::Config(format!(
                "duplicate window {:?} is shorter than {:?}",
                self.duplicate_window, MIN_DUPLICATE_WINDOW
            )));
        }
        Ok(())
    }

    /// The stream as the relay creates it: file storage, the duplicate window, every version-1
    /// subject under the prefix, no limits (the stream holds the whole log).
    pub fn stream_config(&self) -> async_nats::jetstream::stream::Config {
        async_nats::jetstream::stream::Config {
            name: self.stream.clone(),
            subjects: vec![self.stream_subjects()],
            storage: async_nats::jetstream::stream::StorageType::File,
            duplicate_window: self.duplicate_window,
            ..Default::default()
        }
    }

    /// What the stream captures: every version-1 subject under the prefix.
    pub fn stream_subjects(&self) -> String {
        format!("{}.v1.>", self.subject_prefix)
    }

    /// The subject of one event, or `None` when its ICCID or type is not a valid subject token.
    pub fn subject(&self, iccid: &str, event_type: &str) -> Option<String> {
        crate::wire::subject(&self.subject_prefix, iccid, event_type)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<RelayConfig, RelayError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        RelayConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = from(&[]).unwrap();
        assert_eq!(config, RelayConfig::default());
        assert_eq!(config.stream, "SIM_EVENTS");
        assert_eq!(config.stream_subjects(), "sim.v1.>");
        assert_eq!(
            config.subject("8988303000000000001", "SimActivated").as_deref(),
            Some("sim.v1.8988303000000000001.SimActivated")
        );
    }

    #[test]
    fn environment_overrides() {
        let config = from(&[
            ("NATS_STREAM", "OTHER"),
            ("NATS_SUBJECT_PREFIX", "fleet"),
            ("RELAY_BATCH_SIZE", "10"),
        ])
        .unwrap();
        assert_eq!(config.stream, "OTHER");
        assert_eq!(config.subject("1", "X").as_deref(), Some("fleet.v1.1.X"));
        assert_eq!(config.batch_size, 10);
    }

    #[test]
    fn refuses_bad_values() {
        assert!(from(&[("RELAY_BATCH_SIZE", "many")]).is_err());
        assert!(from(&[("RELAY_BATCH_SIZE", "0")]).is_err());
        assert!(from(&[("NATS_STREAM", "a.b")]).is_err());
        assert!(from(&[("NATS_SUBJECT_PREFIX", "sim.>")]).is_err());
        let short_window = RelayConfig {
            duplicate_window: Duration::from_secs(60),
            ..RelayConfig::default()
        };
        assert!(short_window.validate().is_err());
        assert_eq!(RelayConfig::default().subject("", "X"), None);
        assert_eq!(RelayConfig::default().subject("1", "a.b"), None);
    }
}
