//! Real processes for the fault tests: the `projectors` binary and a private `nats-server`,
//! each behind a guard that SIGKILLs it on drop (also when the test panics), so no test leaves
//! a child running.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

/// The machine's nats-server (2.9); the NATS tests start their own, never touch the shared one.
pub const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// A port nothing listens on right now (the OS picks it; a tiny race with other binds remains).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free local port")
        .port()
}

/// A directory of its own under the system temp dir: child logs, a NATS store. Removed on
/// drop unless the test panicked (then its path is printed, for the logs).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{label}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("create a temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("fault test logs kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// One child process, SIGKILLed and reaped on drop. Its stdout and stderr go to `log`.
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ChildGuard {
    pub fn spawn(name: impl Into<String>, mut command: Command, log: PathBuf) -> Self {
        let name = name.into();
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open the child's log");
        let err = out.try_clone().expect("clone the log handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name,
            child: Some(child),
            log,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9` and reap: no handler runs, nothing is flushed or released politely.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal by name (`STOP`, `CONT`, `QUIT`, …) to the running child.
    pub fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .status();
        }
    }

    /// Waits for the child to end on its own (after a signal), then reaps it.
    pub fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if self.exited().is_some() {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// `None` while running; the exit status once it ended on its own.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// The last `bytes` of the child's log, for assertion messages.
    pub fn log_tail(&self, bytes: u64) -> String {
        log_tail(&self.log, bytes)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn log_tail(path: &Path, bytes: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    text
}

/// What a `projectors` child is configured with (its environment).
#[derive(Debug, Clone)]
pub struct ProjectorsSpec {
    pub database_url: String,
    pub nats_url: String,
    pub redis_url: String,
    pub stream: String,
    pub subject_prefix: String,
    pub redis_prefix: String,
    pub projector: String,
    /// `false` sets `RELAY_ENABLED=false`: the projector alone.
    pub relay: bool,
    /// Short, so messages a killed process held are redelivered quickly.
    pub ack_wait_secs: u64,
    /// `NATS_USER` / `NATS_PASSWORD` (the projector's identity); `None`: anonymous.
    pub nats_user: Option<(String, String)>,
    /// `RELAY_NATS_USER` / `RELAY_NATS_PASSWORD` (the relay's identity).
    pub relay_nats_user: Option<(String, String)>,
    /// `PROJECTOR_PARTITIONS`.
    pub partitions: u32,
}

/// A running `projectors` binary (the relay in-process unless disabled), on its own ops port.
pub struct ProjectorsProcess {
    guard: ChildGuard,
    pub addr: SocketAddr,
    http: reqwest::Client,
}

impl ProjectorsProcess {
    /// Starts the binary and waits until `/ready` answers 200 (Postgres and NATS connected).
    pub async fn start(spec: &ProjectorsSpec, logs: &Path, label: &str) -> Self {
        let process = Self::spawn(spec, logs, label);
        process.wait_ready(Duration::from_secs(20)).await;
        process
    }

    /// Starts the binary without waiting (e.g. while its NATS server is down).
    pub fn spawn(spec: &ProjectorsSpec, logs: &Path, label: &str) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut command = projectors_command(spec, &["run"]);
        command.env("PROJECTORS_ADDR", addr.to_string());
        let log = logs.join(format!("{label}.log"));
        let guard = ChildGuard::spawn(format!("projectors {label}"), command, log);
        Self {
            guard,
            addr,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
        }
    }

    /// SIGSTOP: the process stops answering anything (its sockets stay open) until resumed.
    pub fn pause(&self) {
        self.guard.signal("STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.guard.signal("CONT");
    }

    /// `GET /ready`: its status and body, `None` when it does not answer.
    pub async fn ready(&self) -> Option<(u16, String)> {
        let response = self.answer("/ready").await?;
        let status = response.status().as_u16();
        Some((status, response.text().await.unwrap_or_default()))
    }
}

/// The `projectors` binary with `args` and the spec's environment (an operator's command, or
/// the service itself).
pub fn projectors_command(spec: &ProjectorsSpec, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_projectors"));
    command.args(args);
    command
        .env("DATABASE_URL", &spec.database_url)
        .env("NATS_URL", &spec.nats_url)
        .env("REDIS_URL", &spec.redis_url)
        .env("NATS_STREAM", &spec.stream)
        .env("NATS_SUBJECT_PREFIX", &spec.subject_prefix)
        .env("REDIS_KEY_PREFIX", &spec.redis_prefix)
        .env("PROJECTOR_NAME", &spec.projector)
        .env("PROJECTOR_ACK_WAIT_SECS", spec.ack_wait_secs.to_string())
        .env("RELAY_ENABLED", if spec.relay { "true" } else { "false" })
        .env("PROJECTOR_PARTITIONS", spec.partitions.to_string())
        .env("MIGRATE_ON_START", "true")
        .env("APP_ENV", "test")
        .env("LOG_FORMAT", "text")
        .env("RUST_LOG", "info")
        .env_remove("RELAY_BATCH_SIZE");
    for key in [
        "NATS_USER",
        "NATS_PASSWORD",
        "RELAY_NATS_USER",
        "RELAY_NATS_PASSWORD",
    ] {
        command.env_remove(key);
    }
    if let Some((user, password)) = &spec.nats_user {
        command.env("NATS_USER", user).env("NATS_PASSWORD", password);
    }
    if let Some((user, password)) = &spec.relay_nats_user {
        command
            .env("RELAY_NATS_USER", user)
            .env("RELAY_NATS_PASSWORD", password);
    }
    command
}

/// Runs an operator's command of the `projectors` binary to its end: exit status and output.
pub fn run_projectors_command(spec: &ProjectorsSpec, args: &[&str]) -> (i32, String) {
    let output = projectors_command(spec, args)
        .env("PROJECTORS_ADDR", format!("127.0.0.1:{}", free_port()))
        .stdin(Stdio::null())
        .output()
        .expect("run the projectors binary");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

impl ProjectorsProcess {
    pub async fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.get("/ready").await.is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready within {within:?}; log:\n{}",
                self.guard.name(),
                self.guard.log_tail(4000)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET path` on the ops port: the answer, `None` when it does not answer.
    async fn answer(&self, path: &str) -> Option<reqwest::Response> {
        self.http
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
            .ok()
    }

    /// The body of a 200 answer from the ops port, `None` otherwise.
    pub async fn get(&self, path: &str) -> Option<String> {
        let response = self.answer(path).await?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()
    }

    /// `relay_is_leader` as this process reports it (`None` when it does not answer).
    pub async fn is_relay_leader(&self) -> Option<bool> {
        let metrics = self.get("/metrics").await?;
        let line = metrics.lines().find(|l| l.starts_with("relay_is_leader{"))?;
        Some(line.rsplit(' ').next()? == "1")
    }

    /// A counter or gauge of this process, summed over its label sets (0 when absent).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let metrics = self.get("/metrics").await?;
        Some(
            metrics
                .lines()
                .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
        )
    }

    pub fn kill(&mut self) {
        self.guard.kill();
    }

    /// [`ProjectorsProcess::assert_running`], then [`ProjectorsProcess::kill`].
    pub fn kill_running(&mut self) {
        self.assert_running();
        self.kill();
    }

    /// Panics (with the log) if the process ended on its own: a fault must never stop it.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.guard.exited() {
            panic!(
                "{} exited with {status}; log:\n{}",
                self.guard.name(),
                self.guard.log_tail(6000)
            );
        }
    }

    pub fn log_tail(&self, bytes: u64) -> String {
        self.guard.log_tail(bytes)
    }
}

/// A private `nats-server` with JetStream on its own port and store directory: killed,
/// restarted and wiped by one test without disturbing the shared server other tests use.
pub struct NatsServer {
    guard: Option<ChildGuard>,
    pub port: u16,
    store: PathBuf,
    logs: PathBuf,
    starts: usize,
    /// With the platform's users and permissions (`deploy/nats/local.conf`).
    secured: bool,
}

/// The platform's NATS users (`deploy/nats/auth.conf`) and the passwords a secured test
/// server gives them.
pub const NATS_USERS: [&str; 5] = ["relay", "projectors", "connector", "command", "downstream"];

pub fn nats_password(user: &str) -> String {
    format!("test-password-{user}")
}

impl NatsServer {
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(dir, false).await
    }

    /// With the platform's own configuration: users, passwords, permissions.
    pub async fn start_secured(dir: &Path) -> Self {
        Self::start_with(dir, true).await
    }

    async fn start_with(dir: &Path, secured: bool) -> Self {
        let store = dir.join("jetstream");
        std::fs::create_dir_all(&store).unwrap();
        let mut server = Self {
            guard: None,
            port: free_port(),
            store,
            logs: dir.to_owned(),
            starts: 0,
            secured,
        };
        server.boot().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn boot(&mut self) {
        assert!(self.guard.is_none(), "nats-server already running");
        self.starts += 1;
        let mut command = Command::new(NATS_SERVER);
        command
            .arg("-js")
            .arg("-sd")
            .arg(&self.store)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-n")
            .arg(format!("faults-{}", self.port));
        if self.secured {
            let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats/local.conf");
            command.arg("-c").arg(conf);
            for user in NATS_USERS {
                command.env(
                    format!("NATS_{}_PASSWORD", user.to_ascii_uppercase()),
                    nats_password(user),
                );
            }
        }
        let log = self.logs.join(format!("nats-{}.log", self.starts));
        self.guard = Some(ChildGuard::spawn("nats-server", command, log));
        self.wait_for_jetstream().await;
    }

    /// Until a client connects and JetStream answers (it recovers its store first).
    async fn wait_for_jetstream(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // The raw account-info request: any answer means JetStream serves requests
            // (the typed one may not decode a 2.9 answer).
            let options = if self.secured {
                async_nats::ConnectOptions::with_user_and_password("relay".into(), nats_password("relay"))
            } else {
                async_nats::ConnectOptions::new()
            };
            let url = self.url();
            let answered = async {
                let client = options.connect(url).await.ok()?;
                let reply = client.request("$JS.API.INFO", "".into()).await.ok()?;
                std::str::from_utf8(&reply.payload)
                    .ok()?
                    .contains("account_info_response")
                    .then_some(())
            };
            if tokio::time::timeout(Duration::from_secs(2), answered)
                .await
                .ok()
                .flatten()
                .is_some()
            {
                return;
            }
            let guard = self.guard.as_mut().expect("started");
            if let Some(status) = guard.exited() {
                panic!("nats-server exited with {status}; log:\n{}", guard.log_tail(4000));
            }
            assert!(
                Instant::now() < deadline,
                "nats-server on port {} never answered; log:\n{}",
                self.port,
                guard.log_tail(4000)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9`: what JetStream had not written out is lost with the process.
    pub fn kill(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.kill();
        }
    }

    /// Starts it again on the same port and store.
    pub async fn restart(&mut self) {
        self.kill();
        self.boot().await;
    }

    /// Empties the store of a stopped server: every stream (and consumer) and every message
    /// it had acknowledged is gone, as after an OS crash before JetStream's lazy fsync.
    pub fn wipe_store(&self) {
        assert!(self.guard.is_none(), "stop the server before wiping its store");
        std::fs::remove_dir_all(&self.store).unwrap();
        std::fs::create_dir_all(&self.store).unwrap();
    }
}

/// How many lines of the logs in `dir` contain `needle` (evidence of what the faults hit).
pub fn count_in_logs(dir: &Path, needle: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "log"))
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .map(|text| text.lines().filter(|line| line.contains(needle)).count())
        .sum()
}
