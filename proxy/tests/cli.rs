//! The `ferrogate` binary as a user runs it: validate, version, run, SIGTERM.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ferrogate");

fn validate(dir: &Path) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["validate", "-c"])
        .arg(dir.join("config.yaml"))
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn dir_with(config: &str, routes: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config.yaml"), config).expect("write");
    std::fs::write(dir.path().join("apisix.yaml"), routes).expect("write");
    dir
}

#[test]
fn version_prints_the_version() {
    let out = Command::new(BIN).arg("version").output().expect("runs");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ferrogate {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn validate_accepts_the_bundled_config() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf");
    let (code, stdout, stderr) = validate(&conf);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("1 routes"), "{stdout}");
}

#[test]
fn validate_lists_every_error_with_its_path() {
    let dir = dir_with(
        "apisix:\n  node_listen: [9080]\n",
        "upstreams:\n  - {id: u, nodes: {\"127.0.0.1:80\": 1}}\nroutes:\n  - {id: 1, uri: /ok, upstream_id: u}\n  - {id: 2, uri: /a, upstream: {nodes: {\"127.0.0.1:80\": -1}}}\n  - {id: 3, uri: /b, methods: [FETCH], upstream_id: u}\n  - {id: 4, uri: /c, upstream_id: missing}\n#END\n",
    );
    let (code, _, stderr) = validate(dir.path());
    assert_eq!(code, 64, "{stderr}");
    for path in [
        "routes[1].upstream.nodes",
        "routes[2].methods[0]",
        "routes[3]:",
    ] {
        assert!(stderr.contains(path), "missing {path} in:\n{stderr}");
    }
    assert!(!stderr.contains("routes[0]"), "{stderr}");
}

#[test]
fn validate_reports_node_config_errors() {
    for (config, path) in [
        ("apisix:\n  router: {http: trie}\n", "apisix.router.http"),
        (
            "nginx_config:\n  error_log_level: loud\n",
            "nginx_config.error_log_level",
        ),
    ] {
        let (code, _, stderr) = validate(dir_with(config, "routes: []\n#END\n").path());
        assert_eq!(code, 64);
        assert!(stderr.contains(path), "{stderr}");
    }
    // Values checked after parsing are reported all at once.
    let dir = dir_with(
        "apisix:\n  node_listen: [9080, 9080]\nnginx_config:\n  worker_processes: many\n",
        "routes: []\n#END\n",
    );
    let (code, _, stderr) = validate(dir.path());
    assert_eq!(code, 64);
    assert!(stderr.contains("apisix.node_listen[1]"), "{stderr}");
    assert!(stderr.contains("nginx_config.worker_processes"), "{stderr}");
    let dir = dir_with("apisix: [broken\n", "routes: []\n#END\n");
    assert_eq!(validate(dir.path()).0, 64);
    let dir = dir_with("apisix: {}\n", "routes: []\n");
    let (code, _, stderr) = validate(dir.path());
    assert_eq!(code, 64);
    assert!(stderr.contains("#END"), "{stderr}");
}

#[test]
fn run_refuses_a_broken_config() {
    let dir = dir_with(
        "apisix:\n  node_listen: [{port: not-a-port}]\n",
        "routes: []\n#END\n",
    );
    let out = Command::new(BIN)
        .args(["run", "-c"])
        .arg(dir.path().join("config.yaml"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("apisix.node_listen"));
}

/// The bundled quickstart (conf/), on free ports: its route answers through the proxy with no
/// external service, the Admin API works with the key generated at first start, and SIGTERM lets
/// a request in flight finish before the process exits 0.
#[tokio::test]
async fn bundled_quickstart_answers_and_sigterm_drains() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf");
    let (proxy, status, admin, control) = (free_port(), free_port(), free_port(), free_port());
    let config = std::fs::read_to_string(conf.join("config.yaml"))
        .expect("bundled config")
        .replace("- 9080", &format!("- {{ip: 127.0.0.1, port: {proxy}}}"))
        .replace("port: 7085", &format!("port: {status}"))
        .replace("port: 9180", &format!("port: {admin}"))
        .replace("port: 9090", &format!("port: {control}"))
        .replace("access_log: stdout", "access_log: logs/access.log")
        // As APISIX, `plugins:` lists the enabled plugins (one process: the setting is global).
        + "plugins: [key-auth, proxy-rewrite, prometheus]\n";
    let routes = std::fs::read_to_string(conf.join("apisix.yaml"))
        .expect("bundled routes")
        .replace("127.0.0.1:7085", &format!("127.0.0.1:{status}"));
    let dir = dir_with(&config, &routes);
    let slow = upstream("slow", Behaviour::Slow(Duration::from_millis(500))).await;
    std::fs::write(
        dir.path().join("apisix.yaml"),
        routes.replace(
            "#END",
            &format!(
                "  - {{id: slow, uri: /slow, upstream: {{nodes: {{\"{}\": 1}}}}}}\n#END",
                slow.node()
            ),
        ),
    )
    .expect("write");
    let mut child = Command::new(BIN)
        .args(["run", "-c"])
        .arg(dir.path().join("config.yaml"))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    wait_until_listening(proxy).await;
    let got = get(&format!("http://127.0.0.1:{proxy}/status")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["status"], "ok");
    assert!(got
        .header("server")
        .is_some_and(|s| s.starts_with("ferrogate/")));

    let key = std::fs::read_to_string(dir.path().join("data/admin_key")).expect("generated key");
    let put = send(
        &client(),
        http::Request::put(format!(
            "http://127.0.0.1:{admin}/apisix/admin/routes/added"
        ))
        .header("x-api-key", key.trim())
        .body(http_body_util::Full::new(bytes::Bytes::from(format!(
            r#"{{"uri":"/added","upstream":{{"nodes":{{"{}":1}}}}}}"#,
            slow.node()
        ))))
        .expect("request"),
    )
    .await;
    assert_eq!(put.status, 201, "{:?}", put.body);
    let mut added = 0;
    for _ in 0..100 {
        added = get(&format!("http://127.0.0.1:{proxy}/added"))
            .await
            .status
            .as_u16();
        if added == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(added, 200, "a route added through the Admin API serves");

    let admin_call = |method: http::Method, path: &str, body: &str| {
        http::Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:{admin}/apisix/admin{path}"))
            .header("x-api-key", key.trim())
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_owned(),
            )))
            .expect("request")
    };
    let listed = send(
        &client(),
        admin_call(http::Method::GET, "/plugins/list", ""),
    )
    .await;
    assert_eq!(
        listed.json(),
        serde_json::json!(["key-auth", "proxy-rewrite", "prometheus"]),
        "only the enabled plugins, by priority"
    );
    let refused = send(
        &client(),
        admin_call(
            http::Method::PUT,
            "/routes/limited",
            r#"{"uri":"/l","plugins":{"limit-count":{"count":1,"time_window":60}},"upstream":{"nodes":{"127.0.0.1:1":1}}}"#,
        ),
    )
    .await;
    assert_eq!(refused.status, 400);
    assert!(
        String::from_utf8_lossy(&refused.body).contains("unknown plugin [limit-count]"),
        "{:?}",
        refused.body
    );

    let in_flight =
        tokio::spawn(async move { get(&format!("http://127.0.0.1:{proxy}/slow")).await.status });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    assert_eq!(in_flight.await.expect("task"), 200);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(dir.path().join("logs/access.log")).expect("access log");
    assert!(
        log.contains("\"GET /status HTTP/1.1\" 200 15 upstream=127.0.0.1:"),
        "{log}"
    );
    assert!(log.contains("\"GET /slow HTTP/1.1\" 200"), "{log}");
}

#[tokio::test]
async fn apisix_default_plugin_list_runs_with_one_warning() {
    let proxy = free_port();
    let admin = free_port();
    let up = upstream("a", Behaviour::Echo).await;
    let config = format!(
        "apisix:\n  node_listen: [{{ip: 127.0.0.1, port: {proxy}}}]\n  enable_control: false\nnginx_config:\n  http: {{enable_access_log: false}}\ndeployment:\n  role_traditional: {{config_provider: yaml}}\n  admin:\n    admin_listen: {{ip: 127.0.0.1, port: {admin}}}\n{}",
        include_str!("fixtures/apisix-default-plugins.yaml")
    );
    let routes = format!(
        "routes:\n  - {{id: 1, uri: /get, plugins: {{request-id: {{}}}}, upstream: {{nodes: {{\"{}\": 1}}}}}}\n#END\n",
        up.node()
    );
    let dir = dir_with(&config, &routes);
    let (code, _, err) = validate(dir.path());
    assert_eq!(code, 0, "{err}");
    let child = Command::new(BIN)
        .args(["run", "-c"])
        .arg(dir.path().join("config.yaml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    wait_until_listening(proxy).await;
    let got = get(&format!("http://127.0.0.1:{proxy}/get")).await;
    assert_eq!(got.status, 200);
    assert!(got.upstream_header("x-request-id").is_some());
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill")
        .success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    assert!(out.status.success(), "{:?}", out.status);
    let log = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("lists plugins Ferrogate does not have"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("ai-proxy") && warnings[0].contains("zipkin"),
        "{log}"
    );
    assert!(!warnings[0].contains("key-auth"), "{log}");
}

/// `run` with `config.yaml`, refused (exit 64) or started (then stopped): what validate must agree
/// with.
fn run_accepts(dir: &Path) -> bool {
    let mut child = Command::new(BIN)
        .args(["run", "-c"])
        .arg(dir.join("config.yaml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runs");
    for _ in 0..100 {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    true
}

const QUIET_PORTS: &str =
    "apisix:\n  node_listen: [{ip: 127.0.0.1, port: 0}]\n  enable_control: false\n\
     deployment:\n  admin: {admin_listen: {ip: 127.0.0.1, port: 0}}\n";

/// An embedded store with no `apisix.yaml` beside `config.yaml` starts (the file only seeds a
/// fresh store), so validate accepts it too.
#[test]
fn validate_accepts_an_embedded_store_without_apisix_yaml() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config.yaml"), QUIET_PORTS).expect("write");
    let (code, stdout, stderr) = validate(dir.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("is valid"), "{stdout}");
    assert!(run_accepts(dir.path()));
}

/// An in-process Python runner whose plugin module does not import is refused by `run`, and so
/// by validate, naming the module; one that imports passes both.
#[test]
fn validate_imports_in_process_python_plugins_as_run_does() {
    let broken = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        broken.path().join("broken.py"),
        "import no_such_module_anywhere\n",
    )
    .expect("write");
    let fine = tempfile::tempdir().expect("tempdir");
    std::fs::write(fine.path().join("fine.py"), "X = 1\n").expect("write");
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk-python/src");
    let config = |plugins: &Path| {
        format!(
            "{QUIET_PORTS}ext-plugin:\n  runners:\n    py: {{in_process: true, paths: [{:?}, {:?}]}}\n",
            sdk.display().to_string(),
            plugins.display().to_string()
        )
    };
    let dir = dir_with(&config(broken.path()), "routes: []\n#END\n");
    let (code, _, stderr) = validate(dir.path());
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("no_such_module_anywhere"), "{stderr}");
    assert!(!run_accepts(dir.path()));

    let dir = dir_with(&config(fine.path()), "routes: []\n#END\n");
    let (code, _, stderr) = validate(dir.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(run_accepts(dir.path()));
}
