//! The example binary as a user runs it: a gateway with `tenant-header` on free loopback ports
//! (embedded store in a temporary directory), a route added through the Admin API in front of a
//! real upstream, and `validate` on a declarative file. Plain blocking sockets keep the test free
//! of an HTTP client library: every request is one HTTP/1.1 exchange on its own connection.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ferrogate::config::NodeConfig;
use ferrogate::gateway::{self, StartError};
use ferrogate_example_plugin::TenantHeader;
use plugin_api::{Plugin, PluginKind};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ferrogate-example-plugin");
const ADMIN_KEY: &str = "0c5e8f2d9a7b4e61a3f0d8c2b5e7a9f1";

/// A port that was free a moment ago (the gateway binds it again).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `config.yaml` for a gateway on `proxy` with its Admin API on `admin`, its store beside it.
fn node_config(proxy: u16, admin: u16) -> String {
    format!(
        "apisix:\n  node_listen: [{{ip: 127.0.0.1, port: {proxy}}}]\n  enable_control: false\n\
         nginx_config:\n  http: {{enable_access_log: false}}\n\
         deployment:\n  role_traditional: {{config_provider: embedded}}\n  admin:\n    \
         admin_listen: {{ip: 127.0.0.1, port: {admin}}}\n    \
         admin_key: [{{name: admin, key: {ADMIN_KEY}, role: admin}}]\n\
         plugins: [tenant-header, request-id]\n"
    )
}

/// A directory holding `config.yaml` and, if given, `apisix.yaml`.
fn conf_dir(config: &str, routes: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config.yaml"), config).expect("write");
    if let Some(routes) = routes {
        std::fs::write(dir.path().join("apisix.yaml"), routes).expect("write");
    }
    dir
}

/// The running example binary, killed when the test ends however it ends.
struct Running(Child);

impl Running {
    fn start(dir: &Path, ports: &[u16]) -> Running {
        let child = Command::new(BIN)
            .args(["run", "-c"])
            .arg(dir.join("config.yaml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts");
        let running = Running(child);
        for port in ports {
            wait_until_listening(*port);
        }
        running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until_listening(port: u16) {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listens on {port}");
}

/// An upstream on 127.0.0.1:0 that answers every request 200 with the request head as body.
fn upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                head.len()
            );
            let _ = stream.write_all(answer.as_bytes());
            let _ = stream.write_all(&head);
        }
    });
    port
}

/// An answer: status, head (lower-cased) and body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            (n == name).then(|| v.trim())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// One HTTP/1.1 request on a new connection to 127.0.0.1:`port`.
fn send(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

fn admin(port: u16, method: &str, path: &str, body: &str) -> Answer {
    send(
        port,
        method,
        &format!("/apisix/admin{path}"),
        &[
            ("x-api-key", ADMIN_KEY),
            ("content-type", "application/json"),
        ],
        body,
    )
}

#[test]
fn a_route_added_through_the_admin_api_runs_the_plugin() {
    let (proxy, admin_port) = (free_port(), free_port());
    let dir = conf_dir(&node_config(proxy, admin_port), None);
    let _gateway = Running::start(dir.path(), &[proxy, admin_port]);
    let node = format!("127.0.0.1:{}", upstream());

    let listed = admin(admin_port, "GET", "/plugins/list", "");
    assert_eq!(
        listed.json(),
        serde_json::json!(["request-id", "tenant-header"])
    );

    let bad = admin(
        admin_port,
        "PUT",
        "/routes/bad",
        r#"{"uri":"/bad","plugins":{"tenant-header":{"allowed":"acme"}},"upstream":{"nodes":{"127.0.0.1:1":1}}}"#,
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("tenant-header"), "{}", bad.body);

    let put = admin(
        admin_port,
        "PUT",
        "/routes/tenants",
        &format!(
            r#"{{"uri":"/t","plugins":{{"tenant-header":{{"allowed":["acme","globex"]}}}},"upstream":{{"nodes":{{"{node}":1}}}}}}"#
        ),
    );
    assert_eq!(put.status, 201, "{}", put.body);

    // The route applies once the gateway's snapshot is rebuilt: moments after the write.
    let mut allowed = send(proxy, "GET", "/t", &[("X-Tenant", "acme")], "");
    for _ in 0..100 {
        if allowed.status != 404 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        allowed = send(proxy, "GET", "/t", &[("X-Tenant", "acme")], "");
    }
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(allowed.header("x-tenant"), Some("acme"));
    assert!(
        allowed.body.to_ascii_lowercase().contains("x-tenant: acme"),
        "the upstream got the tenant: {}",
        allowed.body
    );

    let missing = send(proxy, "GET", "/t", &[], "");
    assert_eq!(missing.status, 403);
    assert_eq!(
        missing.json(),
        serde_json::json!({"message": "missing tenant header x-tenant"})
    );
    let other = send(proxy, "GET", "/t", &[("X-Tenant", "initech")], "");
    assert_eq!(other.status, 403);
    assert_eq!(
        other.json(),
        serde_json::json!({"message": "tenant not allowed"})
    );
    assert_eq!(other.header("x-tenant"), None);
}

fn validate(dir: &Path) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(["validate", "-c"])
        .arg(dir.join("config.yaml"))
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_checks_the_plugin_conf_in_apisix_yaml() {
    let route = |conf: &str| {
        format!(
            "routes:\n  - {{id: t, uri: /t, plugins: {{tenant-header: {conf}}}, upstream: {{nodes: {{\"127.0.0.1:1\": 1}}}}}}\n#END\n"
        )
    };
    let config = node_config(free_port(), free_port());

    let dir = conf_dir(&config, Some(&route("{allowed: [acme]}")));
    let (code, stderr) = validate(dir.path());
    assert_eq!(code, Some(0), "{stderr}");

    let dir = conf_dir(&config, Some(&route("{header: \"not a header\"}")));
    let (code, stderr) = validate(dir.path());
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("routes[0]"), "{stderr}");
    assert!(stderr.contains("invalid header name"), "{stderr}");

    // Not in `plugins:`, the plugin is unknown to the node.
    let only_request_id = config.replace("[tenant-header, request-id]", "[request-id]");
    let dir = conf_dir(&only_request_id, Some(&route("{allowed: [acme]}")));
    let (code, stderr) = validate(dir.path());
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("tenant-header"), "{stderr}");
}

/// A kind that takes the name of a built-in plugin.
struct Impostor;

impl PluginKind for Impostor {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn priority(&self) -> i32 {
        0
    }

    fn schema(&self) -> Value {
        Value::Null
    }

    fn build(&self, _conf: &Value) -> Result<Arc<dyn Plugin>, String> {
        Err("never built".to_owned())
    }
}

#[tokio::test]
async fn a_plugin_name_already_taken_is_refused() {
    let dir = conf_dir(&node_config(free_port(), free_port()), None);
    let loaded = NodeConfig::load(&dir.path().join("config.yaml")).expect("valid config");
    for (extra, taken_by) in [
        (
            vec![Arc::new(Impostor) as Arc<dyn PluginKind>],
            "a built-in plugin",
        ),
        (
            vec![
                Arc::new(TenantHeader) as Arc<dyn PluginKind>,
                Arc::new(TenantHeader),
            ],
            "a plugin added before it",
        ),
    ] {
        match gateway::check(&loaded, &extra).await {
            Err(e @ StartError::PluginName { .. }) => {
                let message = e.to_string();
                assert!(message.contains(extra[0].name()), "{message}");
                assert!(message.contains(taken_by), "{message}");
            }
            other => panic!("not refused: {other:?}"),
        }
    }
    assert!(gateway::check(&loaded, &[Arc::new(TenantHeader)])
        .await
        .is_ok());
}
