//! Usage periods: cumulative reports (`RecordUsage`) and the provider's reference for a closed
//! period (`ReconcileUsage`).

use chrono::{DateTime, Utc};

use super::{Sim, SimError, SimEvent, UsagePeriod};

impl Sim {
    /// Sets a period's totals (from a stored event), keeping the periods sorted.
    pub(super) fn set_usage(&mut self, period: UsagePeriod) {
        match self
            .usage
            .binary_search_by_key(&period.period_start, |p| p.period_start)
        {
            Ok(i) => self.usage[i] = period,
            Err(i) => self.usage.insert(i, period),
        }
    }

    pub(super) fn record_usage(
        &self,
        period_start: DateTime<Utc>,
        period_end: DateTime<Utc>,
        totals: [u64; 3],
    ) -> Result<Vec<SimEvent>, SimError> {
        if period_end <= period_start {
            return Err(SimError::InvalidUsagePeriod(format!(
                "period_end {period_end} must be after period_start {period_start}"
            )));
        }
        let before = match self.usage_for(period_start) {
            Some(p) if p.period_end != period_end => {
                return Err(SimError::InvalidUsagePeriod(format!(
                    "the period starting {period_start} was reported ending {}, not {period_end}",
                    p.period_end
                )))
            }
            // The provider's final total is the reference: a later report (a streamed record
            // or a poll) cannot move a reconciled period.
            Some(p) if p.reconciled => return Ok(vec![]),
            Some(p) => [p.data_bytes, p.sms_mo, p.sms_mt],
            None => [0; 3],
        };
        let names = ["data_bytes", "sms_mo", "sms_mt"];
        let shrunk: Vec<String> = (0..3)
            .filter(|&i| totals[i] < before[i])
            .map(|i| format!("{} {} < {}", names[i], totals[i], before[i]))
            .collect();
        if !shrunk.is_empty() {
            return Err(SimError::UsageDecreased {
                period_start,
                detail: shrunk.join(", "),
            });
        }
        if totals == before {
            return Ok(vec![]);
        }
        Ok(vec![SimEvent::UsageRecorded {
            period_start,
            period_end,
            data_bytes: totals[0],
            sms_mo: totals[1],
            sms_mt: totals[2],
            delta_data_bytes: totals[0] - before[0],
            delta_sms_mo: totals[1] - before[1],
            delta_sms_mt: totals[2] - before[2],
        }])
    }

    pub(super) fn reconcile_usage(
        &self,
        period_start: DateTime<Utc>,
        period_end: DateTime<Utc>,
        polled: [u64; 3],
    ) -> Result<Vec<SimEvent>, SimError> {
        if period_end <= period_start {
            return Err(SimError::InvalidUsagePeriod(format!(
                "period_end {period_end} must be after period_start {period_start}"
            )));
        }
        let recorded = match self.usage_for(period_start) {
            Some(p) if p.period_end != period_end => {
                return Err(SimError::InvalidUsagePeriod(format!(
                    "the period starting {period_start} was reported ending {}, not {period_end}",
                    p.period_end
                )))
            }
            // Already the reference: nothing to record.
            Some(p) if p.reconciled && [p.data_bytes, p.sms_mo, p.sms_mt] == polled => return Ok(vec![]),
            Some(p) => [p.data_bytes, p.sms_mo, p.sms_mt],
            // A day with no usage at all, neither streamed nor polled, needs no reference.
            None if polled == [0; 3] => return Ok(vec![]),
            None => [0; 3],
        };
        let difference = [0, 1, 2].map(|i| polled[i] as i64 - recorded[i] as i64);
        Ok(vec![SimEvent::UsageReconciled {
            period_start,
            period_end,
            data_bytes: polled[0],
            sms_mo: polled[1],
            sms_mt: polled[2],
            recorded_data_bytes: recorded[0],
            recorded_sms_mo: recorded[1],
            recorded_sms_mt: recorded[2],
            difference_data_bytes: difference[0],
            difference_sms_mo: difference[1],
            difference_sms_mt: difference[2],
        }])
    }
}
