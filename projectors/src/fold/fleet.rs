//! The fleet history (`readmodel::fleet_history`): what each event did to the fleet summary's
//! figures, from the rows it touched as they were before and after it.

use eventstore::StoredEvent;
use readmodel::Figures;
use uuid::Uuid;

use super::Fold;
use crate::apply::Decoded;

/// The row an event changes (a quota event also updates its SIM's quota numbers, which no
/// figure counts).
pub(super) enum Touched {
    Sim(String),
    Quota(String, String),
    Sms(Uuid),
    Nothing,
}

impl Touched {
    pub(super) fn of(e: &StoredEvent, decoded: &Decoded) -> Self {
        match decoded {
            Decoded::Sim(_) => Self::Sim(e.aggregate_id.clone()),
            Decoded::Quota { iccid, kind, .. } => Self::Quota(iccid.clone(), (*kind).to_owned()),
            Decoded::Sms { message_id, .. } => Self::Sms(*message_id),
            Decoded::Unprojected => Self::Nothing,
        }
    }
}

impl Fold {
    /// Adds `sign` times what the touched row contributes to the figures now.
    pub(super) fn contribution(&self, touched: &Touched, sign: i64, figures: &mut Figures) {
        match touched {
            Touched::Sim(iccid) => {
                if let Some(row) = self.sims.get(iccid) {
                    figures.sim(row, sign);
                }
            }
            Touched::Quota(iccid, kind) => {
                if let Some(row) = self.quotas.get(&(iccid.clone(), kind.clone())) {
                    figures.quota(row, sign);
                }
            }
            Touched::Sms(id) => {
                if let Some(row) = self.sms.get(id) {
                    figures.sms(row, sign);
                }
            }
            Touched::Nothing => {}
        }
    }
}
