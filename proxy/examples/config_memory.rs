//! Resident memory of a gateway whose standalone file grows to many routes and shrinks back, with
//! the allocator the `ferrogate` binary uses. Run by hand:
//! `cargo run --release -p ferrogate --example config_memory -- [ROUTES]` (default 200000).

use std::path::Path;
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `VmRSS` of this process, as /proc reports it.
fn resident() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .map_or_else(
            || "VmRSS unknown".to_owned(),
            |l| l.split_whitespace().collect::<Vec<_>>().join(" "),
        )
}

fn routes(n: usize) -> String {
    let mut text = String::from("routes:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  - {{id: r{i}, uri: /r/{i}, upstream: {{nodes: {{\"127.0.0.1:1\": 1}}}}}}\n"
        ));
    }
    text + "#END\n"
}

/// Replaces the standalone file at once and waits for the gateway to apply it.
async fn apply(gateway: &ferrogate::gateway::Gateway, dir: &Path, text: String) {
    let version = gateway.snapshot_version();
    let tmp = dir.join("apisix.yaml.tmp");
    std::fs::write(&tmp, text).expect("write the file");
    std::fs::rename(&tmp, dir.join("apisix.yaml")).expect("replace the file");
    while gateway.snapshot_version() == version {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(200_000, |a| a.parse().expect("ROUTES is a number"));
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        dir.path().join("config.yaml"),
        "apisix:\n  node_listen: [{ip: 127.0.0.1, port: 0}]\n  enable_control: false\n\
         nginx_config:\n  http: {enable_access_log: false}\n\
         deployment:\n  role_traditional: {config_provider: yaml}\n",
    )
    .expect("write config.yaml");
    std::fs::write(dir.path().join("apisix.yaml"), routes(2)).expect("write apisix.yaml");
    let loaded = ferrogate::config::NodeConfig::load(&dir.path().join("config.yaml"))
        .expect("load config.yaml");
    let gateway = ferrogate::gateway::start(loaded, Duration::from_millis(100), &[])
        .await
        .expect("start");
    println!("2 routes: {}", resident());
    apply(&gateway, dir.path(), routes(n)).await;
    println!("{n} routes: {}", resident());
    apply(&gateway, dir.path(), routes(2)).await;
    for wait in [0, 2, 5, 25] {
        tokio::time::sleep(Duration::from_secs(wait)).await;
        println!("back to 2 routes (+{wait} s): {}", resident());
    }
    gateway.shutdown().await;
}
