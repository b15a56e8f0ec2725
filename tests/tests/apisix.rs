//! APISIX's own Test::Nginx cases, translated into data (`tests/apisix/**/*.yaml`), run against
//! a real gateway on the embedded store and an emulation of APISIX's test server.
//!
//! Every file gets its own gateway; its blocks run in order, as they share APISIX's etcd. The
//! suite fails listing every step that answered otherwise, and prints its counts.
//! `APISIX_CASES=plugin/limit` runs only the files whose path contains that text.

mod case;
#[path = "../../proxy/tests/common/mod.rs"]
mod common;
mod test_server;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use case::{CaseFile, Target};
use common::admin::{embedded_config, ADMIN_KEY};

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("apisix")
}

fn case_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read suite dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            case_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

/// The counts of one file.
#[derive(Default)]
struct Tally {
    cases: usize,
    differences: usize,
    skipped: usize,
    failures: Vec<String>,
}

/// Checks the file's bookkeeping: blocks in order, none both ported and skipped, differences
/// written down.
fn check_file(name: &str, file: &CaseFile, differences_doc: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut numbers: Vec<u32> = file.blocks.iter().map(|b| b.test).collect();
    if !numbers.is_sorted_by(|a, b| a < b) {
        problems.push(format!(
            "{name}: blocks out of order or repeated: {numbers:?}"
        ));
    }
    for skipped in &file.skipped {
        if skipped.why.trim().is_empty() {
            problems.push(format!(
                "{name}: skipped {:?} without a reason",
                skipped.tests
            ));
        }
        for test in &skipped.tests {
            if numbers.contains(test) {
                problems.push(format!("{name}: TEST {test} both ported and skipped"));
            }
        }
        numbers.extend(&skipped.tests);
    }
    for block in &file.blocks {
        if let Some(heading) = &block.difference {
            if !differences_doc.contains(heading.as_str()) {
                problems.push(format!(
                    "{name} TEST {}: difference {heading:?} is not in docs/apisix-differences.md",
                    block.test
                ));
            }
        }
    }
    problems
}

/// Reads a case file: its name under the suite, and the file or why it is not one.
fn read_file(path: &Path) -> (String, Result<CaseFile, String>) {
    let name = path
        .strip_prefix(suite_dir())
        .unwrap_or(path)
        .display()
        .to_string();
    let file = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_yaml_ng::from_str(&text).map_err(|e| e.to_string()))
        .map_err(|e| format!("{name}: not a case file: {e}"));
    (name, file)
}

async fn run_file(
    name: String,
    file: CaseFile,
    server: Arc<test_server::TestServer>,
    doc: Arc<String>,
) -> Tally {
    let mut tally = Tally {
        cases: file.blocks.len(),
        differences: file
            .blocks
            .iter()
            .filter(|b| b.difference.is_some())
            .count(),
        skipped: file.skipped.iter().map(|s| s.tests.len()).sum(),
        failures: check_file(&name, &file, &doc),
    };
    let config = common::merge_yaml(&embedded_config(), &file.config);
    let gw = common::start_in(tempfile::tempdir().expect("tempdir"), &config).await;
    let mut ports: Vec<(u16, u16)> = server
        .ports
        .iter()
        .map(|(apisix, real)| (*apisix, real.port()))
        .collect();
    ports.push((1984, gw.addr().port()));
    let target = Target {
        proxy: gw.addr(),
        admin: gw.gateway.admin_addr().expect("Admin API enabled"),
        admin_key: ADMIN_KEY.to_owned(),
        prometheus: gw.gateway.prometheus_addr(),
        ports,
    };
    for block in &file.blocks {
        for (i, step) in block.steps.iter().enumerate() {
            if let Err(e) = step.run(&target, &gw).await {
                tally.failures.push(format!(
                    "{} TEST {} ({}), step {}: {e}",
                    file.source,
                    block.test,
                    block.name,
                    i + 1
                ));
                break;
            }
        }
    }
    gw.gateway.shutdown().await;
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apisix_test_cases_answer_as_apisix() {
    let mut files = Vec::new();
    case_files(&suite_dir(), &mut files);
    let only = std::env::var("APISIX_CASES").unwrap_or_default();
    files.retain(|f| f.to_string_lossy().contains(&only));
    assert!(
        !files.is_empty(),
        "no case files under {}",
        suite_dir().display()
    );

    let doc = std::fs::read_to_string(suite_dir().join("../../docs/apisix-differences.md"))
        .expect("docs/apisix-differences.md");
    let doc = Arc::new(doc);
    let server = Arc::new(test_server::start().await);
    // A few files at a time: each has its own gateway. A file whose answers depend on timing
    // (`alone: true`) runs when no other does.
    const AT_ONCE: u32 = 4;
    let limit = Arc::new(tokio::sync::Semaphore::new(AT_ONCE as usize));
    let mut running = tokio::task::JoinSet::new();
    for path in &files {
        let (name, file) = read_file(path);
        let (server, doc, limit) = (server.clone(), doc.clone(), limit.clone());
        running.spawn(async move {
            let file = match file {
                Ok(file) => file,
                Err(e) => {
                    return Tally {
                        failures: vec![e],
                        ..Tally::default()
                    }
                }
            };
            let permits = if file.alone { AT_ONCE } else { 1 };
            let _permits = limit.acquire_many_owned(permits).await.expect("semaphore");
            run_file(name, file, server, doc).await
        });
    }
    let mut total = Tally::default();
    while let Some(tally) = running.join_next().await {
        let tally = tally.expect("file task");
        total.cases += tally.cases;
        total.differences += tally.differences;
        total.skipped += tally.skipped;
        total.failures.extend(tally.failures);
    }
    println!(
        "APISIX test cases: {} files, {} cases ({} with a documented difference), {} blocks skipped, {} failed",
        files.len(),
        total.cases,
        total.differences,
        total.skipped,
        total.failures.len()
    );
    assert!(
        total.failures.is_empty(),
        "{} failures:\n{}",
        total.failures.len(),
        total.failures.join("\n")
    );
}
