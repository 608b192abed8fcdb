//! SMS events: the message's row (`MT`: requested → submitted → delivered / failed / unknown;
//! `MO`: received). They do not touch the SIM's row.

use domain::{Direction, SmsEvent, SmsStatus};
use eventstore::StoredEvent;
use uuid::Uuid;

use super::{Fold, SmsRow};

impl Fold {
    pub(super) fn sms_event(&mut self, e: &StoredEvent, message_id: Uuid, event: SmsEvent) {
        let iccid = event.iccid().to_string();
        let fresh = |direction: Direction, status: SmsStatus, payload: String| SmsRow {
            message_id,
            iccid: iccid.clone(),
            direction,
            status,
            payload,
            encoding: None,
            parts: None,
            source_address: None,
            provider_message_id: None,
            failure_reason: None,
            requested_at: None,
            submitted_at: None,
            delivered_at: None,
            failed_at: None,
            received_at: None,
            version: e.sequence,
            last_position: e.position,
            updated_at: e.recorded_at,
        };
        match event {
            SmsEvent::SmsSendRequested {
                payload,
                source_address,
                encoding,
                parts,
                requested_at,
                ..
            } => {
                let row = self.sms.entry(message_id).or_insert_with(|| {
                    fresh(Direction::MobileTerminated, SmsStatus::Requested, String::new())
                });
                row.iccid = iccid;
                row.direction = Direction::MobileTerminated;
                row.status = SmsStatus::Requested;
                row.payload = payload;
                row.encoding = serde_json::to_value(encoding)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned));
                row.parts = Some(i32::from(parts));
                row.source_address = source_address;
                row.requested_at = Some(requested_at);
            }
            SmsEvent::SmsReceived {
                payload,
                source_address,
                provider_message_id,
                received_at,
                ..
            } => {
                let row = self.sms.entry(message_id).or_insert_with(|| {
                    fresh(Direction::MobileOriginated, SmsStatus::Received, String::new())
                });
                row.iccid = iccid;
                row.direction = Direction::MobileOriginated;
                row.status = SmsStatus::Received;
                row.payload = payload;
                row.source_address = source_address;
                row.provider_message_id = provider_message_id;
                row.received_at = Some(received_at);
            }
            other => {
                let Some(row) = self.sms.get_mut(&message_id) else {
                    return; // as an UPDATE of a row that is not there
                };
                match other {
                    SmsEvent::SmsSubmitted {
                        provider_message_id,
                        submitted_at,
                        ..
                    } => {
                        row.status = SmsStatus::Submitted;
                        row.provider_message_id = provider_message_id;
                        row.submitted_at = Some(submitted_at);
                    }
                    SmsEvent::SmsDelivered { delivered_at, .. } => {
                        row.status = SmsStatus::Delivered;
                        row.delivered_at = Some(delivered_at);
                    }
                    SmsEvent::SmsFailed {
                        reason, failed_at, ..
                    } => {
                        row.status = SmsStatus::Failed;
                        row.failure_reason = Some(reason);
                        row.failed_at = Some(failed_at);
                    }
                    SmsEvent::SmsOutcomeUnknown { reason, .. } => {
                        row.status = SmsStatus::Unknown;
                        row.failure_reason = Some(reason);
                    }
                    SmsEvent::SmsSendRequested { .. } | SmsEvent::SmsReceived { .. } => {
                        unreachable!("handled above")
                    }
                }
            }
        }
        let row = self.sms.get_mut(&message_id).expect("present");
        row.version = e.sequence;
        row.last_position = e.position;
        row.updated_at = e.recorded_at;
        self.dirty_sms.insert(message_id);
    }
}
