//! The service binary as a child process: started against one database and
//! one NATS namespace, SIGKILLed, stopped with SIGTERM, started again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::helpers::{TEST_JWT_SECRET, eventually};

/// Longest wait for a started binary to log `serving` and answer `/health`.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Longest wait for a killed or stopped process to be reaped.
const EXIT_DEADLINE: Duration = Duration::from_secs(40);
/// Log lines shown when something goes wrong.
const LOG_TAIL_LINES: usize = 40;

/// What every start of the service shares: database, namespace, data dir.
pub struct Deployment {
    vars: Vec<(&'static str, String)>,
    dir: TempDir,
    starts: usize,
}

impl Deployment {
    /// A deployment on `database_url` and the NATS at `nats_url`, in `namespace`.
    pub fn new(database_url: String, nats_url: String, namespace: String) -> Self {
        let dir = TempDir::new().expect("temp dir");
        let data_dir = dir.path().join("data").display().to_string();
        let vars = vec![
            // Port 0: each start binds a new port, read back from its log.
            ("HTTP_ADDR", "127.0.0.1:0".to_owned()),
            ("DATA_DIR", data_dir),
            ("DATABASE_URL", database_url),
            ("NATS_URL", nats_url),
            ("NATS_NAMESPACE", namespace),
            ("JWT_SECRET", TEST_JWT_SECRET.to_owned()),
            ("LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "warn,loan_tracker::app=info".to_owned()),
            ("RATE_LIMIT_PER_MIN", "1000000".to_owned()),
            ("LOGIN_RATE_LIMIT_PER_MIN", "1000000".to_owned()),
            // No job runs: the only commands are the test's.
            ("REMINDER_CRON", String::new()),
            ("OVERDUE_CRON", String::new()),
        ];
        Self {
            vars,
            dir,
            starts: 0,
        }
    }

    /// Sets `name` for the starts from now on.
    pub fn set(&mut self, name: &'static str, value: &str) {
        self.vars.retain(|(known, _)| *known != name);
        self.vars.push((name, value.to_owned()));
    }

    /// The binary, in the deployment's directory (so no `.env` applies), with only our settings.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_loan-tracker"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .envs(
                self.vars
                    .iter()
                    .map(|(name, value)| (*name, value.as_str())),
            )
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Ok(path) = std::env::var("PATH") {
            command.env("PATH", path);
        }
        command
    }

    /// `loan-tracker admin create` (which also migrates the fresh database).
    pub async fn create_admin(&self, email: &str, password: &str) {
        let output = self
            .command(&["admin", "create", "--email", email, "--password", password])
            .output();
        let output = tokio::time::timeout(START_DEADLINE, output)
            .await
            .expect("admin create finishes")
            .expect("admin create runs");
        assert!(
            output.status.success(),
            "admin create: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts the service and waits until it serves.
    pub async fn start(&mut self) -> Service {
        self.starts += 1;
        let log_path = self.dir.path().join(format!("start-{}.log", self.starts));
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = self
            .command(&["serve"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the service starts");
        let mut service = Service {
            child,
            log_path,
            addr: None,
        };
        service.addr = Some(service.wait_until_serving().await);
        service
    }
}

/// One running process of the service.
pub struct Service {
    child: Child,
    log_path: PathBuf,
    addr: Option<SocketAddr>,
}

impl Service {
    /// Where this process listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("started")
    }

    async fn wait_until_serving(&mut self) -> SocketAddr {
        let until = tokio::time::Instant::now() + START_DEADLINE;
        let addr = loop {
            if let Some(addr) = serving_addr(&self.log_path) {
                break addr;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the service exited with {status} on start:\n{}",
                    log_tail(&self.log_path)
                );
            }
            assert!(
                tokio::time::Instant::now() < until,
                "the service did not log `serving` in time:\n{}",
                log_tail(&self.log_path)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let health = format!("http://{addr}/health");
        eventually("the service to answer /health", START_DEADLINE, || async {
            reqwest::get(&health)
                .await
                .ok()
                .filter(|response| response.status().is_success())
                .map(drop)
        })
        .await;
        addr
    }

    /// SIGKILL: no shutdown, no flush; whatever was in flight is cut off.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL sent");
        self.reap().await;
    }

    /// SIGTERM, and the graceful shutdown's exit code must be 0.
    pub async fn terminate(mut self) {
        let pid = self.child.id().expect("the service is running");
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM to {pid}");
        let status = self.reap().await;
        assert!(
            status.success(),
            "graceful stop exited with {status}:\n{}",
            log_tail(&self.log_path)
        );
    }

    async fn reap(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(EXIT_DEADLINE, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the service did not exit in time:\n{}",
                    log_tail(&self.log_path)
                )
            })
            .expect("wait for the service")
    }
}

/// The address of the JSON `serving` line in `log`, once it is there.
fn serving_addr(log: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().find_map(|line| {
        let entry: serde_json::Value = serde_json::from_str(line).ok()?;
        (entry["message"] == "serving")
            .then(|| entry["addr"].as_str()?.parse().ok())
            .flatten()
    })
}

/// The last lines of a log, for failure messages.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}
