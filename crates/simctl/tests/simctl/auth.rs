//! Login, the session file, refresh, API keys and password files from the profile, and the
//! exit codes of refusals, usage errors and an unreachable API.

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use sqlx::PgPool;

use crate::common::{iccid, Platform, ADMIN};

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn login_keeps_a_private_session_refreshes_it_and_logout_ends_it(pool: PgPool) {
    let platform = Platform::start(pool).await;
    let not_yet = platform.simctl(&["whoami"]).await.expect(1);
    assert!(not_yet.stderr.contains("not logged in"), "{}", not_yet.stderr);

    platform.login().await;
    let path = platform.session_path("test");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the session file is the user's alone");
    let dir_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    let me = platform.simctl(&["whoami", "-o", "json"]).await.expect(0).json();
    assert_eq!(me["username"], ADMIN.0);
    assert_eq!(me["role"], "admin");

    // An access token past its time is refreshed before the request, and the rotated refresh
    // token is stored (the old one is spent).
    let mut session: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let spent = session["refresh_token"].clone();
    session["expires_at"] = 0.into();
    std::fs::write(&path, session.to_string()).unwrap();
    platform.simctl(&["whoami"]).await.expect(0);
    let refreshed: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_ne!(refreshed["refresh_token"], spent);
    assert!(refreshed["expires_at"].as_u64().unwrap() > 0);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "still private after the rewrite");

    // A bad password is the API's refusal.
    let wrong = platform
        .simctl_with(&["login", "--password-stdin"], Some("not-the-password\n"), &[])
        .await
        .expect(2);
    assert!(wrong.stderr.contains("INVALID_CREDENTIALS"), "{}", wrong.stderr);

    platform.simctl(&["logout"]).await.expect(0);
    assert!(!path.exists());
    platform.simctl(&["whoami"]).await.expect(1);
    platform.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn api_keys_and_password_files_come_from_the_environment_or_the_profile(pool: PgPool) {
    let platform = Platform::start(pool).await;
    // A viewer's key in the environment reads, and its commands are refused (403, exit 2).
    let viewer = platform.api_key("viewer").await;
    let env = [("SIMCTL_API_KEY", viewer.as_str())];
    let me = platform
        .simctl_with(&["whoami", "-o", "json"], None, &env)
        .await
        .expect(0)
        .json();
    assert_eq!(me["kind"], "api_key");
    platform
        .simctl_with(&["sims", "list"], None, &env)
        .await
        .expect(0);
    let refused = platform
        .simctl_with(
            &["sims", "register", &iccid(1), "--imsi", "901405100000001"],
            None,
            &env,
        )
        .await
        .expect(2);
    assert!(
        refused.stderr.contains("FORBIDDEN") && refused.stderr.contains("HTTP 403"),
        "{}",
        refused.stderr
    );

    // A profile with a password file logs in by itself, and keeps the session.
    let password_file = platform.home.join("admin.password");
    std::fs::write(&password_file, format!("{}\n", ADMIN.1)).unwrap();
    platform.write_config(&format!(
        "[profiles.auto]\nurl = \"http://{}\"\nusername = \"{}\"\npassword_file = \"{}\"\n",
        platform.commands.addr,
        ADMIN.0,
        password_file.display()
    ));
    let me = platform
        .simctl(&["--profile", "auto", "whoami", "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(me["username"], ADMIN.0);
    assert!(platform.session_path("auto").exists());

    // An operator's key from a file, named by the environment.
    let key_file = platform.home.join("operator.key");
    std::fs::write(&key_file, platform.api_key("operator").await).unwrap();
    let env = [("SIMCTL_API_KEY_FILE", key_file.to_str().unwrap())];
    platform
        .simctl_with(
            &["sims", "register", &iccid(2), "--imsi", "901405100000002"],
            None,
            &env,
        )
        .await
        .expect(0);
    platform.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn exit_codes_say_refused_usage_or_unavailable_with_the_api_error(pool: PgPool) {
    let platform = Platform::start(pool).await;
    platform.login().await;

    // 4xx: exit 2, the code, status, message and request id on stderr.
    let missing = platform.simctl(&["sims", "show", &iccid(77)]).await.expect(2);
    assert!(missing.stdout.is_empty());
    assert!(
        missing.stderr.contains("SIM_NOT_FOUND") && missing.stderr.contains("HTTP 404"),
        "{}",
        missing.stderr
    );
    let request_id = missing
        .stderr
        .split("[request id ")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_else(|| panic!("a request id: {}", missing.stderr));
    assert!(!request_id.is_empty());
    let invalid = platform
        .simctl(&["sims", "register", "123", "--imsi", "901405100000001"])
        .await
        .expect(2);
    assert!(invalid.stderr.contains("INVALID_ICCID"), "{}", invalid.stderr);

    // Usage: clap's errors and a missing profile are 1, `--help` is 0.
    platform.simctl(&["sims", "frobnicate"]).await.expect(1);
    platform
        .simctl(&["--profile", "nowhere", "sims", "list"])
        .await
        .expect(1);
    let help = platform.simctl(&["--help"]).await.expect(0);
    assert!(help.stdout.contains("Usage"));

    // Nothing listening: exit 3.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let env = [
        ("SIMCTL_URL", format!("http://{closed}")),
        ("SIMCTL_API_KEY", "iot_key_x".into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    platform
        .simctl_with(&["--profile", "test", "sims", "list"], None, &env)
        .await
        .expect(3);

    // Shell completions.
    let completions = platform.simctl(&["completions", "bash"]).await.expect(0);
    assert!(completions.stdout.contains("simctl"));
    platform.cleanup().await;
}
