//! Replays the fuzzers' inputs in the normal suite: every kept crash (`fuzz/regressions/<target>/`)
//! and every seed (`fuzz/corpus/<target>/`) goes through the same harness functions the cargo-fuzz
//! targets call (`fuzz/src/lib.rs`, included below), so a fixed crash stays fixed without
//! nightly or libFuzzer. Each input must come back as a clean accept or refusal, without a
//! panic and in bounded time; seeds named `invalid_*` must be refused and the others accepted,
//! so the seeds keep steering the fuzzer into the code past validation.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "../../fuzz/src/lib.rs"]
mod harness;

/// Generous for a debug build; a regressed hang (a slow-unit finding) takes far longer.
const PER_INPUT: Duration = Duration::from_secs(10);

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted; none if the directory does not exist.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
        .collect();
    files.sort();
    files
}

/// Runs `run` on one input; returns what is wrong with how it went, if anything.
fn replay(run: fn(&[u8]) -> harness::Outcome, file: &Path) -> Result<harness::Outcome, String> {
    let data = std::fs::read(file).map_err(|e| format!("{}: unreadable: {e}", file.display()))?;
    let start = Instant::now();
    let outcome = std::panic::catch_unwind(|| run(&data))
        .map_err(|_| format!("{}: panicked", file.display()))?;
    let took = start.elapsed();
    if took > PER_INPUT {
        return Err(format!("{}: took {took:?}", file.display()));
    }
    Ok(outcome)
}

/// Replays a target's regressions (any clean outcome) and seeds (the outcome their name says).
fn check_target(target: &str, run: fn(&[u8]) -> harness::Outcome) {
    let seeds = inputs("corpus", target);
    assert!(!seeds.is_empty(), "fuzz/corpus/{target} has no seed");
    let mut failures = Vec::new();
    for file in inputs("regressions", target) {
        if let Err(why) = replay(run, &file) {
            failures.push(why);
        }
    }
    for file in seeds {
        let invalid = file
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("invalid"));
        match replay(run, &file) {
            Err(why) => failures.push(why),
            Ok(Ok(())) if invalid => {
                failures.push(format!("{}: accepted, expected a refusal", file.display()))
            }
            Ok(Err(e)) if !invalid => failures.push(format!("{}: refused: {e}", file.display())),
            Ok(_) => {}
        }
    }
    assert!(failures.is_empty(), "{target}:\n{}", failures.join("\n"));
}

#[test]
fn admin_json_inputs_are_judged_cleanly() {
    check_target("admin_json", harness::admin_json);
}

#[test]
fn standalone_file_inputs_are_judged_cleanly() {
    check_target("standalone_file", harness::standalone_file);
}

#[test]
fn vars_expr_inputs_are_judged_cleanly() {
    check_target("vars_expr", harness::vars_expr);
}
