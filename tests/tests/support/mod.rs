//! The runners under test, how to build and start them, and a gateway configured with one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::admin::{embedded_config, Admin};
use crate::common::{start_in, TestGateway};

#[path = "../../../runners/ext/tests/common/official_go.rs"]
pub mod official_go;

/// A runner the suite runs against: the command that starts it.
pub struct RunnerUnderTest {
    pub cmd: Vec<String>,
}

/// The repository's root directory.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the repository")
        .to_owned()
}

/// APISIX's official Go runner with its sample plugins.
pub fn official_go() -> RunnerUnderTest {
    RunnerUnderTest {
        cmd: vec![
            official_go::go_runner().display().to_string(),
            "run".to_owned(),
        ],
    }
}

/// The Go SDK's conformance runner (`sdk-go/e2e/cmd/conformance-runner`), built once.
pub fn go_sdk() -> RunnerUnderTest {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    let bin = BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk-runners");
        std::fs::create_dir_all(&dir).expect("runner dir");
        let bin = dir.join("go-conformance-runner");
        // Rebuilt on every run (go's cache makes that cheap): the SDK may have changed.
        let tmp = dir.join(format!("go-conformance-runner.tmp.{}", std::process::id()));
        let out = Command::new("go")
            .arg("build")
            .arg("-o")
            .arg(&tmp)
            .arg("./cmd/conformance-runner")
            .current_dir(repo().join("sdk-go/e2e"))
            .output()
            .expect("the Go toolchain (`go`) builds the Go SDK's runner");
        assert!(
            out.status.success(),
            "go build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(&tmp, &bin).expect("rename");
        bin
    });
    RunnerUnderTest {
        cmd: vec![bin.display().to_string()],
    }
}

/// The Python SDK's socket runner with the conformance plugins (standard library only).
pub fn python_sdk() -> RunnerUnderTest {
    let root = repo();
    RunnerUnderTest {
        cmd: vec![
            "env".to_owned(),
            format!("PYTHONPATH={}", root.join("sdk-python/src").display()),
            "python3".to_owned(),
            "-m".to_owned(),
            "ferrogate_sdk.runner".to_owned(),
            root.join("examples/python/conformance")
                .display()
                .to_string(),
        ],
    }
}

/// The Java SDK's conformance runner (`sdk-java/conformance`), packaged once with Maven.
pub fn java_sdk() -> RunnerUnderTest {
    static JAR: OnceLock<PathBuf> = OnceLock::new();
    let jar = JAR.get_or_init(|| {
        let root = repo();
        let out = Command::new("mvn")
            .args([
                "-q",
                "-B",
                "-f",
                "sdk-java/pom.xml",
                "-pl",
                "conformance",
                "-am",
            ])
            .args(["package", "-DskipTests"])
            .current_dir(&root)
            .output()
            .expect("Maven (`mvn`) builds the Java SDK's runner");
        assert!(
            out.status.success(),
            "mvn package failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        root.join("sdk-java/conformance/target/ferrogate-conformance-runner.jar")
    });
    RunnerUnderTest {
        cmd: vec![
            "java".to_owned(),
            "-jar".to_owned(),
            jar.display().to_string(),
        ],
    }
}

/// A gateway on the embedded store whose runner `main` is `runner` (with `read_timeout`
/// seconds), plus `more` YAML under `ext-plugin.runners`, and its Admin API client.
pub async fn gateway(
    runner: &RunnerUnderTest,
    read_timeout: f64,
    more: &str,
) -> (TestGateway, Admin) {
    let cmd = serde_json::to_string(&runner.cmd).expect("json");
    let config = format!(
        "{}ext-plugin:\n  read_timeout: {read_timeout}\n  runners:\n    main: {{cmd: {cmd}}}\n{more}",
        embedded_config()
    );
    let gw = start_in(tempfile::tempdir().expect("tempdir"), &config).await;
    let admin = Admin::for_gateway(&gw);
    if let Some(runners) = gw.gateway.runners() {
        runners
            .wait_ready(Duration::from_secs(30))
            .await
            .expect("the runner starts");
    }
    (gw, admin)
}

/// An `ext-plugin-*` config calling `plugins` (runner plugin name, conf object) in order.
pub fn ext(plugins: &[(&str, Value)]) -> Value {
    let conf: Vec<Value> = plugins
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value.to_string()}))
        .collect();
    json!({ "conf": conf })
}

/// Writes route `id` on `uri` to `upstream` with `plugins` and waits until the gateway serves
/// the new config.
pub async fn route(
    gw: &TestGateway,
    admin: &Admin,
    id: &str,
    uri: &str,
    upstream: &str,
    plugins: Value,
) {
    let before = gw.gateway.snapshot_version();
    let body = json!({"uri": uri, "plugins": plugins, "upstream": {"nodes": {upstream: 1}}});
    let put = admin.put(&format!("/routes/{id}"), body).await;
    assert!(put.status.is_success(), "route {id}: {:?}", put.body);
    gw.wait_for_version(before).await;
}
