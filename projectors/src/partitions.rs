//! Partitioned projection: the log applied in `PROJECTOR_PARTITIONS` partitions by SIM
//! (`eventstore::partition_of`), in parallel, shared by the replicas of the process.
//!
//! - Each partition is a [`Projector`] of its own: a durable consumer `<name>-p<k>` and a
//!   checkpoint row of the same name. NATS 2.9 allows one filter subject per consumer and the
//!   subjects (`sim.v1.<iccid>.<event_type>`, the wire contract) carry no partition, so every
//!   partition's consumer filters `sim.v1.>`: a message wakes the partition up, which scans a
//!   bounded range of the log, keeps its own SIMs' events (`eventstore::partition_of`) and
//!   moves its checkpoint over the others'. Other partitions' messages are acknowledged unchecked (their
//!   own partition checks them).
//! - A replica runs the partitions it holds a Postgres advisory lock for, on a connection of
//!   its own ([`relay::lock`]: heartbeat, idle and keepalive timeouts, so the lock of a dead or
//!   paused replica is released). Each replica holds at most its fair share,
//!   ceil(partitions / replicas alive), replicas being alive while their heartbeat row in
//!   `projector_replicas` is fresh; it releases what exceeds its share (a replica joined) and
//!   takes free partitions up to it (one died or left).
//! - The lock only spreads the work: two replicas applying one partition at once (a paused
//!   one that resumes before noticing it lost the lock) apply in turn on its checkpoint row
//!   and its version guard, and never apply an event twice.

use std::collections::BTreeMap;
use std::time::Duration;

use eventstore::Share;
use readmodel::Cache;
use relay::lock::{self, Leadership};
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::checkpoint;
use crate::metrics::ProjectorMetrics;
use crate::projector::{sleep_or_shutdown, Projector, ProjectorError, ProjectorSettings};

/// How often a replica beats, counts the replicas alive and rebalances.
pub const REBALANCE_EVERY: Duration = Duration::from_secs(1);
/// A replica whose heartbeat is older than this is not counted.
pub const REPLICA_TIMEOUT: Duration = Duration::from_secs(3);
/// The lock connection's query timeout.
const LOCK_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// A partition this replica holds: its lock and its projector.
struct Held {
    name: String,
    leadership: Leadership,
    stop: watch::Sender<bool>,
    worker: JoinHandle<Result<(), ProjectorError>>,
}

pub struct Partitions {
    pool: PgPool,
    nats: async_nats::Client,
    cache: Cache,
    metrics: ProjectorMetrics,
    settings: ProjectorSettings,
    partitions: u32,
    replica: Uuid,
    lock_options: PgConnectOptions,
}

impl Partitions {
    pub fn new(
        pool: PgPool,
        nats: async_nats::Client,
        cache: Cache,
        metrics: ProjectorMetrics,
        settings: ProjectorSettings,
        partitions: u32,
    ) -> Self {
        let lock_options = (*pool.connect_options())
            .clone()
            .application_name(&format!("projector-lock:{}", settings.name));
        Self {
            pool,
            nats,
            cache,
            metrics,
            settings,
            partitions: partitions.max(1),
            replica: Uuid::new_v4(),
            lock_options,
        }
    }

    /// Records the layout, then holds and runs this replica's share of the partitions until
    /// `shutdown`. Ends with an error only when another replica recorded another layout.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), ProjectorError> {
        let group = self.settings.name.clone();
        loop {
            match checkpoint::set_layout(&self.pool, &group, self.partitions).await {
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "cannot record the partition layout; retrying");
                    if sleep_or_shutdown(Duration::from_secs(1), &mut shutdown).await {
                        return Ok(());
                    }
                }
            }
        }
        tracing::info!(projector = %group, partitions = self.partitions, replica = %self.replica, "partitioned projection");
        let mut held: BTreeMap<u32, Held> = BTreeMap::new();
        let outcome = loop {
            let outcome = self.rebalance(&mut held).await;
            self.metrics.partitions_held.set(held.len() as i64);
            if let Err(error) = outcome {
                break Err(error);
            }
            if sleep_or_shutdown(REBALANCE_EVERY, &mut shutdown).await {
                break Ok(());
            }
        };
        for (_, partition) in std::mem::take(&mut held) {
            let _ = stop(partition, &self.metrics).await;
        }
        self.metrics.partitions_held.set(0);
        if let Err(error) =
            sqlx::query("DELETE FROM projector_replicas WHERE projector = $1 AND replica = $2")
                .bind(&group)
                .bind(self.replica)
                .execute(&self.pool)
                .await
        {
            tracing::debug!(%error, "cannot remove this replica's heartbeat (it expires)");
        }
        outcome
    }

    /// One round: the heartbeat, the share, what to let go and what to take.
    async fn rebalance(&self, held: &mut BTreeMap<u32, Held>) -> Result<(), ProjectorError> {
        // Partitions whose projector stopped or whose lock is gone.
        let ended: Vec<u32> = held
            .iter()
            .filter(|(_, p)| p.worker.is_finished() || p.leadership.is_lost())
            .map(|(k, _)| *k)
            .collect();
        for index in ended {
            let partition = held.remove(&index).expect("listed above");
            let lost = partition.leadership.is_lost();
            match stop(partition, &self.metrics).await {
                Err(ProjectorError::LayoutChanged(error)) => {
                    return Err(ProjectorError::LayoutChanged(error))
                }
                Err(error) => tracing::warn!(%error, partition = index, "partition stopped; taking it again"),
                Ok(()) if lost => {
                    tracing::warn!(partition = index, "partition lock lost; its projector stopped")
                }
                Ok(()) => {}
            }
        }
        let alive = match self.beat().await {
            Ok(alive) => alive.max(1),
            Err(error) => {
                // Without Postgres nothing can be applied anyway; keep what is held.
                tracing::debug!(%error, "heartbeat failed");
                return Ok(());
            }
        };
        let share = self.partitions.div_ceil(alive as u32);
        while held.len() > share as usize {
            let (index, partition) = held.pop_last().expect("more than the share");
            tracing::info!(
                partition = index,
                share,
                alive,
                "releasing a partition to another replica"
            );
            let _ = stop(partition, &self.metrics).await;
        }
        if held.len() < share as usize {
            // Start looking at a place of this replica's own, so replicas do not all queue for
            // the same lock first.
            let offset = (self.replica.as_u128() % u128::from(self.partitions)) as u32;
            for step in 0..self.partitions {
                if held.len() >= share as usize {
                    break;
                }
                let index = (offset + step) % self.partitions;
                if held.contains_key(&index) {
                    continue;
                }
                match self.take(index).await {
                    Ok(Some(partition)) => {
                        tracing::info!(partition = index, share, alive, "took a partition");
                        held.insert(index, partition);
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::debug!(%error, partition = index, "cannot try the partition lock");
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes this replica's heartbeat and counts the replicas alive.
    async fn beat(&self) -> Result<i64, sqlx::Error> {
        sqlx::query(
            "INSERT INTO projector_replicas (projector, replica, seen_at) VALUES ($1, $2, now()) \
             ON CONFLICT (projector, replica) DO UPDATE SET seen_at = now()",
        )
        .bind(&self.settings.name)
        .bind(self.replica)
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "DELETE FROM projector_replicas WHERE projector = $1 AND seen_at < now() - interval '1 hour'",
        )
        .bind(&self.settings.name)
        .execute(&self.pool)
        .await?;
        sqlx::query_scalar(
            "SELECT count(*) FROM projector_replicas WHERE projector = $1 AND seen_at > now() - make_interval(secs => $2)",
        )
        .bind(&self.settings.name)
        .bind(REPLICA_TIMEOUT.as_secs_f64())
        .fetch_one(&self.pool)
        .await
    }

    /// The partition's lock if free, and its projector started.
    async fn take(&self, index: u32) -> Result<Option<Held>, ProjectorError> {
        let settings = self.settings.for_share(Share {
            index,
            of: self.partitions,
        });
        let name = settings.partition();
        let mut conn = lock::connect(&self.lock_options, LOCK_QUERY_TIMEOUT)
            .await
            .map_err(|e| ProjectorError::Consumer(e.to_string()))?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('projector:' || $1))")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| ProjectorError::Consumer(e.to_string()))?;
        if !locked {
            let _ = sqlx::Connection::close(conn).await;
            return Ok(None);
        }
        let leadership = Leadership::new(conn, LOCK_QUERY_TIMEOUT);
        let name = name.clone();
        let projector = match Projector::new(
            self.pool.clone(),
            self.nats.clone(),
            self.cache.clone(),
            self.metrics.clone(),
            settings,
        )
        .await
        {
            Ok(projector) => projector,
            Err(error) => {
                leadership.release().await;
                return Err(ProjectorError::Consumer(error.to_string()));
            }
        };
        let (stop, shutdown) = watch::channel(false);
        let worker = tokio::spawn(async move { projector.run(shutdown).await });
        Ok(Some(Held {
            name,
            leadership,
            stop,
            worker,
        }))
    }
}

/// Stops the partition's projector (it finishes the batch in hand) and releases its lock.
async fn stop(partition: Held, metrics: &ProjectorMetrics) -> Result<(), ProjectorError> {
    let _ = partition.stop.send(true);
    let outcome = match tokio::time::timeout(Duration::from_secs(30), partition.worker).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(join)) => Err(ProjectorError::Consumer(join.to_string())),
        Err(_) => Err(ProjectorError::Consumer("did not stop within 30 s".into())),
    };
    partition.leadership.release().await;
    // After the projector's last lag refresh.
    metrics.forget_partition(&partition.name);
    outcome
}
