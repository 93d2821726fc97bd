//! The operator's kit (`deploy/`) names only what exists: every `BERTY_NODE__SECTION__KEY`
//! variable in any of its files is a key of `config/default.toml` once mapped the way the
//! config loader maps the environment (and the loader itself accepts it), every flag it gives
//! `berty-node serve` or `init` is one that command's `--help` lists, and every repository
//! path it relies on is there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    process::Command,
};

use berty_node::{
    config::{NodeConfig, Sources, DEFAULT_TOML},
    defaults::ENV_PREFIX,
};
use config::{File, FileFormat, Source, Value, ValueKind};

/// Fewer distinct variables than this means the scan is broken, not that the kit is clean.
const MIN_VARIABLES: usize = 8;

/// Files of the kit that configure the node: each must set at least one variable, so a scan
/// that misses a folder or a format fails.
const CONFIGURING_FILES: [&str; 6] = [
    "deploy/Dockerfile",
    "deploy/compose.yaml",
    "deploy/systemd/berty-node.service",
    "deploy/systemd/berty-node.env",
    "deploy/kubernetes/configmap.yaml",
    "deploy/kubernetes/statefulset.yaml",
];

/// What `cargo build` reads from the build context (manifest, lock, build script and the
/// files it compiles, `migrate!` and `include_str!` sources, the declared bench targets):
/// `.dockerignore` must keep every one of them.
const BUILD_INPUTS: [&str; 8] = [
    "Cargo.toml",
    "Cargo.lock",
    "build.rs",
    "src",
    "proto",
    "migrations",
    "config",
    "benches",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir`, as paths relative to the repository, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path.strip_prefix(repo()).unwrap().to_path_buf());
            }
        }
    }
    files.sort();
    files
}

fn read(relative: &Path) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("{}: {e}", relative.display()))
}

/// One variable name found in a file of the kit.
#[derive(Debug)]
struct Occurrence {
    file: PathBuf,
    line: usize,
    variable: String,
}

/// Every `BERTY_NODE__[A-Z0-9_]+` in `text` that does not continue a longer identifier, with
/// its line number (from 1).
fn variables_in(text: &str) -> Vec<(usize, String)> {
    let marker = format!("{ENV_PREFIX}__");
    let is_name_char = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        for (start, _) in line.match_indices(&marker) {
            let before = line[..start].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &line[start + marker.len()..];
            let tail: String = rest.chars().take_while(|&c| is_name_char(c)).collect();
            if !tail.is_empty() {
                found.push((index + 1, format!("{marker}{tail}")));
            }
        }
    }
    found
}

fn deploy_variables() -> Vec<Occurrence> {
    files_under(&repo().join("deploy"))
        .into_iter()
        .flat_map(|file| {
            variables_in(&read(&file))
                .into_iter()
                .map(move |(line, variable)| Occurrence {
                    file: file.clone(),
                    line,
                    variable,
                })
        })
        .collect()
}

/// The key the config loader reads `variable` as. `src/config` hands the environment to the
/// `config` crate with prefix `BERTY_NODE`, prefix separator `__` and separator `__`: it
/// lowercases the whole name, strips `berty_node__`, and turns each remaining `__` into a dot.
fn config_key(variable: &str) -> Option<String> {
    let prefix = format!("{ENV_PREFIX}__").to_lowercase();
    let name = variable.to_lowercase();
    name.strip_prefix(&prefix)
        .map(|rest| rest.replace("__", "."))
}

/// Every leaf key of `config/default.toml` (`data_dir`, `p2p.listen`, ...) with its default.
fn default_keys() -> BTreeMap<String, Value> {
    fn flatten(prefix: &str, table: config::Map<String, Value>, out: &mut BTreeMap<String, Value>) {
        for (name, value) in table {
            let key = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}.{name}")
            };
            match value.kind {
                ValueKind::Table(inner) => flatten(&key, inner, out),
                _ => {
                    out.insert(key, value);
                }
            }
        }
    }
    let table = File::from_str(DEFAULT_TOML, FileFormat::Toml)
        .collect()
        .expect("config/default.toml parses");
    let mut keys = BTreeMap::new();
    flatten("", table, &mut keys);
    keys
}

/// A default value as it would be written in the environment (lists comma-separated).
fn env_value(value: &Value) -> String {
    match &value.kind {
        ValueKind::Array(items) => items
            .iter()
            .map(|item| item.clone().into_string().unwrap())
            .collect::<Vec<_>>()
            .join(","),
        _ => value.clone().into_string().unwrap(),
    }
}

#[test]
fn every_variable_in_deploy_is_a_config_key() {
    let keys = default_keys();
    assert!(
        keys.contains_key("data_dir") && keys.contains_key("p2p.external_addresses"),
        "config/default.toml flattened to {:?}",
        keys.keys().collect::<Vec<_>>()
    );
    let found = deploy_variables();
    let problems: Vec<String> = found
        .iter()
        .filter_map(|o| {
            let key = config_key(&o.variable)?;
            (!keys.contains_key(&key)).then(|| {
                format!(
                    "{}:{}: {} is read as config key `{key}`, which config/default.toml does not have",
                    o.file.display(),
                    o.line,
                    o.variable
                )
            })
        })
        .collect();
    assert!(
        problems.is_empty(),
        "deploy/ sets configuration that does not exist:\n  {}",
        problems.join("\n  ")
    );
    let distinct: BTreeSet<&str> = found.iter().map(|o| o.variable.as_str()).collect();
    assert!(
        distinct.len() >= MIN_VARIABLES,
        "only {} distinct BERTY_NODE__ variables found under deploy/ ({distinct:?}): is the scan broken?",
        distinct.len()
    );
    for file in CONFIGURING_FILES {
        assert!(
            found.iter().any(|o| o.file == Path::new(file)),
            "{file} sets no BERTY_NODE__ variable (or was not scanned)"
        );
    }
}

#[test]
fn the_config_loader_accepts_every_variable_in_deploy() {
    let keys = default_keys();
    let variables: BTreeSet<String> = deploy_variables().into_iter().map(|o| o.variable).collect();
    assert!(!variables.is_empty(), "no variable found under deploy/");
    for variable in variables {
        // Unknown keys are refused by the loader (deny_unknown_fields), so loading the
        // variable alone, with its default value, shows the loader reads it as a real key.
        let Some(default) = config_key(&variable).and_then(|key| keys.get(&key).cloned()) else {
            continue; // reported by every_variable_in_deploy_is_a_config_key
        };
        let env = HashMap::from([(variable.clone(), env_value(&default))]);
        let loaded = NodeConfig::load(&Sources {
            env: Some(env),
            ..Sources::default()
        });
        if let Err(e) = loaded {
            panic!("the config loader refuses {variable} (with its default value): {e}");
        }
    }
}

/// The long flags `berty-node <subcommand> --help` lists.
fn flags_of(subcommand: &str) -> BTreeSet<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_berty-node"))
        .args([subcommand, "--help"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "berty-node {subcommand} --help failed"
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|word| word.starts_with("--"))
        .map(|word| word.split('=').next().unwrap_or(word).to_string())
        .collect()
}

/// Where a line runs `berty-node serve` or `init`: the subcommand and the flags after it.
/// Shell form (`berty-node serve --flag`, `ExecStart=/usr/local/bin/berty-node serve`) and
/// exec form (`CMD ["serve"]`, `args: ["serve", "--flag"]`) both count.
fn invocation(line: &str) -> Option<(String, Vec<String>)> {
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || matches!(c, '"' | ',' | '[' | ']' | '='))
        .filter(|word| !word.is_empty())
        .collect();
    let exec_form = matches!(words.first(), Some(&"CMD" | &"ENTRYPOINT" | &"args:"));
    let at = words.iter().enumerate().position(|(i, word)| {
        matches!(*word, "serve" | "init")
            && (exec_form || (i > 0 && words[i - 1].ends_with("berty-node")))
    })?;
    let flags = words[at + 1..]
        .iter()
        .filter(|word| word.starts_with("--"))
        .map(|word| word.to_string())
        .collect();
    Some((words[at].to_string(), flags))
}

#[test]
fn deploy_runs_berty_node_with_real_flags() {
    let mut help: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut invocations = 0;
    for file in files_under(&repo().join("deploy")) {
        for (index, line) in read(&file).lines().enumerate() {
            let Some((subcommand, flags)) = invocation(line) else {
                continue;
            };
            invocations += 1;
            let known = help
                .entry(subcommand.clone())
                .or_insert_with(|| flags_of(&subcommand));
            for flag in flags {
                assert!(
                    known.contains(&flag),
                    "{}:{}: `berty-node {subcommand}` has no flag {flag} (it has {known:?})",
                    file.display(),
                    index + 1
                );
            }
        }
    }
    // The Dockerfile's CMD, the systemd unit's ExecStart, the StatefulSet's args.
    assert!(
        invocations >= 3,
        "only {invocations} berty-node invocations found under deploy/"
    );
}

/// The value of the first `name:` line of a YAML file (no nesting needed here).
fn yaml_value(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.trim().strip_prefix(name)?.strip_prefix(':')?;
        Some(value.trim().trim_matches('"').to_string())
    })
}

#[test]
fn files_the_kit_refers_to_exist() {
    // compose.yaml builds the image from deploy/Dockerfile with the repository as context.
    let compose = read(Path::new("deploy/compose.yaml"));
    let context = yaml_value(&compose, "context").expect("compose.yaml has a build context");
    let dockerfile = yaml_value(&compose, "dockerfile").expect("compose.yaml names a Dockerfile");
    let context = repo().join("deploy").join(context);
    assert!(
        context.join(&dockerfile).is_file(),
        "deploy/compose.yaml: build context {} has no {dockerfile}",
        context.display()
    );
    // The systemd unit's environment file is shipped beside it.
    let unit = read(Path::new("deploy/systemd/berty-node.service"));
    for line in unit.lines() {
        if let Some(path) = line.strip_prefix("EnvironmentFile=") {
            let name = Path::new(path.trim_start_matches('-')).file_name().unwrap();
            assert!(
                repo().join("deploy/systemd").join(name).is_file(),
                "deploy/systemd/berty-node.service reads {path}, but deploy/systemd/ has no {} to install there",
                name.to_string_lossy()
            );
        }
    }
    // .dockerignore keeps everything the build reads.
    let ignore = read(Path::new(".dockerignore"));
    for input in BUILD_INPUTS {
        assert!(repo().join(input).exists(), "{input} is missing");
        let excluded_by = ignore
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .find(|pattern| {
                let pattern = pattern.trim_end_matches('/');
                pattern == input
                    || pattern
                        .strip_prefix('*')
                        .is_some_and(|end| input.ends_with(end))
            });
        if let Some(pattern) = excluded_by {
            panic!(
                ".dockerignore excludes {input} (pattern `{pattern}`), which the image build needs"
            );
        }
    }
}
