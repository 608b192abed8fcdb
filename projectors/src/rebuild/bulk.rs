//! The rebuild's fast path: one fold held in memory across the whole replay. The scratch
//! tables start empty, so nothing is read back: every SIM, quota and message row and every
//! aggregate's version lives in memory and is written once, at the end, in bulk; the
//! append-only rows (status history, usage) are written page by page; the hourly and daily
//! rollups are summed from the usage rows in one statement at the end. The events go through
//! the live projector's own guard and fold ([`Applier::plan`], [`Fold`]), so the result is the
//! live projection's, row for row.
//!
//! Memory stays bounded: past `max_rows` rows and versions held, everything is written and
//! let go, and from then on each page loads the rows and versions it needs that are not held.

use std::collections::BTreeSet;

use eventstore::StoredEvent;
use sqlx::PgConnection;

use crate::apply::{Applier, ApplyError, Guard, Planned, UsageRollups, Versions};
use crate::fold::{Fold, Needs};

/// What a page did, for the report.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct PageCounts {
    pub events: u64,
    pub parked: u64,
}

pub(super) struct BulkFold {
    applier: Applier,
    fold: Fold,
    versions: Versions,
    /// Versions moved (or parked) since they were last written.
    dirty_versions: BTreeSet<(String, String)>,
    /// Whether rows were let go: pages must then load what they need.
    evicted: bool,
    max_rows: usize,
    /// Times everything was written and let go (for the report).
    pub evictions: u64,
}

impl BulkFold {
    /// What the appends do with rollups: on plain Postgres nothing (summed at the end); with
    /// TimescaleDB, late usage rows (inserted into the live hypertable) are registered for a
    /// refresh.
    fn appends(&self) -> Option<UsageRollups> {
        (self.applier.rollups == UsageRollups::Managed).then_some(UsageRollups::Managed)
    }

    pub fn new(applier: Applier, max_rows: usize) -> Self {
        Self {
            applier,
            fold: Fold::default(),
            versions: Versions::new(),
            dirty_versions: BTreeSet::new(),
            evicted: false,
            max_rows: max_rows.max(1),
            evictions: 0,
        }
    }

    /// Folds one page of the log (in log order) into the held rows; writes its status changes
    /// and usage rows, and parks what the guard parks.
    pub async fn apply_page(
        &mut self,
        conn: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<PageCounts, ApplyError> {
        if self.evicted {
            let missing: Vec<StoredEvent> = events
                .iter()
                .filter(|e| {
                    !self
                        .versions
                        .contains_key(&(e.aggregate_type.clone(), e.aggregate_id.clone()))
                })
                .cloned()
                .collect();
            if !missing.is_empty() {
                let loaded = self.applier.lock_versions(conn, &missing).await?;
                self.versions.extend(loaded);
            }
        }
        let plan = self
            .applier
            .plan(conn, events, &mut self.versions, Guard::Live)
            .await?;
        if self.evicted {
            let mut needs = Needs::default();
            for planned in &plan.planned {
                if let Planned::Apply(event, decoded) = planned {
                    needs.add(event, decoded);
                }
            }
            self.fold.load_missing(conn, &needs).await?;
        }
        self.dirty_versions.extend(plan.changed.into_keys());
        let mut parked = 0;
        for planned in plan.planned {
            match planned {
                Planned::Apply(event, decoded) => self.fold.apply(&event, decoded),
                Planned::Park(event, reason) => {
                    self.applier.park(conn, &event, &reason).await?;
                    self.fold.mark_parked(&event.iccid);
                    self.dirty_versions
                        .insert((event.aggregate_type.clone(), event.aggregate_id.clone()));
                    parked += 1;
                }
            }
        }
        self.fold.write_appends(conn, self.appends()).await?;
        if self.fold.rows_held() + self.versions.len() > self.max_rows {
            self.write(conn).await?;
            self.fold.forget_rows();
            self.versions.clear();
            self.evicted = true;
            self.evictions += 1;
            tracing::info!(
                max_rows = self.max_rows,
                "rebuild: the rows held reached the bound; written and let go"
            );
        }
        Ok(PageCounts {
            events: events.len() as u64 - parked,
            parked,
        })
    }

    /// Writes every held row that changed and every version that moved.
    pub async fn write(&mut self, conn: &mut PgConnection) -> Result<(), ApplyError> {
        self.fold.write_rows(conn).await?;
        self.fold.write_appends(conn, self.appends()).await?;
        let keys: Vec<(String, String)> = std::mem::take(&mut self.dirty_versions).into_iter().collect();
        for chunk in keys.chunks(10_000) {
            let mut types = Vec::with_capacity(chunk.len());
            let mut ids = Vec::with_capacity(chunk.len());
            let mut versions = Vec::with_capacity(chunk.len());
            let mut parked = Vec::with_capacity(chunk.len());
            for key in chunk {
                let (version, is_parked) = self.versions.get(key).copied().unwrap_or((0, false));
                types.push(key.0.as_str());
                ids.push(key.1.as_str());
                versions.push(version);
                parked.push(is_parked);
            }
            sqlx::query(
                "INSERT INTO projection_versions (projector, aggregate_type, aggregate_id, version, parked) \
                 SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::int8[], $5::bool[]) \
                 ON CONFLICT (projector, aggregate_type, aggregate_id) DO UPDATE \
                 SET version = EXCLUDED.version, parked = EXCLUDED.parked",
            )
            .bind(&self.applier.projector)
            .bind(types)
            .bind(ids)
            .bind(versions)
            .bind(parked)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}
