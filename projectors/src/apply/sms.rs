//! The `sms_messages` writes of SMS events.

use domain::SmsEvent;
use eventstore::StoredEvent;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Applier, ApplyError};

impl Applier {
    pub(super) async fn sms_event(
        &self,
        conn: &mut PgConnection,
        e: &StoredEvent,
        message_id: Uuid,
        event: SmsEvent,
    ) -> Result<(), ApplyError> {
        let iccid = event.iccid().to_string();
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new("UPDATE sms_messages SET version = ");
        q.push_bind(e.sequence)
            .push(", last_position = ")
            .push_bind(e.position)
            .push(", updated_at = ")
            .push_bind(e.recorded_at);
        match event {
            SmsEvent::SmsSendRequested {
                payload,
                source_address,
                encoding,
                parts,
                requested_at,
                ..
            } => {
                let encoding = serde_json::to_value(encoding)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned));
                sqlx::query(
                    "INSERT INTO sms_messages (message_id, iccid, direction, status, payload, encoding, parts, \
                       source_address, requested_at, version, last_position, updated_at) \
                     VALUES ($1, $2, 'MT', 'requested', $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (message_id) DO UPDATE SET iccid = EXCLUDED.iccid, direction = 'MT', \
                       status = 'requested', payload = EXCLUDED.payload, encoding = EXCLUDED.encoding, \
                       parts = EXCLUDED.parts, source_address = EXCLUDED.source_address, \
                       requested_at = EXCLUDED.requested_at, version = EXCLUDED.version, \
                       last_position = EXCLUDED.last_position, updated_at = EXCLUDED.updated_at",
                )
                .bind(message_id)
                .bind(&iccid)
                .bind(payload)
                .bind(encoding)
                .bind(i32::from(parts))
                .bind(source_address)
                .bind(requested_at)
                .bind(e.sequence)
                .bind(e.position)
                .bind(e.recorded_at)
                .execute(&mut *conn)
                .await?;
                return Ok(());
            }
            SmsEvent::SmsReceived {
                payload,
                source_address,
                provider_message_id,
                received_at,
                ..
            } => {
                sqlx::query(
                    "INSERT INTO sms_messages (message_id, iccid, direction, status, payload, source_address, \
                       provider_message_id, received_at, version, last_position, updated_at) \
                     VALUES ($1, $2, 'MO', 'received', $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (message_id) DO UPDATE SET iccid = EXCLUDED.iccid, direction = 'MO', \
                       status = 'received', payload = EXCLUDED.payload, source_address = EXCLUDED.source_address, \
                       provider_message_id = EXCLUDED.provider_message_id, received_at = EXCLUDED.received_at, \
                       version = EXCLUDED.version, last_position = EXCLUDED.last_position, \
                       updated_at = EXCLUDED.updated_at",
                )
                .bind(message_id)
                .bind(&iccid)
                .bind(payload)
                .bind(source_address)
                .bind(provider_message_id)
                .bind(received_at)
                .bind(e.sequence)
                .bind(e.position)
                .bind(e.recorded_at)
                .execute(&mut *conn)
                .await?;
                return Ok(());
            }
            SmsEvent::SmsSubmitted {
                provider_message_id,
                submitted_at,
                ..
            } => {
                q.push(", status = 'submitted', provider_message_id = ")
                    .push_bind(provider_message_id)
                    .push(", submitted_at = ")
                    .push_bind(submitted_at);
            }
            SmsEvent::SmsDelivered { delivered_at, .. } => {
                q.push(", status = 'delivered', delivered_at = ")
                    .push_bind(delivered_at);
            }
            SmsEvent::SmsFailed {
                reason, failed_at, ..
            } => {
                q.push(", status = 'failed', failure_reason = ")
                    .push_bind(reason)
                    .push(", failed_at = ")
                    .push_bind(failed_at);
            }
            SmsEvent::SmsOutcomeUnknown { reason, .. } => {
                q.push(", status = 'unknown', failure_reason = ")
                    .push_bind(reason);
            }
        }
        q.push(" WHERE message_id = ").push_bind(message_id);
        q.build().execute(&mut *conn).await?;
        Ok(())
    }
}
