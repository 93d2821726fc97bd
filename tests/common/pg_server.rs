//! A PostgreSQL server of the test's own, to stop and start under load.
//!
//! The shared server (`tests/common/postgres.rs`) cannot be stopped by one test, so outage
//! tests run their own: `initdb` into a temporary directory and `pg_ctl` on a free port, from
//! the newest `/usr/lib/postgresql/<version>/bin` (`scripts/ensure-postgres.sh` installs it in
//! CI). PostgreSQL refuses to run as root, so as root every command runs as the `postgres`
//! user (`runuser`). Missing binaries fail the test: it never skips.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::{
    path::PathBuf,
    process::{Command, Output},
};

/// Where the server binaries of each installed version live.
const PG_LIB: &str = "/usr/lib/postgresql";
/// How long starting or stopping the server may take.
const PG_CTL_TIMEOUT_SECS: &str = "60";

/// A running (or stopped) PostgreSQL server in a temporary directory; killed and removed when
/// dropped.
pub struct PgServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// Run the server's commands as the `postgres` user (we are root).
    as_postgres: bool,
}

impl PgServer {
    /// Creates a cluster (trust auth, user `postgres`) on a free port and starts it.
    ///
    /// # Panics
    ///
    /// When no PostgreSQL server binaries are installed, or the cluster does not start.
    pub fn start() -> Self {
        let bin = server_bin().unwrap_or_else(|| {
            panic!(
                "no PostgreSQL server binaries under {PG_LIB}/<version>/bin (initdb, pg_ctl): \
                 the outage tests need them; install the `postgresql` package \
                 (scripts/ensure-postgres.sh does)"
            )
        });
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("berty-pg-")
            .tempdir()
            .expect("temp dir");
        if as_postgres {
            run(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let port = free_port();
        let server = Self {
            bin,
            dir,
            port,
            as_postgres,
        };
        server.ctl_checked(
            "initdb",
            &[
                "-D",
                server.data().to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        server.start_server();
        server
    }

    /// The URL of database `postgres` as user `postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the stopped server and waits until it accepts connections.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.ctl_checked(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                PG_CTL_TIMEOUT_SECS,
                "start",
            ],
        );
    }

    /// Stops the server with a fast shutdown (open sessions are ended, nothing is lost) and
    /// waits until it is down.
    pub fn stop_fast(&self) {
        self.ctl_checked(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "-t",
                PG_CTL_TIMEOUT_SECS,
                "stop",
            ],
        );
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn ctl(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        command.args(args).current_dir(self.dir.path());
        command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
    }

    fn ctl_checked(&self, program: &str, args: &[&str]) {
        let output = self.ctl(program, args);
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.ctl(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "stop",
            ],
        );
    }
}

/// The `bin` dir of the newest installed PostgreSQL with `initdb` and `pg_ctl`.
fn server_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(PG_LIB)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

fn run(command: &mut Command) {
    let status = command.status().expect("run command");
    assert!(status.success(), "{command:?} failed");
}

/// A TCP port nothing listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}
