use super::*;
use crate::testing::{given, iccid, t, uid};
use crate::{DomainError, DomainEvent, ErrorKind};

fn request(payload: &str) -> SmsCommand {
    SmsCommand::RequestSend {
        message_id: uid(7),
        iccid: iccid(),
        payload: payload.into(),
        source_address: Some("1NCE".into()),
        at: t(0),
    }
}

fn requested() -> SmsEvent {
    SmsEvent::SmsSendRequested {
        message_id: uid(7),
        iccid: iccid(),
        payload: "ping".into(),
        source_address: Some("1NCE".into()),
        encoding: Encoding::Gsm7,
        parts: 1,
        requested_at: t(0),
    }
}

fn submitted() -> SmsEvent {
    SmsEvent::SmsSubmitted {
        iccid: iccid(),
        provider_message_id: Some("4711".into()),
        submitted_at: t(1),
    }
}

fn delivered() -> SmsEvent {
    SmsEvent::SmsDelivered {
        iccid: iccid(),
        delivered_at: t(2),
    }
}

fn failed() -> SmsEvent {
    SmsEvent::SmsFailed {
        iccid: iccid(),
        reason: "expired".into(),
        failed_at: t(2),
    }
}

fn received() -> SmsEvent {
    SmsEvent::SmsReceived {
        message_id: uid(8),
        iccid: iccid(),
        payload: "temp=21".into(),
        source_address: Some("882285100000018".into()),
        provider_message_id: Some("99".into()),
        received_at: t(0),
    }
}

fn mark_submitted() -> SmsCommand {
    SmsCommand::MarkSubmitted {
        provider_message_id: Some("4711".into()),
        at: t(1),
    }
}

fn mark_delivered() -> SmsCommand {
    SmsCommand::MarkDelivered { at: t(2) }
}

fn mark_failed() -> SmsCommand {
    SmsCommand::MarkFailed {
        reason: "expired".into(),
        at: t(2),
    }
}

fn record_received() -> SmsCommand {
    SmsCommand::RecordReceived {
        message_id: uid(8),
        iccid: iccid(),
        payload: "temp=21".into(),
        source_address: Some("882285100000018".into()),
        provider_message_id: Some("99".into()),
        received_at: t(0),
    }
}

#[test]
fn a_send_request_records_encoding_and_parts() {
    let state = given::<Sms>(&[]).when(request("ping")).then(&[requested()]);
    assert_eq!(state.status(), Some(SmsStatus::Requested));
    assert_eq!(state.direction(), Some(Direction::MobileTerminated));
    let long_unicode = "ж".repeat(71);
    given::<Sms>(&[])
        .when(request(&long_unicode))
        .then(&[SmsEvent::SmsSendRequested {
            message_id: uid(7),
            iccid: iccid(),
            payload: long_unicode.clone(),
            source_address: Some("1NCE".into()),
            encoding: Encoding::Ucs2,
            parts: 2,
            requested_at: t(0),
        }]);
}

#[test]
fn an_empty_payload_is_refused() {
    let e = given::<Sms>(&[])
        .when(request(""))
        .then_error("SMS_PAYLOAD_EMPTY");
    assert_eq!(e.kind(), ErrorKind::Validation);
}

#[test]
fn a_payload_over_six_parts_is_refused() {
    let e = given::<Sms>(&[])
        .when(request(&"a".repeat(919)))
        .then_error("SMS_PAYLOAD_TOO_LONG");
    assert_eq!(e.kind(), ErrorKind::Validation);
}

#[test]
fn a_message_id_is_used_once() {
    let e = given::<Sms>(&[requested()])
        .when(request("again"))
        .then_error("SMS_ALREADY_EXISTS");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    given::<Sms>(&[received()])
        .when(request("again"))
        .then_error("SMS_ALREADY_EXISTS");
    given::<Sms>(&[requested()])
        .when(record_received())
        .then_error("SMS_ALREADY_EXISTS");
}

#[test]
fn status_reports_for_an_unknown_message_are_not_found() {
    for cmd in [mark_submitted(), mark_delivered(), mark_failed()] {
        let e = given::<Sms>(&[]).when(cmd).then_error("SMS_NOT_FOUND");
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
}

#[test]
fn requested_then_submitted_then_delivered() {
    let state = given::<Sms>(&[requested()])
        .when(mark_submitted())
        .then(&[submitted()]);
    assert_eq!(state.provider_message_id(), Some("4711"));
    let state = given::<Sms>(&[requested(), submitted()])
        .when(mark_delivered())
        .then(&[delivered()]);
    assert_eq!(state.status(), Some(SmsStatus::Delivered));
    assert_eq!(state.delivered_at(), Some(t(2)));
}

#[test]
fn a_message_may_fail_before_or_after_submission() {
    given::<Sms>(&[requested()]).when(mark_failed()).then(&[failed()]);
    let state = given::<Sms>(&[requested(), submitted()])
        .when(mark_failed())
        .then(&[failed()]);
    assert_eq!(state.failure_reason(), Some("expired"));
}

#[test]
fn delivery_needs_a_submission_first() {
    let e = given::<Sms>(&[requested()])
        .when(mark_delivered())
        .then_error("INVALID_SMS_TRANSITION");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    given::<Sms>(&[requested(), submitted()])
        .when(mark_submitted())
        .then_error("INVALID_SMS_TRANSITION");
}

#[test]
fn final_states_accept_no_transition() {
    for history in [
        vec![requested(), submitted(), delivered()],
        vec![requested(), failed()],
        vec![received()],
    ] {
        for cmd in [mark_submitted(), mark_delivered(), mark_failed()] {
            given::<Sms>(&history)
                .when(cmd)
                .then_error("INVALID_SMS_TRANSITION");
        }
    }
}

#[test]
fn a_received_message_is_recorded_as_mobile_originated() {
    let state = given::<Sms>(&[]).when(record_received()).then(&[received()]);
    assert_eq!(state.direction(), Some(Direction::MobileOriginated));
    assert_eq!(state.status(), Some(SmsStatus::Received));
    assert_eq!(state.payload(), "temp=21");
    assert!(state.status().unwrap().is_final());
}

#[test]
fn sms_events_carry_the_iccid_and_serialise_adjacently_tagged() {
    let json = serde_json::to_value(delivered()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "event_type": "SmsDelivered",
            "payload": {"iccid": "8988303000123456789", "delivered_at": "2025-03-01T00:02:00Z"}
        })
    );
    assert_eq!(
        serde_json::to_value(requested()).unwrap()["payload"]["encoding"],
        "gsm7"
    );
    for e in [requested(), submitted(), delivered(), failed(), received()] {
        assert_eq!(e.iccid(), &iccid());
        assert!(SmsEvent::EVENT_TYPES.contains(&e.event_type()));
    }
    assert_eq!(serde_json::to_value(Direction::MobileOriginated).unwrap(), "MO");
    assert_eq!(Sms::TYPE, "sms");
}

fn mark_unknown() -> SmsCommand {
    SmsCommand::MarkOutcomeUnknown {
        reason: "answer lost".into(),
        at: t(3),
    }
}

fn outcome_unknown() -> SmsEvent {
    SmsEvent::SmsOutcomeUnknown {
        iccid: iccid(),
        reason: "answer lost".into(),
        at: t(3),
    }
}

#[test]
fn a_requested_message_may_end_unknown_and_a_later_report_settles_it() {
    let state = given::<Sms>(&[requested()])
        .when(mark_unknown())
        .then(&[outcome_unknown()]);
    assert_eq!(state.status(), Some(SmsStatus::Unknown));
    assert!(!state.status().unwrap().is_final());
    given::<Sms>(&[requested(), outcome_unknown()])
        .when(mark_submitted())
        .then(&[submitted()]);
    given::<Sms>(&[requested(), outcome_unknown()])
        .when(mark_failed())
        .then(&[failed()]);
}

#[test]
fn only_a_requested_message_can_end_unknown() {
    for history in [
        vec![requested(), submitted()],
        vec![requested(), submitted(), delivered()],
        vec![requested(), outcome_unknown()],
        vec![received()],
    ] {
        given::<Sms>(&history)
            .when(mark_unknown())
            .then_error("INVALID_SMS_TRANSITION");
    }
    given::<Sms>(&[]).when(mark_unknown()).then_error("SMS_NOT_FOUND");
}
