//! Any sequence of commands keeps the SMS lifecycle sound.

use proptest::prelude::*;

use super::*;
use crate::sequences::{run_sequence, Step};
use crate::testing::{iccid, t, uid};
use crate::DomainError;

fn arb_command() -> impl Strategy<Value = SmsCommand> {
    let at = (0i64..100).prop_map(t);
    let payload = prop_oneof![
        Just(String::new()),
        "[a-z€ж]{1,20}",
        (150usize..1000).prop_map(|n| "a".repeat(n)),
    ];
    prop_oneof![
        (payload.clone(), at.clone()).prop_map(|(payload, at)| SmsCommand::RequestSend {
            message_id: uid(1),
            iccid: iccid(),
            payload,
            source_address: None,
            at,
        }),
        at.clone().prop_map(|at| SmsCommand::MarkSubmitted {
            provider_message_id: None,
            at
        }),
        at.clone().prop_map(|at| SmsCommand::MarkDelivered { at }),
        at.clone().prop_map(|at| SmsCommand::MarkFailed {
            reason: "x".into(),
            at
        }),
        (payload, at).prop_map(|(payload, at)| SmsCommand::RecordReceived {
            message_id: uid(1),
            iccid: iccid(),
            payload,
            source_address: None,
            provider_message_id: None,
            received_at: at,
        }),
    ]
}

/// A send request's payload is not empty and fits, in the encoding and parts it was given.
fn check_event(_: &Sms, event: &SmsEvent) -> Result<(), TestCaseError> {
    if let SmsEvent::SmsSendRequested {
        payload,
        encoding,
        parts,
        ..
    } = event
    {
        prop_assert!(!payload.is_empty());
        prop_assert!((1..=MAX_PARTS).contains(parts));
        prop_assert_eq!(sms_encoding(payload).unwrap(), (*encoding, *parts));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_command_sequence_keeps_the_lifecycle_sound(
        commands in prop::collection::vec(arb_command(), 1..20)
    ) {
        run_sequence(commands, check_event, |step: Step<'_, Sms>| {
            let Ok(events) = step.outcome else { return Ok(()) };
            if let Some(status) = step.before.status() {
                prop_assert!(!status.is_final(), "a final message never changes: {:?}", events);
            }
            prop_assert_eq!(events.len(), 1);
            // Direction never changes once set.
            if let Some(d) = step.before.direction() {
                prop_assert_eq!(step.after.direction(), Some(d));
            }
            Ok(())
        })?;
    }

    #[test]
    fn parts_never_exceed_the_limit_and_grow_with_length(s in "\\PC{0,500}") {
        match sms_encoding(&s) {
            Ok((encoding, parts)) => {
                prop_assert!((1..=MAX_PARTS).contains(&parts));
                let units: usize = match encoding {
                    Encoding::Gsm7 => s.chars().map(|c| gsm7_septets(c).unwrap()).sum(),
                    Encoding::Ucs2 => s.encode_utf16().count(),
                };
                let per_part = if encoding == Encoding::Gsm7 { 153 } else { 67 };
                prop_assert!(units <= usize::from(parts) * per_part || parts == 1);
            }
            Err(e) => prop_assert!(matches!(e.code(), "SMS_PAYLOAD_EMPTY" | "SMS_PAYLOAD_TOO_LONG")),
        }
    }
}
