//! The platform under test and the `simctl` binary run against it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use serde_json::{json, Value};
use sqlx::PgPool;
use testkit::http::Exchange;
use testkit::{CommandApi, QueryApi, Running};

pub use testkit::apps::ADMIN;
pub use testkit::iccid;

pub const NATS_URL: &str = "nats://127.0.0.1:4222";

/// What one run of `simctl` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code (the message shows both outputs).
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code; stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("JSON on stdout ({e}):\n{}", self.stdout))
    }

    /// Each line of stdout as JSON.
    pub fn jsonl(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a JSON line ({e}): {l}")))
            .collect()
    }

    /// stdout as CSV records, the header first.
    pub fn csv(&self) -> Vec<Vec<String>> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(self.stdout.as_bytes());
        reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect()
    }
}

/// The command and query APIs, the projectors (with the relay) on a stream of the test's own,
/// and a private HOME holding simctl's configuration.
pub struct Platform {
    pub commands: CommandApi,
    pub queries: QueryApi,
    pub projectors: Option<Running>,
    pub stream: String,
    pub prefix: String,
    pub home: PathBuf,
    pub admin: String,
}

impl Platform {
    pub async fn start(pool: PgPool) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let stream = format!("TEST_SIMCTL_{id}");
        let prefix = format!("ts{id}");
        let redis_prefix = format!("test-simctl-{id}");
        let relay_config = relay::RelayConfig {
            stream: stream.clone(),
            subject_prefix: prefix.clone(),
            ..Default::default()
        };
        let nats = async_nats::connect(NATS_URL)
            .await
            .expect("NATS at 127.0.0.1:4222");
        jetstream::new(nats)
            .get_or_create_stream(relay_config.stream_config())
            .await
            .expect("the test's stream");

        let commands = CommandApi::start(pool.clone()).await;
        let queries = QueryApi::start_with(pool.clone(), |config| {
            config.redis_key_prefix = redis_prefix.clone();
        })
        .await;
        let database_url = testkit::database_url(&pool).await;
        let vars: HashMap<&str, String> = HashMap::from([
            ("DATABASE_URL", database_url),
            ("NATS_URL", NATS_URL.to_owned()),
            ("NATS_STREAM", stream.clone()),
            ("NATS_SUBJECT_PREFIX", prefix.clone()),
            ("PROJECTORS_ADDR", "127.0.0.1:0".to_owned()),
            ("REDIS_KEY_PREFIX", redis_prefix),
        ]);
        let config =
            projectors::Config::from_lookup(|name| vars.get(name).cloned()).expect("projectors' settings");
        let app = projectors::App::build(config)
            .await
            .expect("the projectors start")
            .with_tasks(projectors::relay_task);
        let projectors = Running::spawn(app.addr(), |shutdown| app.run_until_stopped(shutdown));

        let home = std::env::temp_dir().join(format!("simctl-test-{id}"));
        std::fs::create_dir_all(home.join(".config/simctl")).unwrap();
        let admin = commands.admin_token().await;
        let platform = Self {
            commands,
            queries,
            projectors: Some(projectors),
            stream,
            prefix,
            home,
            admin,
        };
        platform.write_config("");
        platform
    }

    /// The configuration file: profile `test` (the default) for the admin, whose password is
    /// given at `simctl login`; `extra` is appended (more profiles).
    pub fn write_config(&self, extra: &str) {
        let text = format!(
            "default_profile = \"test\"\n\n[profiles.test]\ncommand_url = \"http://{}\"\nquery_url = \"http://{}/api/v1\"\n\
             username = \"{}\"\nnats_url = \"{NATS_URL}\"\nstream = \"{}\"\nsubject_prefix = \"{}\"\n\n{extra}",
            self.commands.addr, self.queries.addr, ADMIN.0, self.stream, self.prefix
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    pub fn config_path(&self) -> PathBuf {
        self.home.join(".config/simctl/config.toml")
    }

    pub fn session_path(&self, profile: &str) -> PathBuf {
        self.home.join(format!(".config/simctl/sessions/{profile}.json"))
    }

    /// `simctl args…` with the private HOME and `env` (nothing else of the test's
    /// environment that simctl reads), stdin piped when there is `stdin`.
    fn command(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_simctl"));
        command
            .args(args)
            .env("HOME", &self.home)
            .env_remove("XDG_CONFIG_HOME")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars() {
            if name.starts_with("SIMCTL_") {
                command.env_remove(name);
            }
        }
        for (name, value) in env {
            command.env(name, value);
        }
        command
    }

    /// Runs `simctl args…` with `stdin`, the private HOME, and `env` (nothing else of the
    /// test's environment that simctl reads).
    pub async fn simctl_with(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
        let mut command = self.command(args, stdin, env);
        let stdin = stdin.map(str::to_owned);
        let output = tokio::task::spawn_blocking(move || {
            let mut child = command.spawn().expect("simctl starts");
            if let Some(text) = stdin {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            }
            child.wait_with_output().expect("simctl ends")
        });
        let output = tokio::time::timeout(Duration::from_secs(60), output)
            .await
            .expect("simctl ended within 60 s")
            .unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `simctl args…`, reads `lines` lines of its stdout and kills it (SIGKILL): what a
    /// consumer that crashed after handling those lines had.
    pub async fn simctl_killed_after(&self, args: &[&str], lines: usize) -> Vec<String> {
        let mut command = self.command(args, None, &[]);
        let read = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut child = command.spawn().expect("simctl starts");
            let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
            let read: Vec<String> = stdout.lines().take(lines).map(|l| l.unwrap()).collect();
            child.kill().unwrap();
            child.wait().unwrap();
            read
        });
        tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .expect("simctl printed the lines within 60 s")
            .unwrap()
    }

    pub async fn simctl(&self, args: &[&str]) -> Run {
        self.simctl_with(args, None, &[]).await
    }

    /// `simctl login` as the admin, the password on stdin.
    pub async fn login(&self) {
        let password = format!("{}\n", ADMIN.1);
        self.simctl_with(&["login", "--password-stdin"], Some(&password), &[])
            .await
            .expect(0);
    }

    /// Registers SIM `n` through simctl, waiting for the read models; its JSON view.
    pub async fn register(&self, n: u32, label: &str) -> Value {
        let iccid = iccid(n);
        let imsi = format!("90140510000{n:04}");
        self.simctl(&[
            "sims", "register", &iccid, "--imsi", &imsi, "--label", label, "--tag", "fleet-7", "--wait",
            "-o", "json",
        ])
        .await
        .expect(0)
        .json()
    }

    /// An API key of `role`, created by the admin.
    pub async fn api_key(&self, role: &str) -> String {
        let created = self
            .commands
            .post("/auth/api-keys", &self.admin)
            .json(&json!({"name": format!("{role}-key"), "role": role}))
            .expect(reqwest::StatusCode::CREATED)
            .await;
        created["key"].as_str().unwrap().to_owned()
    }

    /// Stops the projectors, deletes the stream and the HOME.
    pub async fn cleanup(mut self) {
        if let Some(projectors) = self.projectors.take() {
            let _ = projectors.stop().await;
        }
        let nats = async_nats::connect(NATS_URL).await.unwrap();
        let _ = jetstream::new(nats).delete_stream(&self.stream).await;
        remove_dir(&self.home);
    }
}

fn remove_dir(path: &Path) {
    let _ = std::fs::remove_dir_all(path);
}

/// Waits (10 s at most) until `check` holds.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    testkit::eventually(Duration::from_secs(10), what, check).await
}
