//! Provider controls beyond the SIM's own fields: the account's self-set monthly limits
//! (data, MT-SMS, MO-SMS; account-wide at 1NCE), and refusals a test sets so that a
//! connectivity reset, an auto top-up change or a limits change is refused with a message of
//! its choosing (as 1NCE refuses with 4xx and a `message`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{fleet, lock, parse_iccid, Simulator};

/// The limits one may select, per service: `(id, value)`. Our choice (1NCE publishes the ids
/// only through `GET /v1/sims/{service}/limits`): a few steps per service.
const DATA_LIMITS: &[(u64, &str)] = &[(1, "16"), (2, "32"), (3, "64"), (4, "128"), (5, "256")];
const SMS_LIMITS: &[(u64, &str)] = &[(1, "10"), (2, "25"), (3, "50"), (4, "100")];

/// The controls a test can make the simulator refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// `POST /v1/sims/{iccid}/reset`.
    Reset,
    /// `POST /v1/sims/autoTopup`.
    AutoTopUp,
    /// `POST /v1/sims/limits`.
    Limits,
}

/// Refusal messages (answered with 422) per control; `None`: carried out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusals {
    #[serde(default)]
    pub reset: Option<String>,
    #[serde(default)]
    pub auto_top_up: Option<String>,
    #[serde(default)]
    pub limits: Option<String>,
}

impl Refusals {
    pub fn of(&self, control: Control) -> Option<&str> {
        match control {
            Control::Reset => self.reset.as_deref(),
            Control::AutoTopUp => self.auto_top_up.as_deref(),
            Control::Limits => self.limits.as_deref(),
        }
    }
}

/// The account's selected limit ids (1 each at start, the smallest step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLimits {
    pub data: u64,
    pub sms_mt: u64,
    pub sms_mo: u64,
}

impl Default for AccountLimits {
    fn default() -> Self {
        Self {
            data: 1,
            sms_mt: 1,
            sms_mo: 1,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct ControlsState {
    pub refusals: Refusals,
    pub limits: AccountLimits,
}

/// A selectable service of `GET /v1/sims/{service}/limits`.
pub(crate) fn selectable(service: &str) -> Option<(&'static [(u64, &'static str)], &'static str)> {
    match service {
        "data" => Some((DATA_LIMITS, "MB")),
        "smsMO" | "smsMT" => Some((SMS_LIMITS, "SMS")),
        _ => None,
    }
}

/// `{id, limit, unit}` of a selectable id, if it exists.
pub(crate) fn limit_json(service: &str, id: u64) -> Option<Value> {
    let (list, unit) = selectable(service)?;
    let (_, value) = list.iter().find(|(i, _)| *i == id)?;
    Some(json!({ "id": id, "limit": value, "unit": unit }))
}

impl Simulator {
    pub(crate) fn controls(&self) -> std::sync::MutexGuard<'_, ControlsState> {
        lock(&self.inner.controls)
    }

    /// Makes the control answer 422 with `message` (or carry it out again: `None`).
    pub fn set_refusal(&self, control: Control, message: Option<&str>) {
        let mut controls = self.controls();
        let slot = match control {
            Control::Reset => &mut controls.refusals.reset,
            Control::AutoTopUp => &mut controls.refusals.auto_top_up,
            Control::Limits => &mut controls.refusals.limits,
        };
        *slot = message.map(str::to_owned);
    }

    pub fn refusals(&self) -> Refusals {
        self.controls().refusals.clone()
    }

    pub fn set_refusals(&self, refusals: Refusals) {
        self.controls().refusals = refusals;
    }

    /// The account's selected limit ids.
    pub fn account_limits(&self) -> AccountLimits {
        self.controls().limits
    }

    /// Whether auto top-up is on for the SIM (false for an unknown one).
    pub fn auto_top_up(&self, iccid: &str) -> bool {
        parse_iccid(iccid)
            .and_then(|id| self.fleet().sim(id).ok().map(|s| s.auto_topup))
            .unwrap_or(false)
    }

    /// Connectivity resets the SIM received through the API.
    pub fn resets(&self, iccid: &str) -> usize {
        parse_iccid(iccid)
            .and_then(|id| self.fleet().events_of(id).ok())
            .map(|events| {
                events
                    .iter()
                    .filter(|e| e.event_type == fleet::RESET_EVENT)
                    .count()
            })
            .unwrap_or(0)
    }
}
