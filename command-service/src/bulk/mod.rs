//! Bulk jobs in the command API: what a job asks for ([`spec`]), which SIMs it acts on
//! ([`target`]), the worker that runs the items ([`worker`]) and the provider outcomes of the
//! requests it made ([`outcomes`]). The tables are `crates/bulk-jobs`'s.

pub mod outcomes;
pub mod spec;
pub mod target;
pub mod worker;

use std::time::Duration;

use bulk_jobs::queue::{Applied, ClaimedItem, ClaimedJob, Outcome};
use domain::ids::Iccid;
use domain::DomainError;
use eventstore::{CommandContext, EventMetadata, Idempotency};
use platform::ApiError;
use sha2::{Digest, Sha256};
use sync_jobs::SyncJobs;

use crate::actions::Performed;
use crate::state::AppState;
use spec::{BulkAction, BulkParams};

/// The bulk jobs' settings (read once with the rest of the configuration).
#[derive(Debug, Clone)]
pub struct BulkSettings {
    /// `BULK_WORKER`, default true: this process runs bulk items (false: it only accepts jobs).
    pub worker: bool,
    /// `BULK_ITEMS_PER_SEC`, default 50: commands per second, per worker. Provider actions only
    /// record requests; the connector carries them out within 1NCE's own limit.
    pub items_per_sec: u32,
    /// `BULK_LEASE_SECS`, default 30: a claimed item not recorded within this is claimed again.
    pub lease: Duration,
    /// `BULK_MAX_ITEMS`, default 100,000: SIMs per job.
    pub max_items: usize,
    /// `BULK_MAX_BODY_BYTES`, default 16 MiB: the body limit of submissions and imports.
    pub max_body_bytes: usize,
    /// How often an idle worker looks for work (a submission in this process wakes it at once).
    pub poll: Duration,
}

impl Default for BulkSettings {
    fn default() -> Self {
        Self {
            worker: true,
            items_per_sec: 50,
            lease: Duration::from_secs(30),
            max_items: 100_000,
            max_body_bytes: 16 * 1024 * 1024,
            poll: Duration::from_secs(1),
        }
    }
}

/// An item is tried at most this often (a command that keeps failing for want of the
/// database, say); then it ends as `failed`.
const MAX_ATTEMPTS: i32 = 5;

/// Runs one item of `job` (its command, or with `dry_run` its decision) and says how it ended;
/// `None` when it should be tried again later (the database is away).
pub async fn run_item(state: &AppState, job: &ClaimedJob, item: &ClaimedItem) -> Option<Outcome> {
    let refused = |error: ApiError| Outcome::Refused {
        code: error.code.into_owned(),
        message: error.message,
    };
    if item.attempts > MAX_ATTEMPTS {
        return Some(Outcome::Failed {
            code: "ATTEMPTS_EXHAUSTED".into(),
            message: format!("gave up after {MAX_ATTEMPTS} attempts"),
        });
    }
    let iccid = match Iccid::parse(&item.iccid) {
        Ok(iccid) => iccid,
        Err(error) => {
            return Some(Outcome::Refused {
                code: error.code().into(),
                message: error.to_string(),
            })
        }
    };
    let Some(action) = BulkAction::parse(&job.action) else {
        return Some(Outcome::Failed {
            code: "UNKNOWN_ACTION".into(),
            message: format!("this version cannot run {}", job.action),
        });
    };
    let params: BulkParams = serde_json::from_value(job.params.clone()).unwrap_or_default();
    if action == BulkAction::Sync {
        return Some(sync(state, job, item, &iccid).await);
    }
    let sim_action = match params.action_for(action, item.input.as_ref()) {
        Ok(sim_action) => sim_action,
        Err(error) => return Some(refused(error)),
    };
    let ctx = item_context(job, item);
    match sim_action.perform(state, &iccid, &ctx, job.dry_run).await {
        Ok(Performed::WouldApply { events }) => Some(Outcome::WouldApply {
            message: (events == 0).then(|| "nothing to change".to_owned()),
        }),
        Ok(performed) => {
            let request_id = performed.request_id();
            let Performed::Executed {
                executed,
                aggregate_type,
                ..
            } = performed
            else {
                return None;
            };
            let nothing_new =
                matches!(&executed, eventstore::Executed::New { events, .. } if events.is_empty());
            let answer = executed.answer();
            Some(Outcome::Applied(Applied {
                aggregate_type: aggregate_type.to_owned(),
                aggregate_id: answer.aggregate_id.clone(),
                request_id,
                version: answer.version as i64,
                position: answer.position,
                message: nothing_new.then(|| "nothing to change".to_owned()),
            }))
        }
        // Unavailable: leave it to the next claim (the lease runs out), counted in attempts.
        Err(error) if error.status.is_server_error() => {
            tracing::warn!(job = %job.id, seq = item.seq, code = %error.code, "bulk item failed; it will be tried again");
            None
        }
        Err(error) if error.code == "CONCURRENCY_CONFLICT" => Some(Outcome::Failed {
            code: error.code.into_owned(),
            message: error.message,
        }),
        Err(error) => Some(refused(error)),
    }
}

/// The item's command context: on behalf of whoever submitted the job, in the job's
/// correlation, with an idempotency key of (job, item), so a retried item is answered as
/// the first time and never applied twice. The scope cannot collide with a principal's own
/// keys (those are scoped `user:…` or `api_key:…`).
fn item_context(job: &ClaimedJob, item: &ClaimedItem) -> CommandContext {
    let mut metadata = EventMetadata::new(job.created_by.clone());
    metadata.correlation_id = job.id;
    metadata.causation_id = job.id;
    CommandContext {
        metadata,
        expected_version: None,
        idempotency: (!job.dry_run).then(|| Idempotency {
            scope: format!("bulk-job:{}", job.id),
            key: item.seq.to_string(),
            request_hash: crate::commands::fingerprint(&(&job.action, &job.params, &item.iccid, &item.input)),
            response_status: 202,
        }),
    }
}

/// A sync of one SIM: a sync job with an id derived from (job, item), queued once.
async fn sync(state: &AppState, job: &ClaimedJob, item: &ClaimedItem, iccid: &Iccid) -> Outcome {
    if job.dry_run {
        return Outcome::WouldApply { message: None };
    }
    let digest = Sha256::digest(format!("bulk-job:{}:{}", job.id, item.seq));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let sync_id = uuid::Builder::from_custom_bytes(bytes).into_uuid();
    match SyncJobs::new(state.pool.clone())
        .queue_as(sync_id, iccid.as_str(), &job.created_by)
        .await
    {
        Ok(queued) => {
            if queued {
                crate::routes::sync::wake_connector(state, sync_id).await;
            }
            Outcome::Applied(Applied {
                aggregate_type: "sync_job".into(),
                aggregate_id: sync_id.to_string(),
                request_id: None,
                version: 0,
                position: 0,
                message: Some(format!("/api/v1/sync-jobs/{sync_id}")),
            })
        }
        Err(error) => Outcome::Failed {
            code: "DATABASE_ERROR".into(),
            message: error.to_string(),
        },
    }
}
