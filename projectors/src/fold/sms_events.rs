//! SMS events: the message's row (`MT`: requested → submitted → delivered / failed / unknown;
//! `MO`: received). They do not touch the SIM's row.

use domain::{Direction, SmsEvent, SmsStatus};
use eventstore::StoredEvent;
use uuid::Uuid;

use super::{Fold, SmsRow};

impl Fold {
    pub(super) fn sms_event(&mut self, e: &StoredEvent, message_id: Uuid, event: SmsEvent) {
        let iccid = event.iccid().to_string();
        let row = match event {
            SmsEvent::SmsSendRequested {
                payload,
                source_address,
                encoding,
                parts,
                requested_at,
                ..
            } => {
                let row = self.opened_sms(e, message_id, iccid, Direction::MobileTerminated, payload);
                row.encoding = serde_json::to_value(encoding)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned));
                row.parts = Some(i32::from(parts));
                row.source_address = source_address;
                row.requested_at = Some(requested_at);
                row
            }
            SmsEvent::SmsReceived {
                payload,
                source_address,
                provider_message_id,
                received_at,
                ..
            } => {
                let row = self.opened_sms(e, message_id, iccid, Direction::MobileOriginated, payload);
                row.source_address = source_address;
                row.provider_message_id = provider_message_id;
                row.received_at = Some(received_at);
                row
            }
            later => {
                let Some(row) = self.sms.get_mut(&message_id) else {
                    return; // as an UPDATE of a row that is not there
                };
                match later {
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
                row
            }
        };
        row.version = e.sequence;
        row.last_position = e.position;
        row.updated_at = e.recorded_at;
        self.dirty_sms.insert(message_id);
    }

    /// The row a send request (`MT`, then `requested`) or a reception (`MO`, `received`)
    /// starts: created when missing, then given the message's SIM, direction, status and text
    /// (the rest is the event's to set).
    fn opened_sms(
        &mut self,
        e: &StoredEvent,
        message_id: Uuid,
        iccid: String,
        direction: Direction,
        payload: String,
    ) -> &mut SmsRow {
        let status = match direction {
            Direction::MobileTerminated => SmsStatus::Requested,
            Direction::MobileOriginated => SmsStatus::Received,
        };
        let row = self.sms.entry(message_id).or_insert_with(|| SmsRow {
            message_id,
            iccid: iccid.clone(),
            direction,
            status,
            payload: String::new(),
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
        });
        row.iccid = iccid;
        row.direction = direction;
        row.status = status;
        row.payload = payload;
        row
    }
}
