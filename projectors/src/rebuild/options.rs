//! What a rebuild is asked to do ([`RebuildOptions`]: which read models, how) and what it
//! answers ([`RebuildReport`], [`RebuildError`]).

use serde::Serialize;

use super::USAGE_TABLES;
use crate::apply::{ApplyError, UsageRollups};
use crate::metrics::RebuildMetrics;

/// One read model, as `--model` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadModel {
    /// `sims`, `sim_status_history` and `sim_connectivity_history`.
    Sims,
    /// `sim_quotas`.
    Quotas,
    /// `sms_messages`.
    Sms,
    /// `sim_usage` and its hourly and daily rollups, per SIM and for the fleet.
    Usage,
    /// `fleet_history` and its hourly sums: the fleet summary as of any instant.
    Fleet,
}

impl ReadModel {
    pub const ALL: [ReadModel; 5] = [Self::Sims, Self::Quotas, Self::Sms, Self::Usage, Self::Fleet];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sims => "sims",
            Self::Quotas => "quotas",
            Self::Sms => "sms",
            Self::Usage => "usage",
            Self::Fleet => "fleet",
        }
    }

    /// The tables swapped in for this model (usage: none with TimescaleDB, whose continuous
    /// aggregates are refreshed instead).
    pub(super) fn tables(self, rollups: UsageRollups) -> &'static [&'static str] {
        match (self, rollups) {
            (Self::Sims, _) => &["sims", "sim_status_history", "sim_connectivity_history"],
            (Self::Quotas, _) => &["sim_quotas"],
            (Self::Sms, _) => &["sms_messages"],
            (Self::Usage, UsageRollups::Tables) => USAGE_TABLES,
            (Self::Usage, UsageRollups::Managed) => &[],
            (Self::Fleet, _) => &["fleet_history", "fleet_history_hourly", "fleet_history_origin"],
        }
    }
}

/// How the log is replayed into the scratch tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// One fold in memory across the replay, written in bulk ([`bulk`]).
    Bulk,
    /// A transaction per batch, as the live projector applies (the fallback).
    Batches,
}

#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// The projector whose bookkeeping rows are rebuilt (other projectors' rows are kept).
    pub projector: String,
    /// Events read per page of the log (default 20,000: measured faster than 5,000 for the
    /// bulk load, docs/benchmarks.md; a page is about 20 MB in memory, two with the read-ahead).
    pub batch_size: i64,
    /// The read models to rebuild; empty: all of them (and the bookkeeping).
    pub models: Vec<ReadModel>,
    /// The bulk load's bound on rows and versions held in memory (`REBUILD_MAX_ROWS`).
    pub max_rows_in_memory: usize,
    pub method: Method,
    pub metrics: Option<RebuildMetrics>,
}

impl RebuildOptions {
    pub fn new(projector: impl Into<String>) -> Self {
        Self {
            projector: projector.into(),
            batch_size: 20_000,
            models: Vec::new(),
            max_rows_in_memory: 2_000_000,
            method: Method::Bulk,
            metrics: None,
        }
    }

    pub(super) fn all_models(&self) -> bool {
        self.models.is_empty() || ReadModel::ALL.iter().all(|m| self.models.contains(m))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    /// The read models rebuilt.
    pub models: Vec<ReadModel>,
    pub method: Method,
    /// Events replayed (those applied after the swap lock included).
    pub events: u64,
    /// Of them, replayed while holding the swap lock.
    pub events_during_swap: u64,
    /// Events that cannot be applied, parked as the live projector parks them.
    pub parked: u64,
    /// The tables swapped in.
    pub tables: Vec<String>,
    pub last_position: i64,
    /// The TimescaleDB continuous aggregates refreshed after the swap (empty without it).
    pub refreshed: Vec<String>,
    /// Times the bulk load reached its memory bound and let its rows go.
    pub evictions: u64,
    pub duration_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("another rebuild is running")]
    AlreadyRunning,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("reading the event log failed: {0}")]
    Log(#[from] eventstore::StoreError),
    #[error("applying failed: {0}")]
    Apply(#[from] ApplyError),
}
