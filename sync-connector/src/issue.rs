//! Turns what the connector saw into commands on the aggregates, through the same event store
//! and the same domain rules as the command API.
//!
//! Every command carries a deterministic idempotency key: the aggregate, the version it was
//! decided against, and a fingerprint of the observation (not of the time it was made). Two
//! instances, or a retry after a crash, that decide on the same observation at the same version
//! store it once; the same observation at a later version (Enabled → Disabled → Enabled) is a
//! new key, so the last change is not mistaken for the first.

use domain::{Aggregate, DomainError, Iccid, QuotaKind};
use eventstore::{
    handle_in_turn, CommandContext, EventMetadata, EventStore, ExecuteError, Executed, Idempotency,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::SyncError;
use crate::metrics::SyncMetrics;

/// The actor of everything the connector records.
pub const ACTOR: &str = "connector:sync";
const IDEMPOTENCY_SCOPE: &str = "connector:sync";
const MAX_ATTEMPTS: usize = 8;

/// Why a command is issued: the causing event of an operator request, or an observation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cause {
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
}

#[derive(Clone)]
pub struct Issuer {
    store: EventStore,
    metrics: SyncMetrics,
}

impl Issuer {
    pub fn new(store: EventStore, metrics: SyncMetrics) -> Self {
        Self { store, metrics }
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// Decides `commands` in turn against the aggregate's current state and stores their events
    /// in one transaction; returns how many events were stored (0: nothing was new).
    /// `observation` is what the commands were derived from, for the idempotency key.
    pub async fn issue<A>(
        &self,
        aggregate_id: &str,
        iccid: &Iccid,
        commands: Vec<A::Command>,
        observation: &impl Serialize,
        cause: Cause,
    ) -> Result<usize, SyncError>
    where
        A: Aggregate,
        A::Command: Clone,
    {
        self.issue_with::<A>(aggregate_id, iccid, observation, cause, |_| commands.clone())
            .await
    }

    /// [`Issuer::issue`] with commands that depend on the aggregate's current state (a day's
    /// usage: the larger of the polled and the recorded total).
    pub async fn issue_with<A>(
        &self,
        aggregate_id: &str,
        iccid: &Iccid,
        observation: &impl Serialize,
        cause: Cause,
        decide: impl Fn(&A) -> Vec<A::Command>,
    ) -> Result<usize, SyncError>
    where
        A: Aggregate,
    {
        let fingerprint = fingerprint(observation);
        let key = |version: u64| format!("sync:{}:{aggregate_id}:v{version}:{fingerprint}", A::TYPE);
        self.issue_decided::<A>(aggregate_id, iccid.as_str(), &fingerprint, cause, decide, key)
            .await
    }

    /// For a source that names each observation once (a Data Streamer record's id): `key` is
    /// that name alone, so the observation is stored at most once whatever the aggregate's
    /// version (a retry after a crash finds the key and stores nothing), and the commands may
    /// depend on the state (a day's usage so far plus this record's delta).
    pub async fn issue_once<A>(
        &self,
        aggregate_id: &str,
        iccid: &Iccid,
        key: &str,
        observation: &impl Serialize,
        decide: impl Fn(&A) -> Vec<A::Command>,
    ) -> Result<usize, SyncError>
    where
        A: Aggregate,
    {
        let fingerprint = fingerprint(observation);
        self.issue_decided::<A>(
            aggregate_id,
            iccid.as_str(),
            &fingerprint,
            Cause::default(),
            decide,
            |_| key.to_owned(),
        )
        .await
    }

    /// [`Issuer::issue`] on an aggregate that is not about one SIM: `token` stands where a SIM's
    /// events carry the ICCID (the account's limits: `domain::limits::ACCOUNT_SUBJECT_TOKEN`).
    pub async fn issue_on<A>(
        &self,
        aggregate_id: &str,
        token: &str,
        commands: Vec<A::Command>,
        observation: &impl Serialize,
        cause: Cause,
    ) -> Result<usize, SyncError>
    where
        A: Aggregate,
        A::Command: Clone,
    {
        let fingerprint = fingerprint(observation);
        let key = |version: u64| format!("sync:{}:{aggregate_id}:v{version}:{fingerprint}", A::TYPE);
        self.issue_decided::<A>(
            aggregate_id,
            token,
            &fingerprint,
            cause,
            |_| commands.clone(),
            key,
        )
        .await
    }

    async fn issue_decided<A>(
        &self,
        aggregate_id: &str,
        iccid: &str,
        fingerprint: &str,
        cause: Cause,
        decide: impl Fn(&A) -> Vec<A::Command>,
        key: impl Fn(u64) -> String,
    ) -> Result<usize, SyncError>
    where
        A: Aggregate,
    {
        for _ in 0..MAX_ATTEMPTS {
            let loaded = self.store.load::<A>(aggregate_id).await?;
            let events = match handle_in_turn(&loaded.state, decide(&loaded.state)) {
                Ok(events) => events,
                Err(error) => {
                    self.metrics.command(A::TYPE, "refused");
                    return Err(SyncError::Refused {
                        aggregate: format!("{}/{aggregate_id}", A::TYPE),
                        code: error.code(),
                        message: error.to_string(),
                    });
                }
            };
            if events.is_empty() {
                return Ok(0);
            }
            let mut metadata = EventMetadata::new(ACTOR);
            if let Some(correlation) = cause.correlation_id {
                metadata.correlation_id = correlation;
            }
            if let Some(causation) = cause.causation_id {
                metadata.causation_id = causation;
            }
            let ctx = CommandContext {
                metadata,
                expected_version: Some(loaded.version),
                idempotency: Some(Idempotency {
                    scope: IDEMPOTENCY_SCOPE.to_owned(),
                    request_hash: fingerprint.to_owned(),
                    key: key(loaded.version),
                    response_status: 200,
                }),
            };
            match self
                .store
                .execute_decided::<A>(aggregate_id, iccid, &loaded, events, &ctx)
                .await
            {
                Ok(Executed::New { events, .. }) => {
                    self.metrics.command(A::TYPE, "recorded");
                    return Ok(events.len());
                }
                // Another instance (or this one before a crash) stored the same observation.
                Ok(Executed::Replayed { .. }) => return Ok(0),
                // Someone wrote in between: decide again against the new state.
                Err(ExecuteError::VersionMismatch { .. }) | Err(ExecuteError::Conflict) => continue,
                Err(ExecuteError::IdempotencyKeyReused) => {
                    return Err(SyncError::Conflict(format!(
                        "idempotency key of {}/{aggregate_id} reused for another observation",
                        A::TYPE
                    )))
                }
                Err(ExecuteError::Domain(error)) => {
                    return Err(SyncError::Refused {
                        aggregate: format!("{}/{aggregate_id}", A::TYPE),
                        code: error.code(),
                        message: error.to_string(),
                    })
                }
                Err(ExecuteError::Store(error)) => return Err(error.into()),
            }
        }
        Err(SyncError::Conflict(format!(
            "{}/{aggregate_id} kept changing while the connector wrote to it",
            A::TYPE
        )))
    }
}

/// The quota aggregate's id, as the command API names it.
pub fn quota_id(iccid: &Iccid, kind: QuotaKind) -> String {
    domain::quota_aggregate_id(iccid, kind)
}

fn fingerprint(observation: &impl Serialize) -> String {
    // serde_json's maps keep key order, so equal observations serialise equally.
    let bytes = serde_json::to_vec(observation).unwrap_or_default();
    hex::encode(&Sha256::digest(&bytes)[..16])
}
