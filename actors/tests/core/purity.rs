//! The core stays pure: no async, no IO, no adapters. This scan fails the build's tests
//! the moment any of them creeps into `actors/src/core/`.

use std::path::{Path, PathBuf};

/// Identifiers that mean async code, an adapter crate, or a clock.
const FORBIDDEN_WORDS: &[&str] = &[
    "async",
    "await",
    "tokio",
    "ractor",
    "serde",
    "sqlx",
    "salvo",
    "lettre",
    "async_nats",
    "reqwest",
    "SystemTime",
    "Instant",
    "rand",
    "getrandom",
];

/// Paths that mean IO, threads, environment or the wall clock.
const FORBIDDEN_PATHS: &[&str] = &[
    "std::fs",
    "std::net",
    "std::process",
    "std::thread",
    "std::env",
    "std::io",
    "Utc::now",
    "Local::now",
    "new_v4",
];

/// The forbidden things found on one line of code (comment lines are prose, not code).
fn offences_in(line: &str) -> Vec<&'static str> {
    if line.trim_start().starts_with("//") {
        return Vec::new();
    }
    let words: Vec<&str> = line
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .collect();
    let mut found: Vec<&'static str> = FORBIDDEN_WORDS
        .iter()
        .copied()
        .filter(|word| words.contains(word))
        .collect();
    found.extend(
        FORBIDDEN_PATHS
            .iter()
            .copied()
            .filter(|path| line.contains(path)),
    );
    found
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn core_sources_use_no_async_io_clock_or_adapter_crates() {
    let core_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut files = Vec::new();
    rust_files(&core_dir, &mut files);
    assert!(
        files.len() >= 5,
        "expected the core sources under {}",
        core_dir.display()
    );
    let mut offences = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            for word in offences_in(line) {
                offences.push(format!("{}:{}: {word}", file.display(), number + 1));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "impure code in the core:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_purity_scan_catches_code_and_ignores_prose() {
    assert_eq!(offences_in("use tokio::sync::mpsc;"), ["tokio"]);
    assert_eq!(offences_in("    pub async fn run() {}"), ["async"]);
    assert_eq!(offences_in("let text = std::fs::read(path);"), ["std::fs"]);
    assert!(offences_in("/// Applied for, awaiting a decision, no async here.").is_empty());
    assert!(offences_in("let instant_payoff = 1;").is_empty());
}
