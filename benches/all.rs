//! One table of every SPEC section 13 figure: figure, target, measured, ratio, backend.
//!
//! ```sh
//! cargo bench --bench all                     # full sizes, SQLite and PostgreSQL
//! cargo bench --bench all -- --quick          # small sizes, SQLite: a couple of minutes
//! cargo bench --bench all -- --quick postgres # small sizes, PostgreSQL (or `sqlite postgres`)
//! ```
//!
//! The runner measures nothing itself: it builds the other benchmarks (`cargo bench --no-run`,
//! so the bench profile), runs each as a child process with the backends and sizes chosen,
//! copies their output to `target/bench-all/<bench>.log`, and reads the `measure <backend>
//! <key> <value> <unit>` lines they print beside their figures. Every number in the table
//! comes from real nodes started by those benchmarks; their logs say how each was measured
//! and where the CPU went.
//!
//! A quick run uses smaller loads than the targets name (the table says which): a catch-up of
//! 20,000 entries is compared with the target's rate (100,000 in 5 s is 20,000 entries/s),
//! and a start-up with some 30,000 stored messages is not the 1,000,000 of the target. Only a
//! full run measures every target at its own size (the start-up alone then takes about 17
//! minutes a backend, storing 1,020,000 messages).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

/// How a figure is compared with its target.
#[derive(Clone, Copy)]
enum Goal {
    /// At least this much (ratio: measured / target).
    AtLeast(f64),
    /// At most this much (ratio: target / measured, so above 1 is met for both kinds).
    AtMost(f64),
}

/// One row of the table: what a `measure` key means and what it should reach.
struct Row {
    /// The key in `measure` lines.
    key: &'static str,
    /// What the table calls it.
    figure: &'static str,
    /// The target, as the SPEC or the issue words it.
    target: &'static str,
    goal: Goal,
    /// The load the target is stated for (count in the unit after `/`), if any.
    full_size: Option<u64>,
}

const ROWS: &[Row] = &[
    Row {
        key: "send_to_delivery",
        figure: "send -> delivery A->B, 1 KiB, 64 senders",
        target: ">= 20,000 msg/s",
        goal: Goal::AtLeast(20_000.0),
        full_size: None,
    },
    Row {
        key: "cpu_per_message_sender",
        figure: "CPU per delivered message, sender A",
        target: "<= 110 us",
        goal: Goal::AtMost(110.0),
        full_size: None,
    },
    Row {
        key: "cpu_per_message_receiver",
        figure: "CPU per delivered message, receiver B",
        target: "<= 100 us",
        goal: Goal::AtMost(100.0),
        full_size: None,
    },
    Row {
        key: "idle_delivery_p99_two_nodes",
        figure: "idle delivery p99, A's send to B's subscription (client process apart)",
        target: "< 5 ms",
        goal: Goal::AtMost(5.0),
        full_size: None,
    },
    Row {
        key: "idle_delivery_p99_one_node",
        figure: "idle delivery p99, send and subscription on one connection",
        target: "< 5 ms",
        goal: Goal::AtMost(5.0),
        full_size: None,
    },
    Row {
        key: "catch_up_from_peer",
        figure: "catch-up of a fresh member from a peer",
        target: "100,000 entries < 5 s",
        goal: Goal::AtMost(5.0),
        full_size: Some(100_000),
    },
    Row {
        key: "catch_up_from_mirror",
        figure: "catch-up of an offline member from a mirror",
        target: "100,000 entries < 5 s",
        goal: Goal::AtMost(5.0),
        full_size: Some(100_000),
    },
    Row {
        key: "relay_throughput_ratio",
        figure: "relay throughput, one circuit, vs a plain rust-libp2p relay",
        target: ">= 0.90",
        goal: Goal::AtLeast(0.90),
        full_size: None,
    },
    Row {
        key: "rendezvous_registrations",
        figure: "rendezvous registrations",
        target: ">= 5,000/s",
        goal: Goal::AtLeast(5_000.0),
        full_size: None,
    },
    Row {
        key: "rendezvous_discover_p99",
        figure: "rendezvous discover p99 with 100,000 registrations",
        target: "< 5 ms",
        goal: Goal::AtMost(5.0),
        full_size: Some(100_000),
    },
    Row {
        key: "rss_idle",
        figure: "idle node RSS",
        target: "< 40 MB",
        goal: Goal::AtMost(40.0),
        full_size: None,
    },
    Row {
        key: "rss_mirrored_groups",
        figure: "RSS with 10,000 mirrored idle groups",
        target: "< 300 MB",
        goal: Goal::AtMost(300.0),
        full_size: Some(10_000),
    },
    Row {
        key: "startup_stored_max",
        figure: "start-up with 1,000,000 stored messages (slowest of 3)",
        target: "< 1 s",
        goal: Goal::AtMost(1_000.0),
        full_size: Some(1_000_000),
    },
];

/// One benchmark the runner starts, with its arguments and environment for each mode.
struct Bench {
    name: &'static str,
    quick: &'static [(&'static str, &'static str)],
    full: &'static [(&'static str, &'static str)],
}

const BENCHES: &[Bench] = &[
    Bench {
        name: "replication",
        quick: &[
            ("BERTY_BENCH_N", "5000"),
            ("BERTY_BENCH_LATENCY", "200"),
            ("BERTY_BENCH_CATCHUP", "20000"),
        ],
        full: &[],
    },
    Bench {
        name: "mirror",
        quick: &[("BERTY_BENCH_N", "20000"), ("BERTY_BENCH_GROUPS", "1000")],
        full: &[],
    },
    Bench {
        name: "rendezvous",
        quick: &[],
        full: &[],
    },
    Bench {
        name: "relay",
        quick: &[],
        full: &[],
    },
    Bench {
        name: "protocol",
        quick: &[("BERTY_BENCH_N", "10000"), ("BERTY_BENCH_SEQ", "1000")],
        full: &[("BERTY_BENCH_N", "500000")],
    },
];

/// One number read from a `measure` line.
struct Measure {
    value: f64,
    unit: String,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut backends: Vec<&str> = ["sqlite", "postgres"]
        .into_iter()
        .filter(|b| args.iter().any(|a| a == b))
        .collect();
    if backends.is_empty() {
        backends = if quick {
            vec!["sqlite"]
        } else {
            vec!["sqlite", "postgres"]
        };
    }
    let only: Vec<String> = std::env::var("BERTY_BENCH_ONLY")
        .map(|v| v.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let benches: Vec<&Bench> = BENCHES
        .iter()
        .filter(|b| only.is_empty() || only.iter().any(|o| o == b.name))
        .collect();

    let logs = log_dir();
    std::fs::create_dir_all(&logs).expect("create the log dir");
    let executables = build(&benches);
    let started = Instant::now();
    let mut measures: HashMap<(String, String), Measure> = HashMap::new();
    let mut failures = Vec::new();
    for bench in &benches {
        let Some(exe) = executables.get(bench.name) else {
            failures.push(format!("{}: not built", bench.name));
            continue;
        };
        let env = if quick { bench.quick } else { bench.full };
        let mut bench_args: Vec<&str> = backends.clone();
        if quick {
            bench_args.push("--quick");
        }
        bench_args.push("--bench");
        let log = logs.join(format!("{}.log", bench.name));
        println!(
            "running {} {} > {}",
            bench.name,
            bench_args.join(" "),
            log.display()
        );
        let at = Instant::now();
        match run(exe, &bench_args, env, &log) {
            Ok(found) => measures.extend(found),
            Err(e) => failures.push(format!("{}: {e} (see {})", bench.name, log.display())),
        }
        println!("  {} took {:.0} s", bench.name, at.elapsed().as_secs_f64());
    }
    println!();
    println!(
        "{} run, {:.0} s, load average now {}",
        if quick { "quick" } else { "full" },
        started.elapsed().as_secs_f64(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    print_table(&backends, &measures, quick);
    for failure in &failures {
        println!("FAILED {failure}");
    }
    if !failures.is_empty() {
        std::process::exit(1);
    }
}

/// `target/bench-all` (or under `CARGO_TARGET_DIR`).
fn log_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("bench-all")
}

/// Builds the benchmarks with `cargo bench --no-run` and returns each one's executable.
fn build(benches: &[&Bench]) -> HashMap<String, PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "bench",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    for bench in benches {
        command.args(["--bench", bench.name]);
    }
    // What cargo set for this benchmark's own run: left in, build scripts that watch such
    // variables (ring's reads `CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`, ...) would see them
    // change and rebuild, here and again at the next `cargo bench`.
    const SET_BY_CARGO: [&str; 6] = [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
        "CARGO_PRIMARY_",
        "CARGO_CFG_",
    ];
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if SET_BY_CARGO.iter().any(|prefix| name.starts_with(prefix))
            || ["CARGO_TARGET_TMPDIR", "CARGO_RUSTC_CURRENT_DIR", "OUT_DIR"].contains(&&*name)
        {
            command.env_remove(&name);
        }
    }
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo bench --no-run");
    assert!(output.status.success(), "cargo bench --no-run failed");
    let mut executables = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(name), Some(exe)) = (
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) else {
            continue;
        };
        if message["target"]["kind"][0] == "bench" {
            executables.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    executables
}

/// Runs one benchmark, its output going to `log` (and the figure lines to the terminal),
/// and returns its measures by (backend, key).
fn run(
    exe: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    log: &Path,
) -> Result<HashMap<(String, String), Measure>, String> {
    let mut file = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        // The nodes' logs go to the log file too.
        .stderr(
            file.try_clone()
                .map_or_else(|_| Stdio::inherit(), Stdio::from),
        )
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut measures = HashMap::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let _ = writeln!(file, "{line}");
        if let Some(rest) = line.strip_prefix("measure ") {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            if let [backend, key, value, unit] = parts[..] {
                if let Ok(value) = value.parse() {
                    let unit = unit.to_owned();
                    measures.insert(
                        (backend.to_owned(), key.to_owned()),
                        Measure { value, unit },
                    );
                }
            }
        } else if !line.contains(" cpu") && !line.starts_with('|') && line.contains(": ") {
            println!("  {line}");
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(measures)
    } else {
        Err(format!("exited with {status}"))
    }
}

/// The measured value as the table shows it, with the load it was measured at when that
/// differs from the target's.
fn shown(row: &Row, measure: &Measure) -> (String, f64) {
    // `s/20000`: seconds, for a load of 20,000 (`msg/s` is a unit, not a load).
    let (unit, size) = match measure.unit.rsplit_once('/') {
        Some((unit, size)) if size.parse::<u64>().is_ok() => (unit, size.parse::<u64>().ok()),
        _ => (measure.unit.as_str(), None),
    };
    let value = measure.value;
    let mut text = match unit {
        "msg/s" | "reg/s" => format!("{value:.0} {unit}"),
        "us" => format!("{value:.0} us"),
        "MB" => format!("{value:.1} MB"),
        "ms" if value >= 100.0 => format!("{value:.0} ms"),
        _ => format!("{value:.2} {unit}"),
    };
    // A smaller load than the target's is compared at the target's rate.
    let mut compared = value;
    if let (Some(size), Some(full)) = (size, row.full_size) {
        if size != full {
            text.push_str(&format!(" at {size}"));
            if row.key.starts_with("catch_up") {
                compared = value * full as f64 / size.max(1) as f64;
                text.push_str(&format!(" (= {:.2} s per {full})", compared));
            } else {
                text.push_str(&format!(" (target is for {full})"));
            }
        }
    }
    (text, compared)
}

fn print_table(backends: &[&str], measures: &HashMap<(String, String), Measure>, quick: bool) {
    println!();
    println!("| figure | target | measured | ratio | backend |");
    println!("|---|---|---|---|---|");
    for row in ROWS {
        // Figures without a backend (the relay) are printed once.
        let mut printed = false;
        for backend in backends.iter().copied().chain(["any"]) {
            let Some(measure) = measures.get(&(backend.to_owned(), row.key.to_owned())) else {
                continue;
            };
            printed = true;
            let (text, compared) = shown(row, measure);
            let ratio = match row.goal {
                Goal::AtLeast(target) => compared / target,
                Goal::AtMost(target) => target / compared.max(1e-9),
            };
            let verdict = if ratio >= 1.0 { "met" } else { "missed" };
            println!(
                "| {} | {} | {} | {ratio:.2} ({verdict}) | {backend} |",
                row.figure, row.target, text
            );
        }
        if !printed {
            println!(
                "| {} | {} | not measured{} | - | - |",
                row.figure,
                row.target,
                if quick { " in this run" } else { "" }
            );
        }
    }
    println!();
    println!("ratio: measured / target for \"at least\", target / measured for \"at most\": 1 or more meets it.");
}
