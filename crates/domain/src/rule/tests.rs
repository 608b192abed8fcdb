use super::*;
use crate::testing::{given, uid};

fn spec() -> RuleSpec {
    RuleSpec {
        name: "top up fleet-7 at 80 %".into(),
        trigger: Trigger {
            event_type: "QuotaThresholdCrossed".into(),
            tag: Some("fleet-7".into()),
            quota_kind: Some(QuotaKind::Data),
            threshold: Some(80),
        },
        action: RuleAction::TopUp,
    }
}

fn created() -> RuleEvent {
    RuleEvent::RuleCreated {
        rule_id: uid(1),
        spec: spec(),
    }
}

fn create(spec: RuleSpec) -> RuleCommand {
    RuleCommand::Create {
        rule_id: uid(1),
        spec,
    }
}

#[test]
fn a_rule_is_created_disabled() {
    let rule = given::<Rule>(&[]).when(create(spec())).then(&[created()]);
    assert!(rule.exists() && !rule.enabled());
    assert_eq!(rule.spec(), Some(&spec()));
}

#[test]
fn a_rule_is_created_once() {
    given::<Rule>(&[created()])
        .when(create(spec()))
        .then_error("RULE_ALREADY_EXISTS");
}

#[test]
fn enabling_and_disabling_record_only_changes() {
    let rule = given::<Rule>(&[created()])
        .when(RuleCommand::Enable)
        .then(&[RuleEvent::RuleEnabled {}]);
    assert!(rule.enabled());
    given::<Rule>(&[created(), RuleEvent::RuleEnabled {}])
        .when(RuleCommand::Enable)
        .then(&[]);
    given::<Rule>(&[created()]).when(RuleCommand::Disable).then(&[]);
    let rule = given::<Rule>(&[created(), RuleEvent::RuleEnabled {}])
        .when(RuleCommand::Disable)
        .then(&[RuleEvent::RuleDisabled {}]);
    assert!(!rule.enabled());
}

#[test]
fn a_change_is_checked_and_the_same_definition_records_nothing() {
    let mut changed = spec();
    changed.action = RuleAction::SendSms {
        text: "quota at 80 %".into(),
    };
    given::<Rule>(&[created()])
        .when(RuleCommand::Change {
            spec: changed.clone(),
        })
        .then(&[RuleEvent::RuleChanged { spec: changed }]);
    given::<Rule>(&[created()])
        .when(RuleCommand::Change { spec: spec() })
        .then(&[]);
    let mut bad = spec();
    bad.trigger.threshold = Some(0);
    given::<Rule>(&[created()])
        .when(RuleCommand::Change { spec: bad })
        .then_error("INVALID_RULE");
}

#[test]
fn a_deleted_rule_is_gone_and_never_enabled() {
    let rule = given::<Rule>(&[created(), RuleEvent::RuleEnabled {}])
        .when(RuleCommand::Delete)
        .then(&[RuleEvent::RuleDeleted {}]);
    assert!(!rule.exists() && !rule.enabled());
    let deleted = [created(), RuleEvent::RuleDeleted {}];
    given::<Rule>(&deleted)
        .when(RuleCommand::Enable)
        .then_error("RULE_DELETED");
    given::<Rule>(&deleted)
        .when(RuleCommand::Delete)
        .then_error("RULE_DELETED");
    given::<Rule>(&deleted)
        .when(RuleCommand::Change { spec: spec() })
        .then_error("RULE_DELETED");
}

#[test]
fn commands_on_an_unknown_rule_are_not_found() {
    for command in [RuleCommand::Enable, RuleCommand::Disable, RuleCommand::Delete] {
        given::<Rule>(&[]).when(command).then_error("RULE_NOT_FOUND");
    }
}

#[test]
fn bad_definitions_are_refused() {
    let cases: Vec<fn(&mut RuleSpec)> = vec![
        |s| s.name = "  ".into(),
        |s| s.trigger.event_type = "Quota Threshold".into(),
        |s| s.trigger.event_type = "SimSuspended".into(), // threshold and quota kind on a SIM event
        |s| s.trigger.threshold = Some(101),
        |s| s.trigger.tag = Some("no spaces".into()),
        |s| s.action = RuleAction::SendSms { text: String::new() },
        |s| s.action = RuleAction::AddTag { tag: "a,b".into() },
    ];
    for change in cases {
        let mut bad = spec();
        change(&mut bad);
        given::<Rule>(&[]).when(create(bad)).then_error("INVALID_RULE");
    }
}

#[test]
fn the_trigger_matches_type_kind_threshold_and_tag() {
    let trigger = spec().trigger;
    let tags = ["fleet-7".to_owned()];
    let facts = Facts {
        event_type: "QuotaThresholdCrossed",
        quota_kind: Some(QuotaKind::Data),
        threshold: Some(80),
        tags: &tags,
    };
    assert!(trigger.matches(&facts));
    assert!(!trigger.matches(&Facts {
        threshold: Some(100),
        ..facts
    }));
    assert!(!trigger.matches(&Facts {
        quota_kind: Some(QuotaKind::Sms),
        ..facts
    }));
    assert!(!trigger.matches(&Facts { tags: &[], ..facts }));
    assert!(!trigger.matches(&Facts {
        event_type: "QuotaExhausted",
        ..facts
    }));
    let any = Trigger {
        event_type: "SimSuspended".into(),
        tag: None,
        quota_kind: None,
        threshold: None,
    };
    assert!(any.matches(&Facts {
        event_type: "SimSuspended",
        quota_kind: None,
        threshold: None,
        tags: &[]
    }));
}

#[test]
fn a_webhook_rule_records_one_request_per_firing_as_a_settlement() {
    let webhook_id = uid(9);
    let with_webhook = RuleSpec {
        action: RuleAction::Webhook { webhook_id },
        ..spec()
    };
    let cause = WebhookCause {
        event_id: "quota:89490000000000000001:data:3".into(),
        position: 42,
        event_type: "QuotaThresholdCrossed".into(),
        iccid: "89490000000000000001".into(),
        event: serde_json::json!({"position": 42}),
    };
    let events = [RuleEvent::RuleCreated {
        rule_id: uid(1),
        spec: with_webhook,
    }];
    let requested = RuleEvent::RuleWebhookRequested {
        webhook_id,
        cause: cause.clone(),
    };
    let rule = given::<Rule>(&events)
        .when(RuleCommand::RequestWebhook { cause: cause.clone() })
        .then(std::slice::from_ref(&requested));
    assert!(rule.exists(), "a firing leaves the rule as it was");
    assert!(Rule::is_settlement(&requested), "If-Match survives a firing");
    assert!(!Rule::is_settlement(&RuleEvent::RuleEnabled {}));
    // A rule whose action is a command never records a webhook request.
    given::<Rule>(&[created()])
        .when(RuleCommand::RequestWebhook { cause })
        .then_error("INVALID_RULE");
}
