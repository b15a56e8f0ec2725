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

/// A runner the suite runs against.
pub enum RunnerUnderTest {
    /// A process started with this command.
    Process(Vec<String>),
    /// Python in the gateway's process, loading the plugins of these paths.
    InProcess(Vec<PathBuf>),
}

impl RunnerUnderTest {
    /// Its entry under `ext-plugin.runners`; a call may take `timeout` seconds.
    fn entry(&self, timeout: f64) -> String {
        match self {
            RunnerUnderTest::Process(cmd) => {
                format!("{{cmd: {}}}", serde_json::to_string(cmd).expect("json"))
            }
            RunnerUnderTest::InProcess(paths) => format!(
                "{{in_process: true, timeout: {timeout}, threads: 4, paths: {}}}",
                serde_json::to_string(paths).expect("json")
            ),
        }
    }
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
    RunnerUnderTest::Process(vec![
        official_go::go_runner().display().to_string(),
        "run".to_owned(),
    ])
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
    RunnerUnderTest::Process(vec![bin.display().to_string()])
}

/// The Python SDK's socket runner with the conformance plugins (standard library only).
pub fn python_sdk() -> RunnerUnderTest {
    let root = repo();
    RunnerUnderTest::Process(vec![
        "env".to_owned(),
        format!("PYTHONPATH={}", root.join("sdk-python/src").display()),
        "python3".to_owned(),
        "-m".to_owned(),
        "ferrogate_sdk.runner".to_owned(),
        root.join("examples/python/conformance")
            .display()
            .to_string(),
    ])
}

/// The same Python plugins in the gateway's own process (runner-python).
pub fn python_in_process() -> RunnerUnderTest {
    let root = repo();
    RunnerUnderTest::InProcess(vec![
        root.join("sdk-python/src"),
        root.join("examples/python/conformance"),
    ])
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
    RunnerUnderTest::Process(vec![
        "java".to_owned(),
        "-jar".to_owned(),
        jar.display().to_string(),
    ])
}

/// A gateway on the embedded store whose runner `main` is `runner` (with `read_timeout`
/// seconds), plus `more` YAML under `ext-plugin.runners`, and its Admin API client.
pub async fn gateway(
    runner: &RunnerUnderTest,
    read_timeout: f64,
    more: &str,
) -> (TestGateway, Admin) {
    let config = format!(
        "{}ext-plugin:\n  read_timeout: {read_timeout}\n  runners:\n    main: {}\n{more}",
        embedded_config(),
        runner.entry(read_timeout)
    );
    let gw = start_in(tempfile::tempdir().expect("tempdir"), &config).await;
    let admin = Admin::for_gateway(&gw);
    if let Some(ext) = gw.gateway.runners().and_then(|r| r.ext()) {
        ext.wait_ready(Duration::from_secs(30))
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
