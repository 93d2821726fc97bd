//! What the benchmarks need around the nodes: options, a data dir or PostgreSQL database per
//! node, payloads, printed figures, CPU accounting from `/proc`, percentiles, and optional
//! `perf` profiles.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use sqlx::{Connection, PgConnection};

/// Size of every message payload.
pub const PAYLOAD: usize = 1024;

/// A 1 KiB payload whose first 8 bytes are its index, so a reader can check what it got.
pub fn payload(index: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; PAYLOAD];
    bytes[..8].copy_from_slice(&index.to_le_bytes());
    for (i, b) in bytes[8..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31) ^ (index as u8);
    }
    bytes
}

/// The index a [`payload`] carries.
pub fn index_of(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.get(..8)?.try_into().ok()?))
}

/// One printed figure, kept for the summary table at the end.
pub struct Figure {
    backend: &'static str,
    name: String,
    value: String,
}

/// Every figure printed so far.
#[derive(Default)]
pub struct Figures(Vec<Figure>);

impl Figures {
    /// Prints `<backend> <name>: <value>` and keeps it for [`Figures::print_table`].
    pub fn add(&mut self, backend: &'static str, name: &str, value: String) {
        println!("{backend} {name}: {value}");
        self.0.push(Figure {
            backend,
            name: name.to_owned(),
            value,
        });
    }

    /// Prints `measure <backend> <key> <value> <unit>`: one number of a SPEC figure, read by
    /// the `all` runner (`benches/all.rs`), which knows each key's target.
    pub fn measure(&self, backend: &str, key: &str, value: f64, unit: &str) {
        println!("measure {backend} {key} {value} {unit}");
    }

    /// Prints where the CPU went during a phase (not kept for the table).
    pub fn cpu(&self, backend: &str, name: &str, cpu: String) {
        println!("{backend} {name} cpu: {cpu}");
    }

    /// Prints every figure as a Markdown table.
    pub fn print_table(&self) {
        println!();
        println!("| backend | figure | value |");
        println!("|---|---|---|");
        for figure in &self.0 {
            println!(
                "| {} | {} | {} |",
                figure.backend, figure.name, figure.value
            );
        }
    }
}

/// Environment variable with the admin PostgreSQL URL (shared with the tests).
pub const POSTGRES_URL_ENV: &str = "BERTY_NODE_TEST_POSTGRES_URL";
/// Admin URL used when [`POSTGRES_URL_ENV`] is not set.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The storage backend a node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file in the node's data dir.
    Sqlite,
    /// A fresh database on the local PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The name printed in front of every figure.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Run options, from the command line (`-- --quick`, backend names) and the environment.
#[derive(Debug, Clone)]
pub struct Options {
    /// Messages written by the 64-sender loads (baseline, stalled) and replayed.
    pub n: u64,
    /// Messages sent one at a time by one client.
    pub n_seq: u64,
    /// In-flight senders of the concurrent loads.
    pub concurrency: usize,
    /// Backends to run, in order.
    pub backends: Vec<Backend>,
    /// Where temporary data dirs go (default: the system temp dir).
    pub temp_root: Option<PathBuf>,
    /// Where to write `perf record` profiles of each phase, if set.
    pub perf_dir: Option<PathBuf>,
    /// Node start-ups timed per data dir.
    pub startups: usize,
    /// Chunks the baseline and stalled-subscriber loads alternate in.
    pub chunks: u64,
}

/// A whole number from the environment variable `name` (`_` and `,` allowed as separators);
/// panics on anything else.
pub fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let value = value.replace(['_', ','], "");
    match value.parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name} must be a whole number, got {value:?}"),
    }
}

impl Options {
    /// Reads the options. `cargo bench` passes `--bench`; other flags are ignored too.
    pub fn from_env() -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick =
            args.iter().any(|a| a == "--quick") || std::env::var_os("BERTY_BENCH_QUICK").is_some();
        let mut backends: Vec<Backend> = Vec::new();
        let mut named: Vec<String> = args
            .iter()
            .filter(|a| !a.starts_with('-'))
            .cloned()
            .collect();
        named.extend(
            std::env::var("BERTY_BENCH_BACKENDS")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        for name in named {
            let backend = match name.as_str() {
                "sqlite" => Backend::Sqlite,
                "postgres" | "postgresql" | "pg" => Backend::Postgres,
                other => panic!("unknown backend {other:?} (sqlite or postgres)"),
            };
            if !backends.contains(&backend) {
                backends.push(backend);
            }
        }
        if backends.is_empty() {
            backends = vec![Backend::Sqlite, Backend::Postgres];
        }
        let (n, n_seq) = if quick {
            (10_000, 2_000)
        } else {
            (100_000, 20_000)
        };
        Self {
            n: env_number("BERTY_BENCH_N").unwrap_or(n),
            n_seq: env_number("BERTY_BENCH_SEQ").unwrap_or(n_seq),
            concurrency: env_number("BERTY_BENCH_CONCURRENCY").map_or(64, |c| c.max(1) as usize),
            backends,
            temp_root: std::env::var_os("BERTY_BENCH_DIR").map(PathBuf::from),
            perf_dir: std::env::var_os("BERTY_BENCH_PERF").map(PathBuf::from),
            startups: env_number("BERTY_BENCH_STARTUPS").map_or(3, |s| s.max(1) as usize),
            chunks: env_number("BERTY_BENCH_CHUNKS").unwrap_or(10).max(1),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL.

/// The admin URL (a user that may create and drop databases).
pub fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_URL_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// `url` naming `database` instead of the admin database.
fn url_with_database(url: &str, database: &str) -> String {
    let (head, query) = url
        .split_once('?')
        .map_or((url, None), |(h, q)| (h, Some(q)));
    let after_scheme = head.find("://").map_or(0, |at| at + 3);
    let server = head[after_scheme..]
        .find('/')
        .map_or(head, |slash| &head[..after_scheme + slash]);
    let mut out = format!("{server}/{database}");
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

static DATABASES: AtomicU32 = AtomicU32::new(0);

async fn admin_connection() -> PgConnection {
    let admin = postgres_admin_url();
    match PgConnection::connect(&admin).await {
        Ok(conn) => conn,
        Err(err) => panic!(
            "cannot reach PostgreSQL at {admin} ({POSTGRES_URL_ENV}): {err}; start the local \
             server or run only SQLite: `cargo bench --bench protocol -- sqlite`"
        ),
    }
}

/// A `berty_bench_<pid>_<n>_<random>` database, dropped (with its connections) on drop.
pub struct BenchDatabase {
    name: String,
    url: String,
}

impl BenchDatabase {
    /// Creates the database.
    pub async fn create() -> Self {
        let name = format!(
            "berty_bench_{}_{}_{:08x}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let mut admin = admin_connection().await;
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|err| panic!("CREATE DATABASE {name}: {err}"));
        let _ = admin.close().await;
        let url = url_with_database(&postgres_admin_url(), &name);
        Self { name, url }
    }

    /// The URL the node connects to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Bytes the database takes on the server.
    pub async fn size(&self) -> u64 {
        let mut admin = admin_connection().await;
        let size: i64 = sqlx::query_scalar("SELECT pg_database_size($1)")
            .bind(&self.name)
            .fetch_one(&mut admin)
            .await
            .unwrap_or(0);
        let _ = admin.close().await;
        u64::try_from(size).unwrap_or(0)
    }

    /// Process ids of the server backends connected to this database (for `perf`).
    pub async fn backend_pids(&self) -> Vec<u32> {
        let mut admin = admin_connection().await;
        let pids: Vec<i32> =
            sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1")
                .bind(&self.name)
                .fetch_all(&mut admin)
                .await
                .unwrap_or_default();
        let _ = admin.close().await;
        pids.into_iter()
            .filter_map(|p| u32::try_from(p).ok())
            .collect()
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop can run inside the benchmark's runtime: use a thread with a runtime of its own.
        let outcome = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&postgres_admin_url())
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = admin.close().await;
                Ok::<_, String>(())
            })
        })
        .join();
        if !matches!(outcome, Ok(Ok(()))) {
            eprintln!(
                "could not drop benchmark database {}: {outcome:?}",
                self.name
            );
        }
    }
}

/// The server settings that decide what a commit costs.
pub async fn postgres_settings() -> String {
    let mut admin = admin_connection().await;
    let mut out = Vec::new();
    for setting in [
        "server_version",
        "fsync",
        "synchronous_commit",
        "wal_sync_method",
        "shared_buffers",
        "commit_delay",
    ] {
        let value: String = sqlx::query_scalar(&format!("SHOW {setting}"))
            .fetch_one(&mut admin)
            .await
            .unwrap_or_else(|e| format!("? ({e})"));
        out.push(format!("{setting}={value}"));
    }
    let _ = admin.close().await;
    out.join(" ")
}

// ---------------------------------------------------------------------------------------------
// Node storage: a data dir and, for PostgreSQL, a database.

/// Where one node keeps its state; dropped with the data dir and database.
pub struct NodeStore {
    /// The backend.
    pub backend: Backend,
    dir: tempfile::TempDir,
    /// The PostgreSQL database, for that backend.
    pub database: Option<BenchDatabase>,
}

impl NodeStore {
    /// A fresh, empty store.
    pub async fn create(backend: Backend, options: &Options) -> Self {
        let mut builder = tempfile::Builder::new();
        builder.prefix("berty-bench-");
        let dir = match &options.temp_root {
            Some(root) => builder.tempdir_in(root),
            None => builder.tempdir(),
        }
        .expect("temporary data dir");
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(BenchDatabase::create().await),
        };
        Self {
            backend,
            dir,
            database,
        }
    }

    /// The working directory of the node.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The data dir (keys; the SQLite file).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Environment for `berty-node serve`: every port 0, quiet logs, this store.
    pub fn env(&self) -> HashMap<String, String> {
        let mut env: HashMap<String, String> = [
            ("BERTY_NODE__API__GRPC_LISTEN", "127.0.0.1:0"),
            ("BERTY_NODE__ADMIN__LISTEN", "127.0.0.1:0"),
            ("BERTY_NODE__P2P__LISTEN", "/ip4/127.0.0.1/tcp/0"),
            ("BERTY_NODE__LOG__FILTER", "warn"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if let Some(db) = &self.database {
            env.insert(
                "BERTY_NODE__STORAGE__DATABASE_URL".to_owned(),
                db.url().to_owned(),
            );
        }
        env
    }

    /// Bytes stored for this node: the data dir (SQLite file and WAL, keys) and the
    /// PostgreSQL database.
    pub async fn stored_bytes(&self) -> u64 {
        let database = match &self.database {
            Some(db) => db.size().await,
            None => 0,
        };
        self.disk_bytes() + database
    }

    /// PostgreSQL server processes serving this node (none on SQLite).
    pub async fn server_pids(&self) -> Vec<u32> {
        match &self.database {
            Some(db) => db.backend_pids().await,
            None => Vec::new(),
        }
    }

    fn disk_bytes(&self) -> u64 {
        fn walk(path: &Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(path) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.data_dir())
    }
}

// ---------------------------------------------------------------------------------------------
// CPU accounting.

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// `(comm, user + system seconds)` of a process or thread from its `stat` file.
fn stat_cpu(path: &Path) -> Option<(String, f64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // Fields after the name start at field 3 (state); utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((comm, (utime + stime) / clock_ticks()))
}

/// CPU seconds per thread of `pid`, keyed by thread id.
fn thread_cpu(pid: u32) -> HashMap<u32, (String, f64)> {
    let mut out = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(cpu) = stat_cpu(&task.path().join("stat")) {
            out.insert(tid, cpu);
        }
    }
    out
}

/// Bytes a process sent to storage so far (`write_bytes` of `/proc/PID/io`, counted when it
/// dirties the page cache): for SQLite the WAL frames and checkpoints; for PostgreSQL only what
/// the backends write themselves (WAL at commit), not the checkpointer's data pages.
fn written(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines().find_map(|line| {
                line.strip_prefix("write_bytes: ")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// `(comm, CPU seconds)` of every process (kernel threads such as `kworker` and `jbd2`,
/// which do the node's write-back, included).
fn all_processes() -> HashMap<u32, (String, f64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((pid, stat_cpu(&e.path().join("stat"))?))
        })
        .collect()
}

/// CPU seconds of whole processes.
fn process_cpu(pids: &[u32]) -> HashMap<u32, f64> {
    pids.iter()
        .filter_map(|pid| Some((*pid, stat_cpu(Path::new(&format!("/proc/{pid}/stat")))?.1)))
        .collect()
}

/// `(busy, total)` seconds of the whole machine, all cores.
fn machine_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return (0.0, 0.0);
    };
    let values: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = values.iter().sum();
    let idle = values.get(3).copied().unwrap_or(0.0) + values.get(4).copied().unwrap_or(0.0);
    ((total - idle) / clock_ticks(), total / clock_ticks())
}

/// A snapshot of CPU use, to compare with a later one.
pub struct CpuMark {
    at: Instant,
    node: HashMap<u32, (String, f64)>,
    /// PostgreSQL server processes serving the node's database.
    server: HashMap<u32, f64>,
    /// Bytes the node and the server processes sent to storage (`write_bytes`).
    node_written: u64,
    server_written: HashMap<u32, u64>,
    /// Every process, to name what else ran.
    everyone: HashMap<u32, (String, f64)>,
    bench: f64,
    machine: (f64, f64),
    node_pid: u32,
}

impl CpuMark {
    /// CPU use now of the node `node_pid`, the database server processes `server_pids`, this
    /// process and the machine.
    pub fn now(node_pid: u32, server_pids: &[u32]) -> Self {
        Self {
            at: Instant::now(),
            node: thread_cpu(node_pid),
            server: process_cpu(server_pids),
            node_written: written(node_pid),
            server_written: server_pids
                .iter()
                .map(|pid| (*pid, written(*pid)))
                .collect(),
            bench: stat_cpu(Path::new("/proc/self/stat")).map_or(0.0, |(_, s)| s),
            machine: machine_cpu(),
            everyone: all_processes(),
            node_pid,
        }
    }

    /// CPU seconds the node and the PostgreSQL processes serving it (`server_pids`, now) used
    /// since this mark.
    pub fn cpu_seconds(&self, server_pids: &[u32]) -> f64 {
        let later = CpuMark::now(self.node_pid, server_pids);
        let node: f64 = later
            .node
            .iter()
            .map(|(tid, (_, after))| (after - self.node.get(tid).map_or(0.0, |(_, s)| *s)).max(0.0))
            .sum();
        let server: f64 = later
            .server
            .iter()
            .map(|(pid, after)| (after - self.server.get(pid).copied().unwrap_or(0.0)).max(0.0))
            .sum();
        node + server
    }

    /// Where the CPU went since this mark, as one line: cores used by the node (and its
    /// busiest threads), by the PostgreSQL processes serving it (`server_pids`, now), by this
    /// benchmark client, and by everything else, plus node CPU per message.
    pub fn report(&self, messages: u64, server_pids: &[u32]) -> String {
        let later = CpuMark::now(self.node_pid, server_pids);
        let wall = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let mut by_name: BTreeMap<String, f64> = BTreeMap::new();
        let mut node_total = 0.0;
        for (tid, (comm, after)) in &later.node {
            let before = self.node.get(tid).map_or(0.0, |(_, s)| *s);
            let used = (after - before).max(0.0);
            node_total += used;
            // Group numbered workers ("sqlx-sqlite-worker-3") under one name.
            let name = comm.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
            *by_name.entry(name.to_owned()).or_default() += used;
        }
        let bench = later.bench - self.bench;
        let server: f64 = later
            .server
            .iter()
            .map(|(pid, after)| (after - self.server.get(pid).copied().unwrap_or(0.0)).max(0.0))
            .sum();
        let server_written: u64 = later
            .server_written
            .iter()
            .map(|(pid, after)| {
                after.saturating_sub(self.server_written.get(pid).copied().unwrap_or(0))
            })
            .sum();
        let written = later.node_written.saturating_sub(self.node_written) + server_written;
        let written = if messages > 0 {
            format!(
                "; storage writes {:.1} KiB/msg",
                written as f64 / 1024.0 / messages as f64
            )
        } else {
            String::new()
        };
        let busy = later.machine.0 - self.machine.0;
        let rest = (busy - node_total - bench - server).max(0.0);
        let own = std::process::id();
        let mut others: BTreeMap<String, f64> = BTreeMap::new();
        for (pid, (comm, after)) in &later.everyone {
            if *pid == self.node_pid || *pid == own || later.server.contains_key(pid) {
                continue;
            }
            let before = self.everyone.get(pid).map_or(0.0, |(_, s)| *s);
            let name = comm.split(['/', ':']).next().unwrap_or(comm).to_owned();
            *others.entry(name).or_default() += (after - before).max(0.0);
        }
        let mut others: Vec<(String, f64)> = others
            .into_iter()
            .filter(|(_, s)| *s / wall >= 0.03)
            .collect();
        others.sort_by(|a, b| b.1.total_cmp(&a.1));
        let others = others
            .iter()
            .take(4)
            .map(|(name, s)| format!("{name} {:.2}", s / wall))
            .collect::<Vec<_>>()
            .join(", ");
        let server = if later.server.is_empty() {
            String::new()
        } else {
            format!("; postgres backends {:.2}", server / wall)
        };
        let mut threads: Vec<(String, f64)> = by_name
            .into_iter()
            .filter(|(_, s)| *s / wall >= 0.02)
            .collect();
        threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        let threads = threads
            .iter()
            .map(|(name, s)| format!("{name} {:.2}", s / wall))
            .collect::<Vec<_>>()
            .join(", ");
        let per_message = if messages > 0 {
            format!(" = {:.0} us/msg", node_total * 1e6 / messages as f64)
        } else {
            String::new()
        };
        format!(
            "node {:.2} cores{per_message} [{threads}]{server}; bench client {:.2}; rest of machine {:.2} [{others}] (cores busy {:.2} of {}){written}",
            node_total / wall,
            bench / wall,
            rest / wall,
            busy / wall,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
        )
    }
}

/// The 1-, 5- and 15-minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

// ---------------------------------------------------------------------------------------------
// Statistics.

/// The `p`-th percentile (0 to 100) of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// The median of durations.
pub fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Profiles.

/// A `perf record` of some processes during one phase (only with `BERTY_BENCH_PERF=DIR`).
pub struct Profile {
    child: Option<Child>,
}

impl Profile {
    /// Starts `perf record` on `pids`, writing `DIR/<label>.perf.data`.
    pub fn start(options: &Options, label: &str, pids: &[u32]) -> Self {
        let Some(dir) = &options.perf_dir else {
            return Self { child: None };
        };
        std::fs::create_dir_all(dir).expect("perf output dir");
        let pids = pids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let child = Command::new("perf")
            .args([
                "record",
                "-q",
                "-e",
                "cpu-clock",
                "-F",
                "999",
                "-g",
                "-p",
                &pids,
                "-o",
            ])
            .arg(dir.join(format!("{label}.perf.data")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| eprintln!("perf record not started: {e}"))
            .ok();
        // Give perf time to attach before the phase starts.
        thread::sleep(Duration::from_millis(300));
        Self { child }
    }

    /// Stops the recording (SIGINT, as perf expects) and waits for the file to be written.
    pub fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }
}
