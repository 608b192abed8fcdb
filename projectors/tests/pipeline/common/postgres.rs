//! A private PostgreSQL server (its own data directory and port), for tests that restart,
//! kill or stall the database: the machine's shared server is never touched, and a
//! transaction held open here holds back no other test's log horizon (transaction ids are
//! cluster-wide).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

use super::processes::{free_port, ChildGuard, TempDir};

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct PostgresServer {
    guard: Option<ChildGuard>,
    pub port: u16,
    data: PathBuf,
    dir: PathBuf,
    starts: usize,
    /// Postgres refuses to run as root: as root, the server runs as the `postgres` user.
    run_as: Option<(u32, u32)>,
}

impl PostgresServer {
    /// `initdb` (trust auth, user postgres) into `dir/data`, then starts the server.
    pub async fn start(dir: &Path) -> Self {
        let run_as = postgres_user();
        let data = dir.join("data");
        if let Some((uid, gid)) = run_as {
            chown(dir, uid, gid);
        }
        let mut initdb = Command::new(format!("{BIN}/initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        if let Some((uid, gid)) = run_as {
            initdb.uid(uid).gid(gid);
        }
        let output = initdb.output().expect("run initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut server = Self {
            guard: None,
            port: free_port(),
            data,
            dir: dir.to_owned(),
            starts: 0,
            run_as,
        };
        server.boot().await;
        server
    }

    /// A server in a temp dir of its own (`label`), with a migrated database `name`: the dir
    /// (bind it first, so it is removed after the server stops), the server and the
    /// database's URL.
    pub async fn start_with_database(label: &str, name: &str) -> (TempDir, Self, String) {
        let dir = TempDir::new(label);
        let server = Self::start(dir.path()).await;
        let url = server.create_database(name).await;
        (dir, server, url)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the postmaster and waits until it accepts connections.
    pub async fn boot(&mut self) {
        assert!(self.guard.is_none(), "postgres already running");
        self.starts += 1;
        let mut command = Command::new(format!("{BIN}/postgres"));
        command
            .arg("-D")
            .arg(&self.data)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "max_connections=200", "-c", "shared_buffers=32MB"]);
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        let log = self.dir.join(format!("postgres-{}.log", self.starts));
        self.guard = Some(ChildGuard::spawn("postgres", command, log));
        self.wait_accepting(Duration::from_secs(30)).await;
    }

    async fn wait_accepting(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if sqlx::PgPool::connect(&self.url("postgres")).await.is_ok() {
                return;
            }
            let guard = self.guard.as_mut().expect("started");
            if let Some(status) = guard.exited() {
                panic!("postgres exited with {status}; log:\n{}", guard.log_tail(4000));
            }
            assert!(Instant::now() < deadline, "postgres never accepted connections");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What `pg_ctl restart -m immediate` does: SIGQUIT to the postmaster (every backend is
    /// dropped at once, no checkpoint: crash recovery at the next start), then a start.
    pub async fn restart_immediate(&mut self) {
        self.stop_immediate();
        self.boot().await;
    }

    /// `pg_ctl stop -m immediate`.
    pub fn stop_immediate(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.signal("QUIT");
            assert!(guard.wait_exit(Duration::from_secs(30)), "postgres did not stop");
        }
    }

    /// `kill -9` of the postmaster alone, as a crash would: its backends notice and exit, and
    /// the next start runs crash recovery.
    pub fn kill_postmaster(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            let children = guard.pid().map(child_pids).unwrap_or_default();
            guard.kill();
            // Backends exit on their own once they see the postmaster gone; the next start
            // waits for their shared memory to be released.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while children
                .iter()
                .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
            {
                if std::time::Instant::now() > deadline {
                    for pid in &children {
                        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// A database on this server, created (and migrated) for the test.
    pub async fn create_database(&self, name: &str) -> String {
        let admin = PgPool::connect(&self.url("postgres")).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let url = self.url(name);
        let pool = PgPool::connect(&url).await.unwrap();
        eventstore::migrate(&pool).await.unwrap();
        pool.close().await;
        url
    }
}

/// The `postgres` user's ids when running as root (Postgres refuses root); `None` otherwise.
fn postgres_user() -> Option<(u32, u32)> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !is_root {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let output = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id postgres");
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("the postgres user exists")
    };
    Some((id("-u"), id("-g")))
}

fn chown(dir: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).expect("chown the test's directory");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
}

fn child_pids(parent: u32) -> Vec<u32> {
    let output = Command::new("pgrep").arg("-P").arg(parent.to_string()).output();
    output
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}
