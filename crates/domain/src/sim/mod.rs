//! The SIM aggregate: inventory, lifecycle and what the provider last told us about the card.
//!
//! Lifecycle changes that need 1NCE to act are two-step (decision 2 of the design): the operator's
//! request records an intent, and the sync-connector confirms or fails it after calling 1NCE.
//! Observations from the provider (status, IMEI, connectivity, usage) are recorded only when they
//! differ from what is known, so a repeated poll writes nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{Iccid, Imei, Imsi, Msisdn};
use crate::Aggregate;

mod controls;
mod messages;
mod rules;
mod types;
mod usage;

pub use controls::{ControlOutcome, ControlRecord, ControlState, SimControl, SimControls};
pub use messages::{SimCommand, SimEvent};
use rules::normalise_observation;
pub use rules::{normalise_label, normalise_tags, SimError};
pub use types::*;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

/// State of one SIM (aggregate id = its 19-digit ICCID).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sim {
    registered: bool,
    iccid: Option<Iccid>,
    imsi: Option<Imsi>,
    msisdn: Option<Msisdn>,
    label: Option<String>,
    tags: Vec<String>,
    imei: Option<Imei>,
    imei_lock: bool,
    status: SimStatus,
    /// Decides whether a provider "Disabled" means suspended or never activated.
    ever_active: bool,
    pending: Option<PendingChange>,
    /// Label and IMEI lock on their way to 1NCE (absent in snapshots taken before it existed).
    #[serde(default)]
    pending_update: Option<PendingUpdate>,
    /// Connectivity reset and auto top-up (absent in snapshots taken before they existed).
    #[serde(default)]
    controls: SimControls,
    provider_status: Option<ProviderStatus>,
    connectivity: Connectivity,
    /// Sorted by `period_start`; one entry per period ever reported.
    usage: Vec<UsagePeriod>,
    registered_at: Option<DateTime<Utc>>,
    terminated_at: Option<DateTime<Utc>>,
    termination_reason: Option<String>,
}

impl Sim {
    pub fn is_registered(&self) -> bool {
        self.registered
    }
    pub fn is_terminated(&self) -> bool {
        self.status == SimStatus::Terminated
    }
    pub fn iccid(&self) -> Option<&Iccid> {
        self.iccid.as_ref()
    }
    pub fn imsi(&self) -> Option<&Imsi> {
        self.imsi.as_ref()
    }
    pub fn msisdn(&self) -> Option<&Msisdn> {
        self.msisdn.as_ref()
    }
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
    pub fn imei(&self) -> Option<&Imei> {
        self.imei.as_ref()
    }
    pub fn imei_lock(&self) -> bool {
        self.imei_lock
    }
    pub fn status(&self) -> SimStatus {
        self.status
    }
    pub fn ever_active(&self) -> bool {
        self.ever_active
    }
    pub fn pending_change(&self) -> Option<&PendingChange> {
        self.pending.as_ref()
    }
    pub fn controls(&self) -> &SimControls {
        &self.controls
    }
    pub fn pending_update(&self) -> Option<&PendingUpdate> {
        self.pending_update.as_ref()
    }
    pub fn provider_status(&self) -> Option<ProviderStatus> {
        self.provider_status
    }
    pub fn connectivity(&self) -> &Connectivity {
        &self.connectivity
    }
    pub fn usage_periods(&self) -> &[UsagePeriod] {
        &self.usage
    }
    pub fn usage_for(&self, period_start: DateTime<Utc>) -> Option<&UsagePeriod> {
        self.usage
            .binary_search_by_key(&period_start, |p| p.period_start)
            .ok()
            .map(|i| &self.usage[i])
    }
    pub fn registered_at(&self) -> Option<DateTime<Utc>> {
        self.registered_at
    }
    pub fn terminated_at(&self) -> Option<DateTime<Utc>> {
        self.terminated_at
    }
    pub fn termination_reason(&self) -> Option<&str> {
        self.termination_reason.as_deref()
    }
}

impl Sim {
    fn check_no_pending(&self) -> Result<(), SimError> {
        match &self.pending {
            Some(p) => Err(SimError::ChangePending {
                kind: p.kind,
                request_id: p.request_id,
            }),
            None => Ok(()),
        }
    }

    fn check_pending(&self, kind: ChangeKind, request_id: Uuid) -> Result<(), SimError> {
        match &self.pending {
            Some(p) if p.kind == kind && p.request_id == request_id => Ok(()),
            _ => Err(SimError::NoPendingRequest { kind, request_id }),
        }
    }

    fn check_pending_update(&self, request_id: Uuid) -> Result<(), SimError> {
        match &self.pending_update {
            Some(p) if p.request_id == request_id => Ok(()),
            _ => Err(SimError::NoPendingUpdate { request_id }),
        }
    }

    /// A provider update for the SIM's current label and IMEI lock, unless one with these
    /// values is already pending (a newer request supersedes one with other values).
    fn request_provider_update(&self, request_id: Uuid, at: DateTime<Utc>) -> Vec<SimEvent> {
        if self
            .pending_update
            .as_ref()
            .is_some_and(|p| p.label == self.label && p.imei_lock == self.imei_lock)
        {
            return vec![];
        }
        vec![SimEvent::ProviderUpdateRequested {
            request_id,
            label: self.label.clone(),
            imei_lock: self.imei_lock,
            requested_at: at,
        }]
    }

    /// The provider's label and IMEI lock where they changed at the provider. While a
    /// provider update is pending the platform's intent wins (the connector carries it out
    /// and so overwrites the provider's change), so nothing is recorded then. A provider label
    /// the platform could not accept (too long, control characters) is left out.
    fn record_provider_details(
        &self,
        label: Option<Option<String>>,
        imei_lock: Option<bool>,
    ) -> Vec<SimEvent> {
        if self.pending_update.is_some() {
            return vec![];
        }
        let mut events = Vec::new();
        let label = label.and_then(|l| normalise_label(normalise_observation(l)).ok());
        if let Some(label) = label.filter(|l| *l != self.label) {
            events.push(SimEvent::SimLabelChanged { label });
        }
        if let Some(enabled) = imei_lock.filter(|e| *e != self.imei_lock) {
            events.push(SimEvent::ImeiLockChanged { enabled });
        }
        events
    }
}

impl Aggregate for Sim {
    const TYPE: &'static str = "sim";
    type Command = SimCommand;
    type Event = SimEvent;
    type Error = SimError;

    fn handle(&self, command: SimCommand) -> Result<Vec<SimEvent>, SimError> {
        if self.is_terminated() {
            return Err(SimError::Terminated);
        }
        if let SimCommand::Register {
            iccid,
            imsi,
            msisdn,
            label,
            tags,
            at,
        } = command
        {
            if self.registered {
                return Err(SimError::AlreadyRegistered);
            }
            return Ok(vec![SimEvent::SimRegistered {
                iccid,
                imsi,
                msisdn,
                label: normalise_label(label)?,
                tags: normalise_tags(tags)?,
                registered_at: at,
            }]);
        }
        if !self.registered {
            return Err(SimError::NotFound);
        }
        match command {
            SimCommand::Register { .. } => unreachable!("handled above"),
            SimCommand::UpdateDetails { label, tags } => {
                // Validate everything before emitting anything: a half-applied PATCH is worse
                // than a refused one.
                let label = label.map(normalise_label).transpose()?;
                let tags = tags.map(normalise_tags).transpose()?;
                let mut events = Vec::new();
                if let Some(label) = label.filter(|l| *l != self.label) {
                    events.push(SimEvent::SimLabelChanged { label });
                }
                if let Some(tags) = tags.filter(|t| *t != self.tags) {
                    events.push(SimEvent::SimTagsChanged { tags });
                }
                Ok(events)
            }
            SimCommand::SetImeiLock { enabled } => Ok(if enabled == self.imei_lock {
                vec![]
            } else {
                vec![SimEvent::ImeiLockChanged { enabled }]
            }),
            SimCommand::RecordImei { imei } => Ok(if self.imei.as_ref() == Some(&imei) {
                vec![]
            } else {
                vec![SimEvent::ImeiRecorded { imei }]
            }),
            SimCommand::RequestActivation { request_id, at } => {
                self.check_no_pending()?;
                if self.status == SimStatus::Active {
                    return Err(SimError::AlreadyActive);
                }
                Ok(vec![SimEvent::ActivationRequested {
                    request_id,
                    requested_at: at,
                }])
            }
            SimCommand::ConfirmActivation { request_id, at } => {
                self.check_pending(ChangeKind::Activation, request_id)?;
                Ok(vec![SimEvent::ActivationCompleted {
                    request_id,
                    completed_at: at,
                }])
            }
            SimCommand::FailActivation {
                request_id,
                reason,
                at,
            } => {
                self.check_pending(ChangeKind::Activation, request_id)?;
                Ok(vec![SimEvent::ActivationFailed {
                    request_id,
                    reason,
                    failed_at: at,
                }])
            }
            SimCommand::RequestSuspension { request_id, at } => {
                self.check_no_pending()?;
                if self.status != SimStatus::Active {
                    return Err(SimError::NotActive { status: self.status });
                }
                Ok(vec![SimEvent::SuspensionRequested {
                    request_id,
                    requested_at: at,
                }])
            }
            SimCommand::ConfirmSuspension { request_id, at } => {
                self.check_pending(ChangeKind::Suspension, request_id)?;
                Ok(vec![SimEvent::SuspensionCompleted {
                    request_id,
                    completed_at: at,
                }])
            }
            SimCommand::FailSuspension {
                request_id,
                reason,
                at,
            } => {
                self.check_pending(ChangeKind::Suspension, request_id)?;
                Ok(vec![SimEvent::SuspensionFailed {
                    request_id,
                    reason,
                    failed_at: at,
                }])
            }
            SimCommand::Terminate { reason, at } => Ok(vec![SimEvent::SimTerminated {
                reason: normalise_observation(reason),
                terminated_at: at,
            }]),
            SimCommand::RecordProviderStatus { status, at } => {
                if self.provider_status == Some(status) {
                    return Ok(vec![]);
                }
                let sim_status = match status {
                    ProviderStatus::Enabled => SimStatus::Active,
                    ProviderStatus::Disabled if self.ever_active => SimStatus::Suspended,
                    ProviderStatus::Disabled => SimStatus::Inactive,
                };
                Ok(vec![SimEvent::ProviderStatusChanged {
                    from: self.provider_status,
                    to: status,
                    sim_status,
                    at,
                }])
            }
            SimCommand::RecordConnectivity {
                network,
                country,
                rat,
                ip_address,
                at,
            } => {
                let network = normalise_observation(network);
                let country = normalise_observation(country);
                let rat = normalise_observation(rat);
                let ip_address = normalise_observation(ip_address);
                let c = &self.connectivity;
                if c.network == network && c.country == country && c.rat == rat && c.ip_address == ip_address
                {
                    return Ok(vec![]);
                }
                Ok(vec![SimEvent::ConnectivityChanged {
                    network,
                    country,
                    rat,
                    ip_address,
                    observed_at: at,
                }])
            }
            SimCommand::RequestProviderUpdate { request_id, at } => {
                Ok(self.request_provider_update(request_id, at))
            }
            SimCommand::ConfirmProviderUpdate { request_id, at } => {
                self.check_pending_update(request_id)?;
                Ok(vec![SimEvent::ProviderUpdateCompleted {
                    request_id,
                    completed_at: at,
                }])
            }
            SimCommand::FailProviderUpdate {
                request_id,
                reason,
                at,
            } => {
                self.check_pending_update(request_id)?;
                Ok(vec![SimEvent::ProviderUpdateFailed {
                    request_id,
                    reason,
                    failed_at: at,
                }])
            }
            SimCommand::RecordProviderUpdateOutcomeUnknown {
                request_id,
                reason,
                at,
            } => {
                self.check_pending_update(request_id)?;
                Ok(vec![SimEvent::ProviderUpdateOutcomeUnknown {
                    request_id,
                    reason,
                    at,
                }])
            }
            SimCommand::RequestConnectivityReset { request_id, at } => {
                self.request_connectivity_reset(request_id, at)
            }
            SimCommand::RequestAutoTopUp {
                request_id,
                enabled,
                at,
            } => Ok(self.request_auto_top_up(request_id, enabled, at)),
            SimCommand::SettleControl {
                control,
                request_id,
                outcome,
                at,
            } => self.settle_control(control, request_id, outcome, at),
            SimCommand::RecordProviderDetails { label, imei_lock, .. } => {
                Ok(self.record_provider_details(label, imei_lock))
            }
            SimCommand::RecordUsage {
                period_start,
                period_end,
                data_bytes,
                sms_mo,
                sms_mt,
            } => self.record_usage(period_start, period_end, [data_bytes, sms_mo, sms_mt]),
            SimCommand::ReconcileUsage {
                period_start,
                period_end,
                data_bytes,
                sms_mo,
                sms_mt,
            } => self.reconcile_usage(period_start, period_end, [data_bytes, sms_mo, sms_mt]),
        }
    }

    fn is_settlement(event: &SimEvent) -> bool {
        controls::is_control_settlement(event)
            || matches!(
                event,
                SimEvent::ProviderUpdateCompleted { .. }
                    | SimEvent::ProviderUpdateFailed { .. }
                    | SimEvent::ProviderUpdateOutcomeUnknown { .. }
            )
    }

    fn apply(&mut self, event: &SimEvent) {
        if self.controls.apply(event) {
            return;
        }
        match event {
            SimEvent::SimRegistered {
                iccid,
                imsi,
                msisdn,
                label,
                tags,
                registered_at,
            } => {
                self.registered = true;
                self.iccid = Some(iccid.clone());
                self.imsi = Some(imsi.clone());
                self.msisdn = msisdn.clone();
                self.label = label.clone();
                self.tags = tags.clone();
                self.registered_at = Some(*registered_at);
            }
            SimEvent::SimLabelChanged { label } => self.label = label.clone(),
            SimEvent::SimTagsChanged { tags } => self.tags = tags.clone(),
            SimEvent::ImeiLockChanged { enabled } => self.imei_lock = *enabled,
            SimEvent::ImeiRecorded { imei } => self.imei = Some(imei.clone()),
            SimEvent::ActivationRequested {
                request_id,
                requested_at,
            } => {
                self.pending = Some(PendingChange {
                    kind: ChangeKind::Activation,
                    request_id: *request_id,
                    requested_at: *requested_at,
                })
            }
            SimEvent::SuspensionRequested {
                request_id,
                requested_at,
            } => {
                self.pending = Some(PendingChange {
                    kind: ChangeKind::Suspension,
                    request_id: *request_id,
                    requested_at: *requested_at,
                })
            }
            // A confirmation means 1NCE carried the change out, so it also tells us the
            // provider's status: a later poll saying the same thing is then not news.
            SimEvent::ActivationCompleted { .. } => {
                self.pending = None;
                self.status = SimStatus::Active;
                self.ever_active = true;
                self.provider_status = Some(ProviderStatus::Enabled);
            }
            SimEvent::SuspensionCompleted { .. } => {
                self.pending = None;
                self.status = SimStatus::Suspended;
                self.provider_status = Some(ProviderStatus::Disabled);
            }
            SimEvent::ActivationFailed { .. } | SimEvent::SuspensionFailed { .. } => {
                self.pending = None;
            }
            SimEvent::SimTerminated {
                reason,
                terminated_at,
            } => {
                self.status = SimStatus::Terminated;
                self.pending = None;
                self.pending_update = None;
                self.terminated_at = Some(*terminated_at);
                self.termination_reason = reason.clone();
            }
            SimEvent::ProviderStatusChanged { to, sim_status, .. } => {
                self.provider_status = Some(*to);
                self.status = *sim_status;
                if *sim_status == SimStatus::Active {
                    self.ever_active = true;
                }
            }
            SimEvent::ConnectivityChanged {
                network,
                country,
                rat,
                ip_address,
                observed_at,
            } => {
                self.connectivity = Connectivity {
                    network: network.clone(),
                    country: country.clone(),
                    rat: rat.clone(),
                    ip_address: ip_address.clone(),
                    last_seen_at: Some(*observed_at),
                }
            }
            SimEvent::ProviderUpdateRequested {
                request_id,
                label,
                imei_lock,
                requested_at,
            } => {
                self.pending_update = Some(PendingUpdate {
                    request_id: *request_id,
                    label: label.clone(),
                    imei_lock: *imei_lock,
                    requested_at: *requested_at,
                })
            }
            SimEvent::ProviderUpdateCompleted { .. }
            | SimEvent::ProviderUpdateFailed { .. }
            | SimEvent::ProviderUpdateOutcomeUnknown { .. } => self.pending_update = None,
            // Folded by `SimControls::apply` above.
            SimEvent::ConnectivityResetRequested { .. }
            | SimEvent::ConnectivityResetCompleted { .. }
            | SimEvent::ConnectivityResetFailed { .. }
            | SimEvent::ConnectivityResetOutcomeUnknown { .. }
            | SimEvent::AutoTopUpChangeRequested { .. }
            | SimEvent::AutoTopUpChangeCompleted { .. }
            | SimEvent::AutoTopUpChangeFailed { .. }
            | SimEvent::AutoTopUpChangeOutcomeUnknown { .. } => {}
            SimEvent::UsageRecorded {
                period_start,
                period_end,
                data_bytes,
                sms_mo,
                sms_mt,
                ..
            } => {
                self.set_usage(UsagePeriod {
                    period_start: *period_start,
                    period_end: *period_end,
                    data_bytes: *data_bytes,
                    sms_mo: *sms_mo,
                    sms_mt: *sms_mt,
                    reconciled: false,
                });
            }
            SimEvent::UsageReconciled {
                period_start,
                period_end,
                data_bytes,
                sms_mo,
                sms_mt,
                ..
            } => {
                self.set_usage(UsagePeriod {
                    period_start: *period_start,
                    period_end: *period_end,
                    data_bytes: *data_bytes,
                    sms_mo: *sms_mo,
                    sms_mt: *sms_mt,
                    reconciled: true,
                });
            }
        }
    }
}
