//! A local, stateful 1NCE Management API: the platform's default provider (so it runs without
//! credentials) and what every test of the 1NCE client and the sync connector talks to.
//!
//! It answers the provider's paths with the provider's shapes (see `docs/simulator.md` for what
//! differs), keeps a deterministic fleet that changes by itself on a simulated clock when
//! `autonomous` is on, enforces the published rate limits, injects faults on demand, and
//! counts what it received. With `SIMULATOR_STREAM_URL` set it also pushes its usage and
//! events to a receiver as 1NCE's Data Streamer does (`stream`). Test controls are methods here and, for other processes, JSON
//! routes under `/_admin`.

mod config;
mod controls;
mod fleet;
mod format;
mod http;
mod limits;
mod stats;
mod stream;
mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use platform::metrics::Metrics;
use platform::{Shutdown, StartError};
use prometheus::{IntCounter, IntGauge};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{ConfigError, Faults, SimulatorConfig, SlowResponse};
pub use controls::{AccountLimits, Control, Refusals};
pub use fleet::quota::QuotaKind;
pub use format::{iccid_with_luhn, luhn_digit, parse_iccid};
pub use stats::{CallStats, RouteCount};
pub use stream::{StreamConfig, StreamKind, StreamReport, StreamState, StreamStatus, MAX_BATCH};

use fleet::records::{ConnectivityOverride, SmsDirection};
use fleet::Fleet;
use limits::{Limits, Tokens};
use stats::StatsState;
use stream::Streamer;

/// How often the clock task moves the simulated clock.
const CLOCK_TICK: Duration = Duration::from_millis(250);

/// A cheap handle to the shared simulator state.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    config: SimulatorConfig,
    fleet: Mutex<Fleet>,
    tokens: Mutex<Tokens>,
    limits: Mutex<Limits>,
    faults: RwLock<Faults>,
    controls: Mutex<controls::ControlsState>,
    stats: Mutex<StatsState>,
    metrics: Metrics,
    sims_gauge: IntGauge,
    rate_limited_total: IntCounter,
    injected_faults_total: IntCounter,
    streamer: Streamer,
}

/// Locks ignoring poisoning: a panicking test thread must not take the simulator down with it,
/// and every critical section leaves the state consistent before anything can panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Simulator {
    pub fn new(config: SimulatorConfig) -> Self {
        let metrics = Metrics::new();
        let sims_gauge =
            IntGauge::new("simulator_sims", "SIMs in the simulated account").expect("valid metric");
        let rate_limited_total = IntCounter::new(
            "simulator_rate_limited_total",
            "Requests refused by the simulated rate limits",
        )
        .expect("valid metric");
        let injected_faults_total =
            IntCounter::new("simulator_injected_faults_total", "Faults injected into answers")
                .expect("valid metric");
        for metric in [
            Box::new(sims_gauge.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(rate_limited_total.clone()),
            Box::new(injected_faults_total.clone()),
        ] {
            metrics.registry().register(metric).expect("fresh registry");
        }
        let streamer = Streamer::new(metrics.registry());
        let fleet = Fleet::new(&config);
        sims_gauge.set(fleet.len() as i64);
        Self {
            inner: Arc::new(Inner {
                tokens: Mutex::new(Tokens::new(Duration::from_secs(config.token_ttl_secs))),
                limits: Mutex::new(Limits::new(
                    config.sims_rate_limit_per_sec,
                    config.oauth_rate_limit_per_min,
                )),
                faults: RwLock::new(config.faults.clone()),
                controls: Mutex::new(controls::ControlsState::default()),
                stats: Mutex::new(StatsState::default()),
                fleet: Mutex::new(fleet),
                config,
                metrics,
                sims_gauge,
                rate_limited_total,
                injected_faults_total,
                streamer,
            }),
        }
    }

    /// Provider routes, `/_admin` routes and `/health`, `/ready`, `/metrics`.
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }

    /// Binds 127.0.0.1 on a free port and runs [`App`] there (server and clock) until the
    /// answer is dropped.
    pub async fn spawn(config: SimulatorConfig) -> Result<RunningSimulator, StartError> {
        let app = App::build(config, SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = app.addr();
        let simulator = app.simulator().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let shutdown: Shutdown = Box::pin(async {
                let _ = stopped.await;
            });
            if let Err(err) = app.run_until_stopped(shutdown).await {
                tracing::error!(error = %err, "simulator server failed");
            }
        });
        Ok(RunningSimulator {
            addr,
            simulator,
            stop: Some(stop),
            tasks: vec![server],
        })
    }

    /// Runs the simulated clock at `clock_speed` until the task is aborted.
    pub fn start_clock(&self) -> JoinHandle<()> {
        let simulator = self.clone();
        let speed = self.inner.config.clock_speed;
        tokio::spawn(async move {
            let started = Instant::now();
            let mut advanced_ms: i64 = 0;
            let mut tick = tokio::time::interval(CLOCK_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Catch up to real time × speed exactly, whatever the ticks' jitter.
                let target = (started.elapsed().as_secs_f64() * speed * 1000.0) as i64;
                if target > advanced_ms {
                    simulator.advance_chrono(chrono::Duration::milliseconds(target - advanced_ms));
                    advanced_ms = target;
                }
            }
        })
    }

    pub fn config(&self) -> &SimulatorConfig {
        &self.inner.config
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn fleet(&self) -> MutexGuard<'_, Fleet> {
        lock(&self.inner.fleet)
    }

    /// The simulated clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.fleet().now
    }

    /// All ICCIDs (19 digits), sorted.
    pub fn iccids(&self) -> Vec<String> {
        self.fleet().sims().iter().map(|s| s.iccid.to_string()).collect()
    }

    /// Enables or disables a SIM (as the operator would in the portal).
    ///
    /// Like every test control taking an ICCID, panics when it is unknown: that is a bug in the
    /// test. (The `/_admin` routes answer 404 instead.)
    pub fn set_status(&self, iccid: &str, enabled: bool) {
        let change = fleet::SimChange {
            enabled: Some(enabled),
            ..Default::default()
        };
        known(iccid, |id| self.fleet().change(id, &change));
    }

    /// Overrides what `…/status` reports; `None` leaves a field as it is.
    pub fn set_connectivity(
        &self,
        iccid: &str,
        ip_address: Option<String>,
        operator: Option<String>,
        country: Option<String>,
        rat: Option<String>,
    ) {
        let over = ConnectivityOverride {
            operator,
            country,
            rat,
        };
        known(iccid, |id| self.fleet().set_connectivity(id, ip_address, over));
    }

    /// Changes the label and IMEI lock as the customer would in the 1NCE portal (no API
    /// checks); `None` leaves a field as it is.
    pub fn set_details(&self, iccid: &str, label: Option<&str>, imei_lock: Option<bool>) {
        let change = fleet::SimChange {
            enabled: None,
            label: label.map(str::to_owned),
            imei_lock,
        };
        known(iccid, |id| self.fleet().change(id, &change));
    }

    /// The SIM's label and IMEI lock as the provider has them.
    pub fn details(&self, iccid: &str) -> (Option<String>, bool) {
        known(iccid, |id| {
            self.fleet().sim(id).map(|s| (s.label.clone(), s.imei_lock))
        })
    }

    pub fn set_imei(&self, iccid: &str, imei: &str) {
        known(iccid, |id| self.fleet().set_imei(id, imei));
    }

    /// Adds usage on `date` (SMS MO/MT counts) and consumes the quotas by it.
    pub fn add_usage(&self, iccid: &str, date: NaiveDate, data_bytes: u64, sms_mo: u64, sms_mt: u64) {
        known(iccid, |id| {
            self.fleet().add_usage(id, date, data_bytes, sms_mo, sms_mt)
        });
    }

    /// Sets the quota so that `used_percent` of its total is used.
    pub fn consume_quota_to(&self, iccid: &str, kind: QuotaKind, used_percent: f64) {
        known(iccid, |id| self.fleet().consume_quota_to(id, kind, used_percent));
    }

    /// The quota expires now: nothing left, status 2, top-ups refused with 422.
    pub fn expire_quota(&self, iccid: &str, kind: QuotaKind) {
        known(iccid, |id| self.fleet().expire_quota(id, kind));
    }

    /// A mobile-originated SMS from the device; returns the provider's SMS id.
    pub fn receive_mo_sms(&self, iccid: &str, payload: &str) -> u64 {
        known(iccid, |id| {
            let mut fleet = self.fleet();
            let now = fleet.now;
            fleet.receive_mo_sms(id, payload, now)
        })
    }

    /// A new SIM appears in the account (after every existing one in ICCID order).
    pub fn add_sim(&self) -> String {
        let mut fleet = self.fleet();
        let iccid = fleet.add_sim();
        self.inner.sims_gauge.set(fleet.len() as i64);
        iccid.to_string()
    }

    /// Top-up orders placed through the API for this SIM (0 for an unknown ICCID).
    pub fn top_ups(&self, iccid: &str) -> usize {
        parse_iccid(iccid)
            .and_then(|id| self.fleet().sim(id).ok().map(|s| s.api_top_ups))
            .unwrap_or(0)
    }

    /// `(id, payload)` of the MT SMS sent to this SIM through the API, oldest first.
    pub fn mt_sms(&self, iccid: &str) -> Vec<(u64, String)> {
        let Some(id) = parse_iccid(iccid) else {
            return Vec::new();
        };
        let fleet = self.fleet();
        fleet
            .sms_of(id)
            .map(|list| {
                list.iter()
                    .filter(|m| m.direction == SmsDirection::Mt)
                    .map(|m| (m.id, m.payload.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn faults(&self) -> Faults {
        self.inner
            .faults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.inner.faults.write().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    /// Every token issued so far stops working now (the next call answers 401).
    pub fn revoke_tokens(&self) {
        lock(&self.inner.tokens).revoke_all();
    }

    /// The lifetime of tokens issued from now on (and the `expires_in` they report).
    pub fn set_token_ttl(&self, ttl: Duration) {
        lock(&self.inner.tokens).ttl = ttl;
    }

    /// Moves the simulated clock; with `autonomous` on, what happens meanwhile is applied.
    pub fn advance(&self, by: Duration) {
        // Bounded so that the clock cannot overflow.
        let by = by.min(Duration::from_secs(100 * 365 * 86_400));
        self.advance_chrono(chrono::Duration::from_std(by).unwrap_or(chrono::Duration::zero()));
    }

    fn advance_chrono(&self, by: chrono::Duration) {
        let mut fleet = self.fleet();
        fleet.advance(by);
        self.inner.sims_gauge.set(fleet.len() as i64);
    }

    /// The Data Streamer's state per stream (`GET /_admin/stream`).
    pub fn stream_report(&self) -> StreamReport {
        let figures = {
            let fleet = self.fleet();
            StreamKind::ALL.map(|kind| stream::queue_figures(&fleet, kind))
        };
        let streamer = self.streamer();
        let [(usage_queued, usage_dropped), (events_queued, events_dropped)] = figures;
        let config = &self.inner.config.stream;
        StreamReport {
            enabled: config.is_on(),
            url: config.url.clone(),
            usage: streamer.report(StreamKind::Usage, usage_queued, usage_dropped),
            events: streamer.report(StreamKind::Events, events_queued, events_dropped),
        }
    }

    /// Both streams back to ACTIVE, as re-enabling a stream in the 1NCE portal does.
    pub fn reset_stream(&self) {
        for kind in StreamKind::ALL {
            self.streamer().reset(kind);
        }
    }

    pub(crate) fn streamer(&self) -> &Streamer {
        &self.inner.streamer
    }

    pub fn stats(&self) -> CallStats {
        lock(&self.inner.stats).snapshot()
    }

    pub fn reset_stats(&self) {
        *lock(&self.inner.stats) = StatsState::default();
    }

    pub(crate) fn stats_mut(&self) -> MutexGuard<'_, StatsState> {
        lock(&self.inner.stats)
    }

    pub(crate) fn count_injected(&self) {
        self.stats_mut().injected += 1;
        self.inner.injected_faults_total.inc();
    }

    pub(crate) fn count_rate_limited(&self) {
        self.stats_mut().rate_limited += 1;
        self.inner.rate_limited_total.inc();
    }

    pub(crate) fn limits(&self) -> MutexGuard<'_, Limits> {
        lock(&self.inner.limits)
    }

    pub(crate) fn tokens(&self) -> MutexGuard<'_, Tokens> {
        lock(&self.inner.tokens)
    }
}

fn known<T>(iccid: &str, f: impl FnOnce(u64) -> Result<T, fleet::FleetError>) -> T {
    let id = parse_iccid(iccid).unwrap_or_else(|| panic!("not an ICCID: {iccid:?}"));
    f(id).unwrap_or_else(|err| panic!("simulator: {iccid}: {err}"))
}

/// The simulator as a process runs it: built and bound, not yet serving.
pub struct App {
    simulator: Simulator,
    listening: platform::startup::Listening,
}

impl App {
    /// A fresh simulated account, bound to `addr` (port 0: any free port).
    pub async fn build(config: SimulatorConfig, addr: SocketAddr) -> Result<Self, StartError> {
        Ok(Self {
            simulator: Simulator::new(config),
            listening: platform::startup::Listening::bind(addr).await?,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listening.addr()
    }

    /// The shared state (tests drive the account and read what it received through it).
    pub fn simulator(&self) -> &Simulator {
        &self.simulator
    }

    /// Serves the provider's routes and runs the simulated clock (and the Data Streamer's
    /// delivery, when configured) until `shutdown` resolves.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), StartError> {
        let mut tasks = vec![self.simulator.start_clock()];
        if self.simulator.config().stream.is_on() {
            for kind in StreamKind::ALL {
                tasks.push(tokio::spawn(stream::deliver(self.simulator.clone(), kind)));
            }
        }
        // Aborted however this future ends: served, failed, or dropped (a test's server task
        // aborted), so no clock or delivery outlives its server.
        let _tasks = AbortOnDrop(tasks);
        self.listening
            .serve("1NCE simulator", self.simulator.router(), shutdown)
            .await
    }
}

struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// A simulator serving on 127.0.0.1; stops (server and clock) when dropped.
pub struct RunningSimulator {
    pub addr: SocketAddr,
    pub simulator: Simulator,
    stop: Option<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningSimulator {
    /// `http://127.0.0.1:PORT`: the provider's base URL (the client calls `{base}/oauth/token`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}
