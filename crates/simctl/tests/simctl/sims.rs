//! `simctl sims …`: register, list (a page and `--all`), show, in every output format, and
//! the commands on one SIM with idempotency keys, `If-Match` and `--wait`.

use serde_json::Value;
use sqlx::PgPool;

use crate::common::{iccid, Platform};

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn register_list_and_show_in_every_output_format(pool: PgPool) {
    let platform = Platform::start(pool).await;
    platform.login().await;
    for n in [3, 1, 2] {
        let sim = platform.register(n, &format!("meter {n}")).await;
        assert_eq!(
            sim["iccid"],
            iccid(n),
            "--wait prints the SIM as the read models show it"
        );
        assert_eq!(sim["status"], "inactive");
        assert_eq!(sim["tags"], serde_json::json!(["fleet-7"]));
    }
    let all = [iccid(1), iccid(2), iccid(3)];

    let table = platform.simctl(&["sims", "list"]).await.expect(0);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(
        lines[0].starts_with("ICCID") && lines[0].contains("STATUS"),
        "{}",
        table.stdout
    );
    assert_eq!(lines.len(), 4);
    for (line, iccid) in lines[1..].iter().zip(&all) {
        assert!(
            line.starts_with(iccid.as_str()) && line.contains("inactive"),
            "{line}"
        );
    }

    let json = platform
        .simctl(&["sims", "list", "-o", "json"])
        .await
        .expect(0)
        .json();
    let listed: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["iccid"].as_str().unwrap())
        .collect();
    assert_eq!(listed, all);

    let jsonl = platform
        .simctl(&["sims", "list", "-o", "jsonl", "--label", "meter 2"])
        .await
        .expect(0)
        .jsonl();
    assert_eq!(jsonl.len(), 1);
    assert_eq!(jsonl[0]["label"], "meter 2");

    let csv = platform
        .simctl(&["sims", "list", "-o", "csv"])
        .await
        .expect(0)
        .csv();
    assert_eq!(
        &csv[0][..6],
        ["iccid", "imsi", "msisdn", "label", "tags", "status"]
    );
    assert_eq!(csv.len(), 4);
    assert_eq!(csv[1][0], all[0]);
    assert_eq!(csv[1][4], "fleet-7");

    // --all walks the keyset pages: every SIM once, in order, across pages of 2.
    let walked = platform
        .simctl(&["sims", "list", "--all", "--page-size", "2", "-o", "jsonl"])
        .await
        .expect(0)
        .jsonl();
    let walked: Vec<&str> = walked.iter().map(|s| s["iccid"].as_str().unwrap()).collect();
    assert_eq!(walked, all);
    let second_page = platform
        .simctl(&["sims", "list", "--page-size", "2", "--page", "2", "-o", "jsonl"])
        .await
        .expect(0)
        .jsonl();
    assert_eq!(second_page.len(), 1);
    assert_eq!(second_page[0]["iccid"], all[2].as_str());
    let descending = platform
        .simctl(&[
            "sims",
            "list",
            "--all",
            "--page-size",
            "1",
            "--sort",
            "-iccid",
            "-o",
            "csv",
        ])
        .await
        .expect(0)
        .csv();
    let descending: Vec<&str> = descending[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(descending, [all[2].as_str(), all[1].as_str(), all[0].as_str()]);

    let shown = platform
        .simctl(&["sims", "show", &all[1], "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(shown["label"], "meter 2");
    let line = platform
        .simctl(&["sims", "show", &all[1], "-o", "jsonl"])
        .await
        .expect(0);
    assert_eq!(line.jsonl()[0], shown);
    let csv = platform
        .simctl(&["sims", "show", &all[1], "-o", "csv"])
        .await
        .expect(0)
        .csv();
    assert_eq!(csv.len(), 2);
    assert_eq!(csv[0][0], "iccid");
    assert_eq!(csv[1][0], all[1]);
    let table = platform.simctl(&["sims", "show", &all[1]]).await.expect(0);
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("label") && l.ends_with("meter 2")),
        "{}",
        table.stdout
    );
    platform.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn commands_carry_idempotency_keys_and_versions_and_wait_for_the_read_models(pool: PgPool) {
    let platform = Platform::start(pool).await;
    platform.login().await;
    let sim = iccid(5);
    let registered = platform.register(5, "pump").await;
    let version = registered["version"].as_i64().unwrap();

    let labelled = platform
        .simctl(&[
            "sims",
            "label",
            &sim,
            "north pump",
            "--if-version",
            &version.to_string(),
            "--wait",
            "-o",
            "json",
        ])
        .await
        .expect(0)
        .json();
    assert_eq!(labelled["label"], "north pump");
    // The version moved on: the same expectation is refused.
    let stale = platform
        .simctl(&[
            "sims",
            "label",
            &sim,
            "south",
            "--if-version",
            &version.to_string(),
        ])
        .await
        .expect(2);
    assert!(
        stale.stderr.contains("VERSION_MISMATCH") && stale.stderr.contains("HTTP 412"),
        "{}",
        stale.stderr
    );

    let tagged = platform
        .simctl(&[
            "sims", "tag", &sim, "--add", "site:a", "--remove", "fleet-7", "--wait", "-o", "json",
        ])
        .await
        .expect(0)
        .json();
    assert_eq!(tagged["tags"], serde_json::json!(["site:a"]));

    // One key, one command: the second run answers the first answer.
    let key = ["--idempotency-key", "activate-5-once", "-o", "json"];
    let first = platform
        .simctl(&[&["sims", "activate", &sim][..], &key].concat())
        .await
        .expect(0)
        .json();
    let again = platform
        .simctl(&[&["sims", "activate", &sim][..], &key].concat())
        .await
        .expect(0)
        .json();
    assert_eq!(first["command_id"], again["command_id"]);
    assert!(first["position"].as_i64().unwrap() > 0);
    // Without the key it is a new command, refused while the activation waits for 1NCE.
    let pending = platform.simctl(&["sims", "activate", &sim]).await.expect(2);
    assert!(pending.stderr.contains("CHANGE_PENDING"), "{}", pending.stderr);
    platform.simctl(&["sims", "suspend", &sim]).await.expect(2);

    let topup = platform
        .simctl(&["sims", "topup", &sim, "--quota", "sms", "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(topup["aggregate_id"], format!("{sim}:sms"));
    let sms = platform
        .simctl_with(
            &["sims", "sms", &sim, "-", "--wait", "-o", "json"],
            Some("hello from simctl\n"),
            &[],
        )
        .await
        .expect(0)
        .json();
    assert_eq!(sms["iccid"], sim.as_str());
    let messages = platform.queries.get_json(&format!("/sims/{sim}/sms")).await;
    assert_eq!(messages[0]["payload"], "hello from simctl");

    let terminated: Value = platform
        .simctl(&["sims", "terminate", &sim, "--wait", "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(terminated["status"], "terminated");
    let gone = platform.simctl(&["sims", "label", &sim, "x"]).await.expect(2);
    assert!(gone.stderr.contains("SIM_TERMINATED"), "{}", gone.stderr);
    platform.cleanup().await;
}

/// `sims reset` and `sims auto-topup`: the provider controls requested through the command API.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn reset_and_auto_top_up_are_requested(pool: PgPool) {
    let platform = Platform::start(pool).await;
    platform.login().await;
    platform.register(4, "meter 4").await;
    let sim = iccid(4);
    // Not active yet: the API refuses, simctl exits 2 with the code.
    let refused = platform.simctl(&["sims", "reset", &sim]).await.expect(2);
    assert!(refused.stderr.contains("SIM_NOT_ACTIVE"), "{}", refused.stderr);

    let on = platform
        .simctl(&["sims", "auto-topup", &sim, "on", "--wait", "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(on["iccid"], sim.as_str());
    let view = platform.queries.get_json(&format!("/sims/{sim}")).await;
    assert_eq!(view["controls"]["last_auto_topup"]["state"], "pending", "{view}");
    assert_eq!(view["controls"]["last_auto_topup"]["enabled"], true);
    // A setting other than on or off is a usage error: nothing is sent.
    platform
        .simctl(&["sims", "auto-topup", &sim, "maybe"])
        .await
        .expect(1);
}
