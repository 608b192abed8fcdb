//! What the SIM aggregate accepts (commands) and records (events).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::{ControlOutcome, ProviderStatus, SimControl, SimStatus};
use crate::ids::{Iccid, Imei, Imsi, Msisdn};

/// Lets a JSON command tell "leave the label alone" (field absent) from "clear it" (`null`).
pub(super) fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command")]
pub enum SimCommand {
    Register {
        iccid: Iccid,
        imsi: Imsi,
        msisdn: Option<Msisdn>,
        label: Option<String>,
        #[serde(default)]
        tags: Vec<String>,
        at: DateTime<Utc>,
    },
    /// Outer `None` leaves a field untouched; `label: Some(None)` clears the label.
    UpdateDetails {
        #[serde(
            default,
            deserialize_with = "double_option",
            skip_serializing_if = "Option::is_none"
        )]
        label: Option<Option<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tags: Option<Vec<String>>,
    },
    SetImeiLock {
        enabled: bool,
    },
    RecordImei {
        imei: Imei,
    },
    RequestActivation {
        request_id: Uuid,
        at: DateTime<Utc>,
    },
    ConfirmActivation {
        request_id: Uuid,
        at: DateTime<Utc>,
    },
    FailActivation {
        request_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
    RequestSuspension {
        request_id: Uuid,
        at: DateTime<Utc>,
    },
    ConfirmSuspension {
        request_id: Uuid,
        at: DateTime<Utc>,
    },
    FailSuspension {
        request_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
    Terminate {
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    RecordProviderStatus {
        status: ProviderStatus,
        at: DateTime<Utc>,
    },
    RecordConnectivity {
        network: Option<String>,
        country: Option<String>,
        rat: Option<String>,
        ip_address: Option<String>,
        at: DateTime<Utc>,
    },
    /// Carries the SIM's current label and IMEI lock out to 1NCE; issued with the operator's
    /// change of either. A pending update with other values is superseded.
    RequestProviderUpdate {
        request_id: Uuid,
        at: DateTime<Utc>,
    },
    ConfirmProviderUpdate {
        request_id: Uuid,
        at: DateTime<Utc>,
    },
    FailProviderUpdate {
        request_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
    /// The connector could not learn whether 1NCE took the update (answers lost).
    RecordProviderUpdateOutcomeUnknown {
        request_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
    /// What the provider's SIM list says of label and IMEI lock, given only for the fields
    /// that changed at the provider since the connector last looked (`label: Some(None)`: the
    /// provider's label was cleared). Ignored while a provider update is pending: the
    /// platform's pending intent wins and is carried out.
    RecordProviderDetails {
        #[serde(
            default,
            deserialize_with = "double_option",
            skip_serializing_if = "Option::is_none"
        )]
        label: Option<Option<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        imei_lock: Option<bool>,
        at: DateTime<Utc>,
    },
    /// A connectivity reset at 1NCE (it drops and re-attaches the SIM's data session).
    RequestConnectivityReset {
        request_id: Uuid,
        at: DateTime<Utc>,
    },
    /// Auto top-up on or off at 1NCE.
    RequestAutoTopUp {
        request_id: Uuid,
        enabled: bool,
        at: DateTime<Utc>,
    },
    /// The connector's outcome of a pending control request.
    SettleControl {
        control: SimControl,
        request_id: Uuid,
        outcome: ControlOutcome,
        at: DateTime<Utc>,
    },
    /// Cumulative totals of one provider period, as reported (not increments).
    RecordUsage {
        period_start: DateTime<Utc>,
        period_end: DateTime<Utc>,
        data_bytes: u64,
        sms_mo: u64,
        sms_mt: u64,
    },
    /// The provider's daily total of a closed period (a day before today, UTC), polled: the
    /// reference for that period. It replaces what was recorded (from the Data Streamer or
    /// earlier polls), down as well as up, and fixes the period: later `RecordUsage` reports
    /// of it record nothing, a later `ReconcileUsage` with other totals moves the reference.
    ReconcileUsage {
        period_start: DateTime<Utc>,
        period_end: DateTime<Utc>,
        data_bytes: u64,
        sms_mo: u64,
        sms_mt: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "event_type", content = "payload")]
pub enum SimEvent {
    SimRegistered {
        iccid: Iccid,
        imsi: Imsi,
        msisdn: Option<Msisdn>,
        label: Option<String>,
        tags: Vec<String>,
        registered_at: DateTime<Utc>,
    },
    SimLabelChanged {
        label: Option<String>,
    },
    SimTagsChanged {
        tags: Vec<String>,
    },
    ImeiLockChanged {
        enabled: bool,
    },
    ImeiRecorded {
        imei: Imei,
    },
    ActivationRequested {
        request_id: Uuid,
        requested_at: DateTime<Utc>,
    },
    ActivationCompleted {
        request_id: Uuid,
        completed_at: DateTime<Utc>,
    },
    ActivationFailed {
        request_id: Uuid,
        reason: String,
        failed_at: DateTime<Utc>,
    },
    SuspensionRequested {
        request_id: Uuid,
        requested_at: DateTime<Utc>,
    },
    SuspensionCompleted {
        request_id: Uuid,
        completed_at: DateTime<Utc>,
    },
    SuspensionFailed {
        request_id: Uuid,
        reason: String,
        failed_at: DateTime<Utc>,
    },
    SimTerminated {
        reason: Option<String>,
        terminated_at: DateTime<Utc>,
    },
    /// `sim_status` is the platform status the provider's status implies, stored so that
    /// readers need not re-derive it.
    ProviderStatusChanged {
        from: Option<ProviderStatus>,
        to: ProviderStatus,
        sim_status: SimStatus,
        at: DateTime<Utc>,
    },
    ConnectivityChanged {
        network: Option<String>,
        country: Option<String>,
        rat: Option<String>,
        ip_address: Option<String>,
        observed_at: DateTime<Utc>,
    },
    /// The platform's label and IMEI lock are to be set at 1NCE (a PUT of the SIM).
    ProviderUpdateRequested {
        request_id: Uuid,
        label: Option<String>,
        imei_lock: bool,
        requested_at: DateTime<Utc>,
    },
    ProviderUpdateCompleted {
        request_id: Uuid,
        completed_at: DateTime<Utc>,
    },
    /// 1NCE refused the update; the platform keeps the operator's values.
    ProviderUpdateFailed {
        request_id: Uuid,
        reason: String,
        failed_at: DateTime<Utc>,
    },
    ProviderUpdateOutcomeUnknown {
        request_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
    /// A connectivity reset is to be carried out at 1NCE.
    ConnectivityResetRequested {
        request_id: Uuid,
        requested_at: DateTime<Utc>,
    },
    /// 1NCE queued the reset (it happens asynchronously there).
    ConnectivityResetCompleted {
        request_id: Uuid,
        completed_at: DateTime<Utc>,
    },
    /// 1NCE refused the reset; `reason` carries its message.
    ConnectivityResetFailed {
        request_id: Uuid,
        reason: String,
        failed_at: DateTime<Utc>,
    },
    /// The connector could not learn whether 1NCE queued the reset (it is never sent twice).
    ConnectivityResetOutcomeUnknown {
        request_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
    /// Auto top-up is to be switched on or off at 1NCE.
    AutoTopUpChangeRequested {
        request_id: Uuid,
        enabled: bool,
        requested_at: DateTime<Utc>,
    },
    /// 1NCE took the setting: auto top-up is now `enabled`.
    AutoTopUpChangeCompleted {
        request_id: Uuid,
        enabled: bool,
        completed_at: DateTime<Utc>,
    },
    /// 1NCE refused the setting; `reason` carries its message.
    AutoTopUpChangeFailed {
        request_id: Uuid,
        reason: String,
        failed_at: DateTime<Utc>,
    },
    AutoTopUpChangeOutcomeUnknown {
        request_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
    /// Totals are cumulative for the period; deltas are what this report added, so a
    /// projector can sum deltas without knowing earlier reports.
    UsageRecorded {
        period_start: DateTime<Utc>,
        period_end: DateTime<Utc>,
        data_bytes: u64,
        sms_mo: u64,
        sms_mt: u64,
        delta_data_bytes: u64,
        delta_sms_mo: u64,
        delta_sms_mt: u64,
    },
    /// A closed period's totals set to the provider's polled daily total (the reference).
    /// `recorded_*` is what the period held before; `difference_*` = polled − recorded (signed:
    /// negative when the streamed records added up to more than the provider counted), so a
    /// projector summing usage deltas adds the difference and ends at the polled total.
    UsageReconciled {
        period_start: DateTime<Utc>,
        period_end: DateTime<Utc>,
        data_bytes: u64,
        sms_mo: u64,
        sms_mt: u64,
        recorded_data_bytes: u64,
        recorded_sms_mo: u64,
        recorded_sms_mt: u64,
        difference_data_bytes: i64,
        difference_sms_mo: i64,
        difference_sms_mt: i64,
    },
}

impl_domain_event!(SimEvent [
    SimRegistered,
    SimLabelChanged,
    SimTagsChanged,
    ImeiLockChanged,
    ImeiRecorded,
    ActivationRequested,
    ActivationCompleted,
    ActivationFailed,
    SuspensionRequested,
    SuspensionCompleted,
    SuspensionFailed,
    SimTerminated,
    ProviderStatusChanged,
    ConnectivityChanged,
    UsageRecorded,
    UsageReconciled,
    ProviderUpdateRequested,
    ProviderUpdateCompleted,
    ProviderUpdateFailed,
    ProviderUpdateOutcomeUnknown,
    ConnectivityResetRequested,
    ConnectivityResetCompleted,
    ConnectivityResetFailed,
    ConnectivityResetOutcomeUnknown,
    AutoTopUpChangeRequested,
    AutoTopUpChangeCompleted,
    AutoTopUpChangeFailed,
    AutoTopUpChangeOutcomeUnknown,
]);
