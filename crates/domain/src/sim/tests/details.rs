use super::*;
use crate::testing::{given, iccid, imsi, t};
use crate::{Aggregate, DomainError, DomainEvent, ErrorKind};

// ---- registration ----

#[test]
fn register_records_the_sim_with_normalised_label_and_tags() {
    let state = given::<Sim>(&[])
        .when(SimCommand::Register {
            iccid: iccid(),
            imsi: imsi(),
            msisdn: Some(Msisdn::parse("882285100000018").unwrap()),
            label: Some("  Pump 7 ".into()),
            tags: strings(&["site:b", "fleet-1", "site:b"]),
            at: t(0),
        })
        .then(&[SimEvent::SimRegistered {
            iccid: iccid(),
            imsi: imsi(),
            msisdn: Some(Msisdn::parse("882285100000018").unwrap()),
            label: Some("Pump 7".into()),
            tags: strings(&["fleet-1", "site:b"]),
            registered_at: t(0),
        }]);
    assert!(state.is_registered());
    assert_eq!(state.status(), SimStatus::Inactive);
    assert_eq!(state.label(), Some("Pump 7"));
    assert_eq!(state.iccid(), Some(&iccid()));
}

#[test]
fn register_twice_is_a_conflict() {
    let err = given::<Sim>(&[registered()])
        .when(every_command().remove(0))
        .then_error("SIM_ALREADY_REGISTERED");
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

#[test]
fn register_validates_label_and_tags() {
    let cmd = |label: Option<&str>, tags: &[&str]| SimCommand::Register {
        iccid: iccid(),
        imsi: imsi(),
        msisdn: None,
        label: label.map(str::to_owned),
        tags: strings(tags),
        at: t(0),
    };
    given::<Sim>(&[])
        .when(cmd(Some("   "), &[]))
        .then_error("INVALID_LABEL");
    given::<Sim>(&[])
        .when(cmd(None, &["bad tag"]))
        .then_error("INVALID_TAGS");
}

#[test]
fn every_command_but_register_needs_a_registered_sim() {
    for cmd in every_command().into_iter().skip(1) {
        let err = given::<Sim>(&[]).when(cmd).then_error("SIM_NOT_FOUND");
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }
}

// ---- details ----

#[test]
fn update_sets_label_and_tags_in_one_go() {
    let state = given::<Sim>(&[registered()])
        .when(update(Some(Some("Pump 7")), Some(&["b", "a"])))
        .then(&[
            SimEvent::SimLabelChanged {
                label: Some("Pump 7".into()),
            },
            SimEvent::SimTagsChanged {
                tags: strings(&["a", "b"]),
            },
        ]);
    assert_eq!(state.tags(), ["a", "b"]);
}

/// A registered SIM that was given `label`.
fn labelled(label: &str) -> Vec<SimEvent> {
    with(
        vec![registered()],
        SimEvent::SimLabelChanged {
            label: Some(label.into()),
        },
    )
}

#[test]
fn update_clears_the_label_with_some_none() {
    given::<Sim>(&labelled("x"))
        .when(update(Some(None), None))
        .then(&[SimEvent::SimLabelChanged { label: None }]);
}

#[test]
fn update_without_a_real_change_emits_nothing() {
    let history = with(
        labelled("Pump"),
        SimEvent::SimTagsChanged {
            tags: strings(&["a", "b"]),
        },
    );
    // Same label (modulo whitespace), same tag set in another order, untouched fields.
    given::<Sim>(&history)
        .when(update(Some(Some(" Pump ")), Some(&["b", "a", "a"])))
        .then(&[]);
    given::<Sim>(&history).when(update(None, None)).then(&[]);
    given::<Sim>(&[registered()])
        .when(update(Some(None), Some(&[])))
        .then(&[]);
}

#[test]
fn update_only_emits_the_field_that_changed() {
    given::<Sim>(&labelled("Pump"))
        .when(update(Some(Some("Pump")), Some(&["new"])))
        .then(&[SimEvent::SimTagsChanged {
            tags: strings(&["new"]),
        }]);
}

#[test]
fn label_rules() {
    let exactly_100 = "é".repeat(100);
    given::<Sim>(&[registered()])
        .when(update(Some(Some(&exactly_100)), None))
        .then(&[SimEvent::SimLabelChanged {
            label: Some(exactly_100.clone()),
        }]);
    let e = given::<Sim>(&[registered()])
        .when(update(Some(Some(&"a".repeat(101))), None))
        .then_error("INVALID_LABEL");
    assert_eq!(e.kind(), ErrorKind::Validation);
    given::<Sim>(&[registered()])
        .when(update(Some(Some("")), None))
        .then_error("INVALID_LABEL");
    given::<Sim>(&[registered()])
        .when(update(Some(Some("a\u{0}b")), None))
        .then_error("INVALID_LABEL");
}

#[test]
fn tag_rules() {
    let twenty: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    let refs: Vec<&str> = twenty.iter().map(String::as_str).collect();
    given::<Sim>(&[registered()])
        .when(update(None, Some(&refs)))
        .then(&[SimEvent::SimTagsChanged {
            tags: normalise_tags(twenty.clone()).unwrap(),
        }]);
    let mut too_many = refs.clone();
    too_many.push("t20");
    given::<Sim>(&[registered()])
        .when(update(None, Some(&too_many)))
        .then_error("INVALID_TAGS");
    let long = "a".repeat(51);
    for bad in ["", "with space", "ümlaut", "semi;colon", long.as_str()] {
        let e = given::<Sim>(&[registered()])
            .when(update(None, Some(&[bad])))
            .then_error("INVALID_TAGS");
        assert_eq!(e.kind(), ErrorKind::Validation);
    }
    let fifty = "a".repeat(50);
    given::<Sim>(&[registered()])
        .when(update(None, Some(&["A-z_0.9:x", fifty.as_str()])))
        .then(&[SimEvent::SimTagsChanged {
            tags: strings(&["A-z_0.9:x", fifty.as_str()]),
        }]);
}

#[test]
fn a_bad_tag_refuses_the_whole_update() {
    given::<Sim>(&[registered()])
        .when(update(Some(Some("fine")), Some(&["not fine"])))
        .then_error("INVALID_TAGS");
}

// ---- IMEI ----

#[test]
fn imei_lock_changes_only_when_different() {
    let state = given::<Sim>(&[registered()])
        .when(SimCommand::SetImeiLock { enabled: true })
        .then(&[SimEvent::ImeiLockChanged { enabled: true }]);
    assert!(state.imei_lock());
    given::<Sim>(&[registered()])
        .when(SimCommand::SetImeiLock { enabled: false })
        .then(&[]);
    given::<Sim>(&[registered(), SimEvent::ImeiLockChanged { enabled: true }])
        .when(SimCommand::SetImeiLock { enabled: true })
        .then(&[]);
}

#[test]
fn imei_is_recorded_only_when_it_differs() {
    let a = Imei::parse("352099001761481").unwrap();
    let b = Imei::parse("352099001761482").unwrap();
    given::<Sim>(&[registered()])
        .when(SimCommand::RecordImei { imei: a.clone() })
        .then(&[SimEvent::ImeiRecorded { imei: a.clone() }]);
    let seen = [registered(), SimEvent::ImeiRecorded { imei: a.clone() }];
    given::<Sim>(&seen)
        .when(SimCommand::RecordImei { imei: a })
        .then(&[]);
    let state = given::<Sim>(&seen)
        .when(SimCommand::RecordImei { imei: b.clone() })
        .then(&[SimEvent::ImeiRecorded { imei: b.clone() }]);
    assert_eq!(state.imei(), Some(&b));
}

// ---- serialisation ----

#[test]
fn events_serialise_adjacently_tagged_with_plain_string_ids() {
    let json = serde_json::to_value(registered()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "event_type": "SimRegistered",
            "payload": {
                "iccid": "8988303000123456789",
                "imsi": "901405100000001",
                "msisdn": null,
                "label": null,
                "tags": [],
                "registered_at": "2025-03-01T00:00:00Z"
            }
        })
    );
    let changed = SimEvent::ProviderStatusChanged {
        from: None,
        to: ProviderStatus::Disabled,
        sim_status: SimStatus::Suspended,
        at: t(0),
    };
    let json = serde_json::to_value(&changed).unwrap();
    assert_eq!(json["payload"]["to"], "Disabled");
    assert_eq!(json["payload"]["sim_status"], "suspended");
}

#[test]
fn event_type_names_are_the_variant_names() {
    let events = [
        registered(),
        SimEvent::ImeiLockChanged { enabled: true },
        SimEvent::SimTerminated {
            reason: None,
            terminated_at: t(0),
        },
    ];
    for e in &events {
        crate::testing::check_envelope(e);
        assert!(SimEvent::EVENT_TYPES.contains(&e.event_type()));
    }
    assert_eq!(SimEvent::EVENT_TYPES.len(), 28);
    assert_eq!(Sim::TYPE, "sim");
    assert_eq!(SimStatus::Suspended.to_string(), "suspended");
}

#[test]
fn update_command_tells_absent_from_null() {
    let absent: SimCommand = serde_json::from_str(r#"{"command":"UpdateDetails"}"#).unwrap();
    assert!(matches!(
        absent,
        SimCommand::UpdateDetails {
            label: None,
            tags: None
        }
    ));
    let null: SimCommand =
        serde_json::from_str(r#"{"command":"UpdateDetails","label":null,"tags":["a"]}"#).unwrap();
    assert!(matches!(
        null,
        SimCommand::UpdateDetails { label: Some(None), tags: Some(ref t) } if t == &["a"]
    ));
    let again: SimCommand = serde_json::from_value(serde_json::to_value(&null).unwrap()).unwrap();
    assert!(matches!(
        again,
        SimCommand::UpdateDetails {
            label: Some(None),
            ..
        }
    ));
}

#[test]
fn given_state_is_the_fold_of_the_history() {
    let g = given::<Sim>(&activated());
    assert_eq!(g.state().status(), SimStatus::Active);
    assert!(g.state().ever_active());
    assert_eq!(g.state().registered_at(), Some(t(0)));
}
