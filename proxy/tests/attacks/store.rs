//! See main.rs.
//!
//! Data and socket directories that already exist (even shared ones like `/tmp`) keep their
//! mode; a damaged store file stops the start instead of becoming an empty store; one broken item
//! in the standalone file refuses the whole file instead of dropping that route.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferrogate::config::NodeConfig;
use ferrogate::gateway;

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ferrogate");

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

/// An existing directory with exactly `mode` (as an administrator would have made it).
fn existing_dir(path: PathBuf, mode_bits: u32) -> PathBuf {
    std::fs::create_dir_all(&path).expect("mkdir");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode_bits)).expect("chmod");
    path
}

/// `config.yaml` of an embedded-store gateway on 127.0.0.1:`port` keeping its store in `data`.
fn embedded_config(port: u16, data: &Path) -> String {
    format!(
        "apisix:\n  node_listen: [{{ip: 127.0.0.1, port: {port}}}]\n  enable_control: false\nnginx_config:\n  http: {{enable_access_log: false}}\ndeployment:\n  role_traditional: {{config_provider: embedded}}\n  embedded: {{data_dir: {}}}\n  admin:\n    admin_listen: {{ip: 127.0.0.1, port: 0}}\n    admin_key: [{{name: admin, key: attack-store-admin-key, role: admin}}]\n",
        data.display()
    )
}

/// A route `/seeded` to `node`: the embedded store seeds itself from it on its first start.
fn seed_file(node: &str) -> String {
    format!(
        "routes:\n  - {{id: seeded, uri: /seeded, upstream: {{nodes: {{\"{node}\": 1}}}}}}\n#END\n"
    )
}

/// Starts the gateway of `dir` in this process; the start error as text.
async fn start_error(dir: &Path) -> String {
    let loaded = NodeConfig::load(&dir.join("config.yaml")).expect("valid config");
    match gateway::start(loaded, Duration::from_millis(20), &[]).await {
        Ok(gw) => {
            gw.shutdown().await;
            panic!("the gateway started");
        }
        Err(e) => e.to_string(),
    }
}

/// Runs the binary on `dir/config.yaml`, which must fail to start: (exit code, stderr).
fn failed_run(dir: &Path) -> (i32, String) {
    let mut child = Command::new(BIN)
        .args(["run", "-c"])
        .arg(dir.join("config.yaml"))
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the gateway did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// SIGTERM, then the exit status.
fn stop(mut child: Child) -> std::process::ExitStatus {
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    child.wait().expect("wait")
}

#[tokio::test]
async fn existing_data_and_socket_dirs_keep_their_mode_and_a_clean_start_warns_nothing() {
    let up = upstream("a", Behaviour::Echo).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    // A readable data directory and a shared, sticky socket directory (like /tmp).
    let data = existing_dir(tmp.path().join("data"), 0o755);
    let socks = existing_dir(tmp.path().join("socks"), 0o1777);
    let port = free_port();
    std::fs::write(
        tmp.path().join("config.yaml"),
        embedded_config(port, &data)
            + &format!(
                "ext-plugin:\n  cmd: [sleep, '60']\n  socket_dir: {}\n",
                socks.display()
            ),
    )
    .expect("write");
    std::fs::write(tmp.path().join("apisix.yaml"), seed_file(&up.node())).expect("write");
    let log = tmp.path().join("stderr.log");
    let child = Command::new(BIN)
        .args(["run", "-c"])
        .arg(tmp.path().join("config.yaml"))
        .current_dir(tmp.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("starts");
    wait_until_listening(port).await;
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/seeded")).await.status,
        200
    );
    assert_eq!(mode(&data), 0o755, "the data dir keeps its mode");
    assert_eq!(mode(&socks), 0o1777, "the socket dir keeps its mode");
    assert_eq!(
        mode(&data.join("store.redb")),
        0o600,
        "the store is private"
    );
    let own: Vec<PathBuf> = std::fs::read_dir(&socks)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(
        mode(&own[0]),
        0o700,
        "the runner sockets are in a private dir"
    );
    assert!(stop(child).success());
    assert_eq!(mode(&socks), 0o1777);
    assert_eq!(
        std::fs::read_dir(&socks).expect("list").count(),
        0,
        "the private dir is removed at shutdown"
    );
    let stderr = std::fs::read_to_string(&log).expect("log");
    assert!(
        !stderr.contains("WARN") && !stderr.contains("ERROR"),
        "a clean start logs no warning:\n{stderr}"
    );
}

#[tokio::test]
async fn a_data_dir_other_users_can_write_to_is_refused_and_left_alone() {
    let up = upstream("a", Behaviour::Echo).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    for bits in [0o1777, 0o775] {
        let shared = existing_dir(tmp.path().join(format!("shared{bits:o}")), bits);
        std::fs::write(tmp.path().join("config.yaml"), embedded_config(0, &shared)).expect("write");
        std::fs::write(tmp.path().join("apisix.yaml"), seed_file(&up.node())).expect("write");
        let e = start_error(tmp.path()).await;
        assert!(
            e.contains(&shared.display().to_string()) && e.contains("other users"),
            "{e}"
        );
        assert_eq!(mode(&shared), bits, "its mode is not changed");
        assert_eq!(
            std::fs::read_dir(&shared).expect("list").count(),
            0,
            "nothing is written into it"
        );
    }
    // A missing data dir is created private, and the gateway serves.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("apisix.yaml"), seed_file(&up.node())).expect("write");
    let data = dir.path().join("fresh/data");
    let gw = start_in(
        dir,
        &format!(
            "deployment:\n  role_traditional: {{config_provider: embedded}}\n  embedded: {{data_dir: {}}}\n  admin:\n    admin_key: [{{name: admin, key: attack-store-admin-key, role: admin}}]\n",
            data.display()
        ),
    )
    .await;
    assert_eq!(get(&gw.url("/seeded")).await.status, 200);
    assert_eq!(mode(&data), 0o700);
}

#[tokio::test]
async fn damaged_store_files_stop_the_start_naming_the_file_and_are_left_unchanged() {
    let up = upstream("a", Behaviour::Echo).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::write(tmp.path().join("config.yaml"), embedded_config(0, &data)).expect("write");
    std::fs::write(tmp.path().join("apisix.yaml"), seed_file(&up.node())).expect("write");
    // A store the gateway wrote (seeded), closed.
    {
        let loaded = NodeConfig::load(&tmp.path().join("config.yaml")).expect("config");
        let gw = gateway::start(loaded, Duration::from_millis(20), &[])
            .await
            .expect("first start");
        gw.shutdown().await;
    }
    let file = data.join("store.redb");
    let good = std::fs::read(&file).expect("store written");
    let noise: Vec<u8> = (0..good.len())
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    for (what, bytes) in [
        ("empty", Vec::new()),
        ("truncated", good[..good.len() / 3].to_vec()),
        ("random bytes", noise),
    ] {
        std::fs::write(&file, &bytes).expect("damage");
        let e = start_error(tmp.path()).await;
        assert!(
            e.contains(&file.display().to_string())
                && e.contains("damaged")
                && e.contains("backup"),
            "{what}: {e}"
        );
        assert_eq!(
            std::fs::read(&file).expect("read"),
            bytes,
            "{what}: file changed"
        );
    }
    // The real binary exits non-zero on it, without a panic.
    let port = free_port();
    std::fs::write(tmp.path().join("config.yaml"), embedded_config(port, &data)).expect("write");
    std::fs::write(&file, b"").expect("empty");
    let (code, stderr) = failed_run(tmp.path());
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        std::fs::read(&file).expect("read"),
        b"",
        "nothing overwritten"
    );
    // The file restored from "backup": the gateway starts and serves the stored route.
    std::fs::write(&file, &good).expect("restore");
    let child = Command::new(BIN)
        .args(["run", "-c"])
        .arg(tmp.path().join("config.yaml"))
        .current_dir(tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    wait_until_listening(port).await;
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/seeded")).await.status,
        200
    );
    assert!(stop(child).success());
}

/// A route behind `ip-restriction` (127.0.0.1 is not allowed: 403) and a catch-all; `plugin` is
/// the restriction's config.
fn guarded_file(node: &str, plugin: &str, extra_route: &str) -> String {
    format!(
        "routes:\n  - id: guarded\n    uri: /private/*\n    priority: 10\n    plugins:\n      ip-restriction: {plugin}\n    upstream: {{nodes: {{\"{node}\": 1}}}}\n  - {{id: catch-all, uri: /*, upstream: {{nodes: {{\"{node}\": 1}}}}}}\n{extra_route}#END\n"
    )
}

#[tokio::test]
async fn a_typo_in_one_routes_plugin_config_refuses_the_whole_standalone_file() {
    let up = upstream("a", Behaviour::Echo).await;
    let other = upstream("b", Behaviour::Echo).await;
    let node = up.node();
    let good = guarded_file(&node, "{whitelist: [10.0.0.1]}", "");
    // `whitelst`: the restriction would be gone and /private/ would fall to the catch-all.
    let typo = guarded_file(
        &node,
        "{whitelst: [10.0.0.1]}",
        &format!(
            "  - {{id: new, uri: /new, priority: 20, upstream: {{nodes: {{\"{}\": 1}}}}}}\n",
            other.node()
        ),
    );

    // At start: refused, exit 64, the bad item named by its path; `validate` says the same.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config.yaml"), merged_config("")).expect("write");
    std::fs::write(dir.path().join("apisix.yaml"), &typo).expect("write");
    let (code, stderr) = failed_run(dir.path());
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("routes[0].plugins"), "{stderr}");
    assert!(stderr.contains("apisix.yaml"), "{stderr}");
    let out = Command::new(BIN)
        .args(["validate", "-c"])
        .arg(dir.path().join("config.yaml"))
        .output()
        .expect("validate");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("routes[0].plugins"));

    // On reload: the previous config stays in force, the guarded route never falls through.
    let gw = gateway(&good).await;
    assert_eq!(get(&gw.url("/private/x")).await.status, 403);
    assert_eq!(get(&gw.url("/open")).await.status, 200);
    let version = gw.gateway.snapshot_version();
    gw.write_routes(&typo);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        gw.gateway.snapshot_version(),
        version,
        "the broken file applied"
    );
    for _ in 0..5 {
        assert_eq!(get(&gw.url("/private/x")).await.status, 403);
        assert_eq!(get(&gw.url("/open")).await.status, 200);
        assert_eq!(
            get(&gw.url("/new")).await.json()["server"],
            "a",
            "the catch-all answers /new: nothing of the file applied"
        );
    }
    // The fixed file applies.
    let fixed = typo.replace("whitelst", "whitelist");
    gw.write_routes(&fixed);
    gw.wait_for_version(version).await;
    assert_eq!(get(&gw.url("/private/x")).await.status, 403);
    assert_eq!(get(&gw.url("/new")).await.json()["server"], "b");
    assert_eq!(get(&gw.url("/open")).await.status, 200);
}
