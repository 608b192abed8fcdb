//! SMS: MT messages sent to a SIM (buffered, delivered, cancelled), MO messages received from
//! it, and the per-SIM message list.

use chrono::{DateTime, Duration, Utc};

use super::journal::Journal;
use super::quota::QuotaKind;
use super::records::{DayUsage, SimRecord, SmsDirection, SmsRecord, SmsState};
use super::usage::{consume, record_usage};
use super::{Fleet, FleetError};

const MAX_SMS_PER_SIM: usize = 500;
/// An MT SMS is delivered this long (simulated) after submission when the clock drives it.
pub(super) const MT_DELIVERY_DELAY_SECS: i64 = 10;

#[derive(Debug, Clone)]
pub struct NewSms {
    pub source_address: String,
    pub source_address_type: u16,
    pub payload: String,
    pub udh: Option<String>,
    pub dcs: u8,
    pub expiry: Option<DateTime<Utc>>,
}

impl Fleet {
    /// An MT SMS: delivered at once when nothing runs by itself, else after a short simulated
    /// delay on the clock (so a client can see it buffered, and cancel it).
    pub fn send_mt_sms(&mut self, iccid: u64, sms: NewSms) -> Result<u64, FleetError> {
        let now = self.now;
        let id = self.next_sms_id;
        let autonomous = self.autonomous;
        let (sim, journal) = self.sim_and_journal(iccid)?;
        let mut record = SmsRecord {
            id,
            direction: SmsDirection::Mt,
            state: SmsState::Buffered,
            submitted: now,
            delivered: None,
            final_date: None,
            expiry: sms.expiry.unwrap_or(now + Duration::days(1)),
            source_address: sms.source_address,
            source_address_type: sms.source_address_type,
            payload: sms.payload,
            udh: sms.udh,
            dcs: sms.dcs,
        };
        if !autonomous {
            deliver(&mut record, now);
        }
        file_sms(
            sim,
            journal,
            record,
            DayUsage {
                sms_mt: 1,
                ..Default::default()
            },
        );
        self.next_sms_id += 1;
        Ok(id)
    }

    /// A message from the device: counted as MO usage, consuming the SMS quota.
    pub fn receive_mo_sms(
        &mut self,
        iccid: u64,
        payload: &str,
        at: DateTime<Utc>,
    ) -> Result<u64, FleetError> {
        let id = self.next_sms_id;
        let (sim, journal) = self.sim_and_journal(iccid)?;
        let msisdn = sim.msisdn.to_string();
        file_sms(
            sim,
            journal,
            SmsRecord {
                id,
                direction: SmsDirection::Mo,
                state: SmsState::Delivered,
                submitted: at,
                delivered: Some(at),
                final_date: Some(at),
                expiry: at + Duration::days(1),
                source_address: msisdn,
                source_address_type: 145,
                payload: payload.to_owned(),
                udh: None,
                dcs: 0,
            },
            DayUsage {
                sms_mo: 1,
                ..Default::default()
            },
        );
        self.next_sms_id += 1;
        Ok(id)
    }

    /// Cancels a buffered MT SMS; a delivered or received one can no longer be cancelled.
    pub fn cancel_sms(&mut self, iccid: u64, id: u64) -> Result<(), FleetError> {
        let now = self.now;
        let sim = self.sim_mut(iccid)?;
        let sms = sim
            .extra
            .as_mut()
            .and_then(|e| e.sms.iter_mut().find(|s| s.id == id))
            .ok_or(FleetError::UnknownSms)?;
        match (sms.direction, sms.state) {
            (SmsDirection::Mt, SmsState::Buffered) => {
                sms.state = SmsState::Cancelled;
                sms.final_date = Some(now);
                Ok(())
            }
            (_, SmsState::Cancelled) => Ok(()),
            _ => Err(FleetError::Invalid(
                "The SMS has already been delivered and cannot be cancelled.".into(),
            )),
        }
    }

    pub fn sms_of(&self, iccid: u64) -> Result<&[SmsRecord], FleetError> {
        Ok(self
            .sim(iccid)?
            .extra
            .as_ref()
            .map(|e| e.sms.as_slice())
            .unwrap_or(&[]))
    }
}

/// Keeps a new message in the SIM's list, counts it as usage on the day it was submitted, and
/// takes it from the SMS quota.
fn file_sms(sim: &mut SimRecord, journal: &mut Journal, sms: SmsRecord, usage: DayUsage) {
    let at = sms.submitted;
    push_sms(sim, sms);
    record_usage(sim, journal, at.date_naive(), usage, (at, at));
    consume(sim, journal, QuotaKind::Sms, at, |q| q.consume(1, at));
}

fn push_sms(sim: &mut SimRecord, sms: SmsRecord) {
    let list = &mut sim.extra_mut().sms;
    if list.len() >= MAX_SMS_PER_SIM {
        list.remove(0);
    }
    list.push(sms);
}

pub(super) fn deliver(sms: &mut SmsRecord, at: DateTime<Utc>) {
    sms.state = SmsState::Delivered;
    sms.delivered = Some(at);
    sms.final_date = Some(at);
}
