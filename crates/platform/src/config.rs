//! Shared environment, with local defaults so nothing has to be set on a development machine.

use std::fmt;

/// The development JWT secret: fine locally, refused in production.
pub const DEV_JWT_SECRET: &str = "dev-only-insecure-jwt-secret-change-me-0123456789";
/// HS256 keys shorter than the hash output weaken the MAC (RFC 7518 §3.2).
pub const MIN_PRODUCTION_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid value for {var}: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("JWT_SECRET must be set to a secret of at least {MIN_PRODUCTION_SECRET_BYTES} bytes (not the development default) when APP_ENV=production")]
    InsecureJwtSecret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

#[derive(Clone, PartialEq, Eq)]
pub struct CommonConfig {
    pub database_url: String,
    pub nats_url: String,
    pub redis_url: String,
    /// `development` (default), `test`, `production`, …
    pub app_env: String,
    pub jwt_secret: String,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub migrate_on_start: bool,
    pub log_format: LogFormat,
    /// `NATS_USER` / `NATS_PASSWORD` / `NATS_CREDS_FILE` (or user info in `NATS_URL`).
    pub nats_credentials: NatsCredentials,
    /// `SNAPSHOT_EVERY`, default 100: the event store snapshots an aggregate every this many
    /// events (0: never; loads then read every event).
    pub snapshot_every: u64,
}

/// How a process proves who it is to NATS. Nothing set: anonymous, as on a development
/// machine whose NATS has no users (`deploy/nats/auth.conf` lists the platform's own).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct NatsCredentials {
    pub user: Option<String>,
    pub password: Option<String>,
    /// A `.creds` file (JWT and NKey seed), for servers run in operator mode.
    pub creds_file: Option<String>,
}

impl NatsCredentials {
    /// `<prefix>NATS_USER`, `<prefix>NATS_PASSWORD`, `<prefix>NATS_CREDS_FILE`: e.g. prefix
    /// `""` for the process, `"RELAY_"` for the relay's own connection.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>, prefix: &str) -> Result<Self, ConfigError> {
        let var = |key: &str| get(&format!("{prefix}{key}")).filter(|v| !v.trim().is_empty());
        let credentials = Self {
            user: var("NATS_USER"),
            password: var("NATS_PASSWORD"),
            creds_file: var("NATS_CREDS_FILE"),
        };
        if credentials.password.is_some() && credentials.user.is_none() {
            return Err(ConfigError::Invalid {
                var: "NATS_PASSWORD",
                reason: format!("{prefix}NATS_PASSWORD is set without {prefix}NATS_USER"),
            });
        }
        Ok(credentials)
    }

    pub fn is_anonymous(&self) -> bool {
        self.user.is_none() && self.creds_file.is_none()
    }

    /// These credentials where set, else `fallback` (a relay without its own uses the process's).
    pub fn or(self, fallback: &Self) -> Self {
        if self.is_anonymous() {
            fallback.clone()
        } else {
            self
        }
    }
}

// Hand-written so the password never reaches a log line.
impl fmt::Debug for NatsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsCredentials")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("creds_file", &self.creds_file)
            .finish()
    }
}

impl Default for CommonConfig {
    fn default() -> Self {
        Self {
            database_url: "postgres://postgres@127.0.0.1:5432/simplatform".into(),
            nats_url: "nats://127.0.0.1:4222".into(),
            redis_url: "redis://127.0.0.1:6379".into(),
            app_env: "development".into(),
            jwt_secret: DEV_JWT_SECRET.into(),
            jwt_issuer: "sim-platform".into(),
            jwt_audience: "sim-platform-api".into(),
            migrate_on_start: true,
            log_format: LogFormat::Json,
            nats_credentials: NatsCredentials::default(),
            snapshot_every: 100,
        }
    }
}

// Hand-written so the secret never reaches a log line through `{:?}`.
impl fmt::Debug for CommonConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommonConfig")
            .field("database_url", &redact_url(&self.database_url))
            .field("nats_url", &redact_url(&self.nats_url))
            .field("nats_credentials", &self.nats_credentials)
            .field("redis_url", &redact_url(&self.redis_url))
            .field("app_env", &self.app_env)
            .field("jwt_secret", &"<redacted>")
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("migrate_on_start", &self.migrate_on_start)
            .field("log_format", &self.log_format)
            .field("snapshot_every", &self.snapshot_every)
            .finish()
    }
}

/// `scheme://user:password@host` → `scheme://user:***@host`, for logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

impl CommonConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads from any lookup, so tests don't have to mutate the (process-global) environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        // An empty variable counts as unset: `FOO= cmd` is a common way to "unset" in scripts.
        let var = |key: &str| get(key).filter(|v| !v.trim().is_empty());
        let cfg = Self {
            database_url: var("DATABASE_URL").unwrap_or(d.database_url),
            nats_url: var("NATS_URL").unwrap_or(d.nats_url),
            redis_url: var("REDIS_URL").unwrap_or(d.redis_url),
            app_env: var("APP_ENV")
                .map(|v| v.trim().to_ascii_lowercase())
                .unwrap_or(d.app_env),
            jwt_secret: var("JWT_SECRET").unwrap_or(d.jwt_secret),
            jwt_issuer: var("JWT_ISSUER").unwrap_or(d.jwt_issuer),
            jwt_audience: var("JWT_AUDIENCE").unwrap_or(d.jwt_audience),
            migrate_on_start: match var("MIGRATE_ON_START") {
                None => d.migrate_on_start,
                Some(v) => parse_bool("MIGRATE_ON_START", &v)?,
            },
            log_format: match var("LOG_FORMAT") {
                None => d.log_format,
                Some(v) => parse_log_format(&v)?,
            },
            nats_credentials: NatsCredentials::from_lookup(&get, "")?,
            snapshot_every: match var("SNAPSHOT_EVERY") {
                None => d.snapshot_every,
                Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
                    var: "SNAPSHOT_EVERY",
                    reason: format!("{v:?} is not a whole number"),
                })?,
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// A configuration for tests: defaults, the given database, `APP_ENV=test`.
    pub fn for_tests(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            app_env: "test".into(),
            ..Self::default()
        }
    }

    pub fn is_production(&self) -> bool {
        self.app_env == "production" || self.app_env == "prod"
    }

    /// Refuses a configuration that would be unsafe to run in production.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.is_production()
            && (self.jwt_secret == DEV_JWT_SECRET || self.jwt_secret.len() < MIN_PRODUCTION_SECRET_BYTES)
        {
            return Err(ConfigError::InsecureJwtSecret);
        }
        Ok(())
    }
}

/// Reads a service's own settings from a lookup (the environment, or a map in tests). An empty
/// variable counts as unset; a malformed one is an error that names it.
/// A lookup over fixed pairs, for configurations read in tests (`Config::from_lookup(pairs(…))`)
/// without touching the process-global environment.
pub fn pairs(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |key: &str| map.get(key).cloned()
}

pub struct Settings<F: Fn(&str) -> Option<String>> {
    get: F,
}

impl<F: Fn(&str) -> Option<String>> Settings<F> {
    pub fn new(get: F) -> Self {
        Self { get }
    }

    pub fn text(&self, name: &str) -> Option<String> {
        (self.get)(name).filter(|v| !v.trim().is_empty())
    }

    pub fn text_or(&self, name: &str, default: &str) -> String {
        self.text(name).unwrap_or_else(|| default.to_owned())
    }

    pub fn number(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        match self.text(name) {
            None => Ok(default),
            Some(value) => value.trim().parse().map_err(|_| ConfigError::Invalid {
                var: name,
                reason: format!("{value:?} is not a whole number"),
            }),
        }
    }

    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.text(name) {
            None => Ok(default),
            Some(value) => parse_bool(name, &value),
        }
    }

    /// A single NATS subject token (a stream name, a subject prefix, a consumer name).
    pub fn token(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        let value = self.text_or(name, default);
        if value.contains(['.', '*', '>', ' ']) {
            return Err(ConfigError::Invalid {
                var: name,
                reason: format!("{value:?} must be a single NATS token"),
            });
        }
        Ok(value)
    }

    /// A listen address, `host:port`.
    pub fn addr(&self, name: &'static str, default: &str) -> Result<std::net::SocketAddr, ConfigError> {
        let value = self.text_or(name, default);
        value.trim().parse().map_err(|_| ConfigError::Invalid {
            var: name,
            reason: format!("{value:?} is not host:port"),
        })
    }
}

fn parse_bool(var: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(ConfigError::Invalid {
            var,
            reason: format!("expected true/false, got {other:?}"),
        }),
    }
}

fn parse_log_format(v: &str) -> Result<LogFormat, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "json" => Ok(LogFormat::Json),
        "pretty" | "text" => Ok(LogFormat::Pretty),
        other => Err(ConfigError::Invalid {
            var: "LOG_FORMAT",
            reason: format!("expected json or pretty, got {other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<CommonConfig, ConfigError> {
        CommonConfig::from_lookup(pairs(vars))
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let cfg = from(&[]).unwrap();
        assert_eq!(cfg.database_url, "postgres://postgres@127.0.0.1:5432/simplatform");
        assert_eq!(cfg.nats_url, "nats://127.0.0.1:4222");
        assert_eq!(cfg.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(cfg.app_env, "development");
        assert_eq!(cfg.jwt_secret, DEV_JWT_SECRET);
        assert_eq!(cfg.jwt_issuer, "sim-platform");
        assert_eq!(cfg.jwt_audience, "sim-platform-api");
        assert!(cfg.migrate_on_start);
        assert_eq!(cfg.log_format, LogFormat::Json);
    }

    #[test]
    fn overrides_are_read() {
        let cfg = from(&[
            ("DATABASE_URL", "postgres://u:p@db/x"),
            ("MIGRATE_ON_START", "false"),
            ("LOG_FORMAT", "pretty"),
            ("JWT_ISSUER", "iss"),
        ])
        .unwrap();
        assert_eq!(cfg.database_url, "postgres://u:p@db/x");
        assert!(!cfg.migrate_on_start);
        assert_eq!(cfg.log_format, LogFormat::Pretty);
        assert_eq!(cfg.jwt_issuer, "iss");
    }

    #[test]
    fn invalid_values_are_errors() {
        assert!(matches!(
            from(&[("MIGRATE_ON_START", "maybe")]),
            Err(ConfigError::Invalid {
                var: "MIGRATE_ON_START",
                ..
            })
        ));
        assert!(matches!(
            from(&[("LOG_FORMAT", "xml")]),
            Err(ConfigError::Invalid {
                var: "LOG_FORMAT",
                ..
            })
        ));
    }

    #[test]
    fn nats_credentials_from_the_environment() {
        let cfg = from(&[("NATS_USER", "projectors"), ("NATS_PASSWORD", "pw")]).unwrap();
        assert_eq!(cfg.nats_credentials.user.as_deref(), Some("projectors"));
        assert_eq!(cfg.nats_credentials.password.as_deref(), Some("pw"));
        assert!(from(&[]).unwrap().nats_credentials.is_anonymous());
        assert!(from(&[("NATS_PASSWORD", "pw")]).is_err());
        let get = |key: &str| (key == "RELAY_NATS_USER").then(|| "relay".to_owned());
        let relay = NatsCredentials::from_lookup(get, "RELAY_").unwrap();
        assert_eq!(
            relay.clone().or(&cfg.nats_credentials).user.as_deref(),
            Some("relay")
        );
        assert_eq!(
            NatsCredentials::default()
                .or(&cfg.nats_credentials)
                .user
                .as_deref(),
            Some("projectors")
        );
    }

    #[test]
    fn production_refuses_default_or_short_secret() {
        assert_eq!(
            from(&[("APP_ENV", "production")]),
            Err(ConfigError::InsecureJwtSecret)
        );
        assert_eq!(
            from(&[("APP_ENV", "production"), ("JWT_SECRET", "short-secret")]),
            Err(ConfigError::InsecureJwtSecret)
        );
        let strong = "x".repeat(32);
        let cfg = from(&[("APP_ENV", "Production"), ("JWT_SECRET", &strong)]).unwrap();
        assert!(cfg.is_production());
        // Outside production the default is accepted.
        assert!(from(&[("APP_ENV", "development")]).is_ok());
    }

    #[test]
    fn debug_never_prints_the_secret_or_passwords() {
        let cfg = CommonConfig {
            jwt_secret: "super-secret-value".into(),
            database_url: "postgres://app:hunter2@db:5432/x".into(),
            nats_url: "nats://svc:natspass@nats:4222".into(),
            nats_credentials: NatsCredentials {
                user: Some("relay".into()),
                password: Some("relay-secret".into()),
                creds_file: None,
            },
            ..CommonConfig::for_tests("unused")
        };
        let printed = format!("{cfg:?}");
        assert!(!printed.contains("super-secret-value"));
        assert!(!printed.contains("hunter2"));
        assert!(!printed.contains("natspass"));
        assert!(!printed.contains("relay-secret"));
        assert!(printed.contains("relay"));
        assert!(printed.contains("postgres://app:***@db:5432/x"));
    }
}
