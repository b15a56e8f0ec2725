//! The official APISIX Go runner (`github.com/apache/apisix-go-plugin-runner`), built once per
//! target dir from the Go module proxy. Shared by runner-ext's tests and the conformance suite
//! (`tests/`), which includes this file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The Go runner's module and the exact version the proxy serves.
pub const GO_RUNNER_MODULE: &str = "github.com/apache/apisix-go-plugin-runner";
pub const GO_RUNNER_VERSION: &str = "v0.5.0";

/// The `go-runner` binary of the official APISIX Go runner, built once per target dir.
///
/// `go install ...@v0.5.0` needs the module's version list for its deprecation check, which the
/// proxy refuses; so: `go mod download` that exact version, then `go build ./cmd/go-runner` in its
/// module directory (its own go.mod and go.sum pin the dependencies).
pub fn go_runner() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-runner-bin");
        let bin = dir.join(format!("go-runner-{GO_RUNNER_VERSION}"));
        if bin.exists() {
            return bin;
        }
        std::fs::create_dir_all(&dir).expect("go runner build");
        let out = Command::new("go")
            .args([
                "mod",
                "download",
                "-json",
                &format!("{GO_RUNNER_MODULE}@{GO_RUNNER_VERSION}"),
            ])
            .current_dir(&dir)
            .output()
            .expect("the Go toolchain (`go`) is needed to build the official APISIX Go runner");
        assert!(
            out.status.success(),
            "go mod download failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("go runner build");
        let module_dir = info["Dir"].as_str().expect("module Dir").to_owned();
        // A unique temporary name, then an atomic rename: concurrent test binaries may race.
        let tmp = dir.join(format!("go-runner.tmp.{}", std::process::id()));
        let out = Command::new("go")
            .args(["build", "-o"])
            .arg(&tmp)
            .arg("./cmd/go-runner")
            .current_dir(&module_dir)
            .env("GOFLAGS", "-mod=readonly")
            .output()
            .expect("go build");
        assert!(
            out.status.success(),
            "go build of the Go runner failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(&tmp, &bin).expect("go runner build");
        bin
    })
    .clone()
}
