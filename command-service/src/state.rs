use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use eventstore::EventStore;
use platform::auth::{AuthError, JwtKeys, KeyedRateLimiter, PasswordHasher};
use platform::{Authenticator, Metrics};
use prometheus::IntCounterVec;
use sqlx::PgPool;

use crate::bulk::BulkSettings;
use crate::config::{AllowedOrigins, Config};
use crate::rules::RuleSettings;
use crate::webhooks::WebhookSettings;
use platform::auth::Accounts;

/// The standard top-up product of the provider: what one top-up adds.
#[derive(Debug, Clone, Copy)]
pub struct TopUpProduct {
    pub data_bytes: u64,
    pub sms: u64,
}

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub store: EventStore,
    pub accounts: Accounts,
    pub authenticator: Authenticator,
    pub passwords: PasswordHasher,
    pub login_by_ip: Arc<KeyedRateLimiter>,
    pub login_by_username: Arc<KeyedRateLimiter>,
    pub metrics: Metrics,
    pub commands_total: IntCounterVec,
    /// `webhook_deliveries_total{outcome}`: delivered (a 2xx) or failed, per attempt.
    pub webhook_deliveries_total: IntCounterVec,
    /// `rule_firings_total{outcome}`: applied, refused or failed.
    pub rule_firings_total: IntCounterVec,
    pub topup: TopUpProduct,
    pub max_body_bytes: usize,
    /// Origins besides the request's own allowed on the cookie routes.
    pub allowed_origins: AllowedOrigins,
    /// Wakes the sync connector when a sync job is queued; optional (the connector also polls).
    pub nats: Option<async_nats::Client>,
    pub bulk: BulkSettings,
    /// Wakes this process's bulk worker when a job is submitted here.
    pub bulk_wake: Arc<tokio::sync::Notify>,
    pub webhooks: WebhookSettings,
    pub rules: RuleSettings,
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.authenticator.clone()
    }
}

/// The `command` label values of `commands_total` (the SIM routes' names for their commands).
pub const COMMAND_NAMES: [&str; 7] = [
    "register",
    "update",
    "activate",
    "suspend",
    "terminate",
    "topup",
    "sms",
];

impl AppState {
    pub fn new(config: &Config, pool: PgPool) -> Result<Self, AuthError> {
        let jwt = JwtKeys::from_config(&config.common)?;
        let metrics = Metrics::new();
        let commands_total = IntCounterVec::new(
            prometheus::Opts::new("commands_total", "Commands handled, by command and outcome"),
            &["command", "outcome"],
        )
        .expect("valid metric");
        metrics
            .registry()
            .register(Box::new(commands_total.clone()))
            .expect("metric registered once");
        // Every series from the start (at 0): a rate over a series born with its first
        // command would miss that command, and the alert on accepted commands reads them.
        for command in COMMAND_NAMES {
            for outcome in ["accepted", "refused"] {
                commands_total.with_label_values(&[command, outcome]);
            }
        }
        let counter = |name: &str, help: &str, outcomes: &[&str]| {
            let counter =
                IntCounterVec::new(prometheus::Opts::new(name, help), &["outcome"]).expect("valid metric");
            metrics
                .registry()
                .register(Box::new(counter.clone()))
                .expect("metric registered once");
            for outcome in outcomes {
                counter.with_label_values(&[outcome]);
            }
            counter
        };
        let webhook_deliveries_total = counter(
            "webhook_deliveries_total",
            "Webhook delivery attempts, by outcome",
            &["delivered", "failed"],
        );
        let rule_firings_total = counter(
            "rule_firings_total",
            "Rule firings, by outcome",
            &["applied", "refused", "failed"],
        );
        let per_minute = NonZeroU32::new(config.login_rate_per_minute).unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            store: EventStore::new(pool.clone()).with_snapshots_every(config.common.snapshot_every),
            accounts: Accounts::new(pool.clone()),
            authenticator: Authenticator::new(jwt, pool.clone()),
            passwords: PasswordHasher::with_limits(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
                config.password_hash_wait,
            ),
            login_by_ip: Arc::new(KeyedRateLimiter::new(per_minute, Duration::from_secs(60))),
            login_by_username: Arc::new(KeyedRateLimiter::new(per_minute, Duration::from_secs(60))),
            metrics,
            commands_total,
            webhook_deliveries_total,
            rule_firings_total,
            topup: TopUpProduct {
                data_bytes: config.topup_data_bytes,
                sms: config.topup_sms,
            },
            max_body_bytes: config.max_body_bytes,
            allowed_origins: config.auth_allowed_origins.clone(),
            nats: None,
            bulk: config.bulk.clone(),
            bulk_wake: Arc::new(tokio::sync::Notify::new()),
            webhooks: config.webhooks.clone(),
            rules: config.rules.clone(),
            pool,
        })
    }

    pub fn jwt(&self) -> &JwtKeys {
        &self.authenticator.jwt
    }

    /// Creates `username` as admin when no user exists yet.
    pub async fn bootstrap_admin(&self, username: &str, password: &str) -> Result<(), String> {
        platform::auth::validate_password(password).map_err(|e| e.to_string())?;
        let hash = self.passwords.hash(password).await.map_err(|e| e.to_string())?;
        let created = self
            .accounts
            .bootstrap_admin(username, &hash)
            .await
            .map_err(|e| e.to_string())?;
        if created {
            tracing::info!(username, "bootstrap admin created");
        } else {
            tracing::info!("users exist already; bootstrap admin not created");
        }
        Ok(())
    }

    pub fn count_command(&self, command: &str, outcome: &str) {
        self.commands_total.with_label_values(&[command, outcome]).inc();
    }
}
