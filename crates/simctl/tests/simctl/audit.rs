//! `simctl audit export` and `audit verify`: a chain verifies; a removed, an altered, a
//! reordered record and a cut-short chain are each found offline; a read-model row changed
//! behind the projectors' back is found against the platform.

use serde_json::{json, Value};
use sqlx::PgPool;

use crate::common::{iccid, Platform};

/// The kinds of problem `audit verify -o jsonl` reported.
fn kinds(problems: &[Value]) -> Vec<&str> {
    problems.iter().map(|p| p["kind"].as_str().unwrap()).collect()
}

/// `audit verify PATH EXTRA… -o jsonl` under a profile that does not exist: offline needs none.
async fn verify(platform: &Platform, path: &str, extra: &[&str]) -> crate::common::Run {
    let mut args = vec!["--profile", "nowhere", "audit", "verify", "-o", "jsonl", path];
    args.extend_from_slice(extra);
    platform.simctl(&args).await
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn audit_chains_reveal_removed_altered_reordered_records_and_read_model_drift(pool: PgPool) {
    let platform = Platform::start(pool).await;
    platform.login().await;
    for n in 1..=3 {
        platform.register(n, "tracker").await;
    }
    platform
        .simctl(&["sims", "label", &iccid(2), "tracker two", "--wait"])
        .await
        .expect(0);

    let chain = platform.home.join("chain.jsonl");
    let chain_path = chain.to_str().unwrap();
    let export = platform
        .simctl(&["audit", "export", "--file", chain_path])
        .await
        .expect(0);
    let anchor = export.stderr.trim().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(anchor.len(), 64, "{}", export.stderr);
    let text = std::fs::read_to_string(&chain).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // The label change comes with its provider update.
    assert_eq!(lines.len(), 7, "header, 5 events, end");

    // Offline (no profile needed), with the anchor, and against the platform: sound.
    verify(&platform, chain_path, &[]).await.expect(0);
    verify(&platform, chain_path, &["--expect-hash", &anchor])
        .await
        .expect(0);
    let wrong_anchor = verify(&platform, chain_path, &["--expect-hash", &"0".repeat(64)])
        .await
        .expect(5);
    assert_eq!(kinds(&wrong_anchor.jsonl()), ["anchor"]);
    platform
        .simctl(&["audit", "verify", chain_path, "--against-platform"])
        .await
        .expect(0);

    // Tampered copies.
    let tampered = |name: &str, lines: Vec<String>| {
        let path = platform.home.join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path.to_str().unwrap().to_owned()
    };
    let owned: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    let mut removed = owned.clone();
    removed.remove(2);
    let removed = verify(&platform, &tampered("removed.jsonl", removed), &[])
        .await
        .expect(5);
    assert!(kinds(&removed.jsonl()).contains(&"removed"), "{}", removed.stdout);

    let mut altered = owned.clone();
    assert!(altered[4].contains("tracker two"));
    altered[4] = altered[4].replace("tracker two", "tracker 2");
    let altered = verify(&platform, &tampered("altered.jsonl", altered), &[])
        .await
        .expect(5);
    assert_eq!(kinds(&altered.jsonl()), ["altered"], "{}", altered.stdout);

    let mut reordered = owned.clone();
    reordered.swap(1, 2);
    let reordered = verify(&platform, &tampered("reordered.jsonl", reordered), &[])
        .await
        .expect(5);
    assert!(
        kinds(&reordered.jsonl()).contains(&"reordered"),
        "{}",
        reordered.stdout
    );

    let mut cut = owned.clone();
    cut.truncate(4);
    let cut = verify(&platform, &tampered("cut.jsonl", cut), &[])
        .await
        .expect(5);
    assert_eq!(kinds(&cut.jsonl()), ["truncated"], "{}", cut.stdout);

    // A read-model row changed behind the projectors' back differs from the replay.
    sqlx::query("UPDATE sims SET label = 'forged' WHERE iccid = $1")
        .bind(iccid(1))
        .execute(&platform.commands.pool)
        .await
        .unwrap();
    let drift = platform
        .simctl(&["audit", "verify", chain_path, "--against-platform", "-o", "jsonl"])
        .await
        .expect(5)
        .jsonl();
    assert_eq!(kinds(&drift), ["read_model"], "{drift:?}");
    assert_eq!(drift[0]["at"], iccid(1).as_str());
    assert!(drift[0]["detail"].as_str().unwrap().contains("sims.label"));

    // One SIM's chain holds its events only.
    let sim_chain = platform
        .simctl(&["audit", "export", "--iccid", &iccid(2)])
        .await
        .expect(0);
    let records: Vec<Value> = sim_chain
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 5, "header, 3 events, end");
    assert!(records[1..4]
        .iter()
        .all(|r| r["event"]["iccid"] == iccid(2).as_str()));
    platform.cleanup().await;
}

/// The `read_model` problems of `audit verify --against-platform -o jsonl`.
async fn drift(platform: &Platform, chain: &str, code: i32) -> Vec<Value> {
    platform
        .simctl(&["audit", "verify", chain, "--against-platform", "-o", "jsonl"])
        .await
        .expect(code)
        .jsonl()
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn audit_verify_reports_quota_usage_and_sms_rows_changed_behind_the_projectors_back(pool: PgPool) {
    let platform = Platform::start(pool).await;
    platform.login().await;
    // Two SIMs as the connector first sees them: registered, enabled, online, a data quota
    // and a usage report; and an SMS to the first.
    let store = eventstore::EventStore::new(platform.commands.pool.clone());
    for n in [1, 2] {
        testkit::bench::onboard(&store, n, true).await;
    }
    let sim = testkit::bench::fleet_iccid(1);
    platform
        .simctl_with(&["sims", "sms", &sim, "-", "--wait"], Some("audit me\n"), &[])
        .await
        .expect(0);
    let chain = platform.home.join("fleet.jsonl");
    let chain = chain.to_str().unwrap();
    platform
        .simctl(&["audit", "export", "--file", chain])
        .await
        .expect(0);

    // Untouched, every read model equals the replay.
    assert_eq!(drift(&platform, chain, 0).await, Vec::<Value>::new());

    // Behind the projectors' back: a quota's remaining volume, an hour of usage, a message, a
    // connectivity change.
    let db = &platform.commands.pool;
    for statement in [
        "UPDATE sim_quotas SET remaining = remaining - 7 WHERE iccid = $1 AND kind = 'data'",
        "UPDATE sim_usage_hourly SET data_bytes = data_bytes + 100 WHERE iccid = $1",
        "UPDATE sms_messages SET payload = 'forged' WHERE iccid = $1",
        "UPDATE sim_connectivity_history SET network = 'forged' WHERE iccid = $1",
    ] {
        let changed = sqlx::query(statement).bind(&sim).execute(db).await.unwrap();
        assert_eq!(changed.rows_affected(), 1, "{statement}");
    }
    let problems = drift(&platform, chain, 5).await;
    let found: Vec<(&str, &str, &str)> = problems
        .iter()
        .map(|p| {
            assert_eq!(p["kind"], "read_model", "{p}");
            assert_eq!(p["at"], sim.as_str(), "{p}");
            (
                p["model"].as_str().unwrap(),
                p["field"].as_str().unwrap(),
                p["detail"].as_str().unwrap(),
            )
        })
        .collect();
    let models: Vec<(&str, &str)> = found.iter().map(|(m, f, _)| (*m, *f)).collect();
    assert_eq!(
        models,
        [
            ("sim_quotas", "remaining"),
            ("sms_messages", "payload"),
            ("sim_connectivity_history", "network"),
            ("sim_usage_hourly", "data_bytes"),
        ],
        "{problems:#?}"
    );
    let quota = &problems[0];
    assert_eq!(quota["key"], "data");
    assert_eq!(
        quota["actual"].as_i64().unwrap() + 7,
        quota["expected"].as_i64().unwrap()
    );
    let sms = &problems[1];
    assert_eq!(
        (&sms["expected"], &sms["actual"]),
        (&json!("audit me"), &json!("forged"))
    );
    let usage = &problems[3];
    // The bench's report (March 1st) is observed at its period's end.
    assert_eq!(usage["key"], "2026-03-02T00:00:00+00:00");
    assert_eq!(
        usage["actual"].as_i64().unwrap() - 100,
        usage["expected"].as_i64().unwrap()
    );

    // A message deleted outright is missing from the read model.
    sqlx::query("DELETE FROM sms_messages WHERE iccid = $1")
        .bind(&sim)
        .execute(db)
        .await
        .unwrap();
    let problems = drift(&platform, chain, 5).await;
    let sms: Vec<&Value> = problems.iter().filter(|p| p["model"] == "sms_messages").collect();
    assert_eq!(sms.len(), 1, "{problems:#?}");
    assert!(sms[0]["field"].is_null() && sms[0]["actual"].is_null());
    assert!(sms[0]["detail"]
        .as_str()
        .unwrap()
        .contains("not in the read model"));
    platform.cleanup().await;
}
