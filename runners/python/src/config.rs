//! The config of one in-process Python runner, as it sits under `ext-plugin.runners.<name>`:
//!
//! ```yaml
//! ext-plugin:
//!   runners:
//!     py:
//!       in_process: true
//!       paths: [/opt/ferrogate/sdk-python/src, /etc/ferrogate/plugins]
//!       modules: [my_company.plugins]
//!       threads: 2
//!       timeout: 60
//! ```

use std::time::Duration;

use serde::Deserialize;

/// Default `threads`.
pub const DEFAULT_THREADS: usize = 2;
/// Default `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The most threads a pool may be configured with.
pub const MAX_THREADS: usize = 256;

/// One in-process Python runner.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonRunnerConfig {
    /// Marks the runner as in-process; must be `true` (the gateway uses it to tell this form from
    /// an out-of-process runner's `cmd` / `path_for_test`).
    pub in_process: bool,
    /// Plugin files and directories, loaded in order. Every directory among them is also put on
    /// `sys.path` (before `ferrogate_sdk` is imported), so this is where the SDK's `src` goes when
    /// the package is not installed, and where plugin modules named in `modules` are found.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Plugin modules imported by name (after `paths`).
    #[serde(default)]
    pub modules: Vec<String>,
    /// Python threads in the pool: calls beyond this many wait their turn. Default 2.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Seconds one call (prepare, request or response) may take, waiting for a thread included
    /// and time spent answering extra-info questions excluded; then it fails with
    /// `RunnerError::Timeout` and the plugin is interrupted. Default 60.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
}

fn default_threads() -> usize {
    DEFAULT_THREADS
}

fn default_timeout() -> f64 {
    DEFAULT_TIMEOUT.as_secs_f64()
}

impl Default for PythonRunnerConfig {
    fn default() -> Self {
        Self {
            in_process: true,
            paths: Vec::new(),
            modules: Vec::new(),
            threads: DEFAULT_THREADS,
            timeout: default_timeout(),
        }
    }
}

/// The config is invalid; every problem, each with its path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid in-process runner config: {}", .problems.join("; "))]
pub struct ConfigError {
    /// One line per problem, such as `ext-plugin.runners.py.threads: must be 1..=256`.
    pub problems: Vec<String>,
}

impl PythonRunnerConfig {
    /// Checks every field; `path` prefixes each problem (e.g. `ext-plugin.runners.py`).
    ///
    /// # Errors
    /// [`ConfigError`] listing every problem.
    pub fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if !self.in_process {
            problems.push(format!("{path}.in_process: must be true"));
        }
        if !(1..=MAX_THREADS).contains(&self.threads) {
            problems.push(format!(
                "{path}.threads: must be 1..={MAX_THREADS}, got {}",
                self.threads
            ));
        }
        if !(self.timeout.is_finite() && self.timeout > 0.0 && self.timeout <= 86_400.0) {
            problems.push(format!(
                "{path}.timeout: seconds must be > 0 and <= 86400, got {}",
                self.timeout
            ));
        }
        for (i, p) in self.paths.iter().enumerate() {
            if p.is_empty() {
                problems.push(format!("{path}.paths[{i}]: empty path"));
            }
        }
        for (i, m) in self.modules.iter().enumerate() {
            if m.is_empty() || !m.split('.').all(is_identifier) {
                problems.push(format!(
                    "{path}.modules[{i}]: `{m}` is not a dotted module name"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    /// The timeout as a duration (call after [`PythonRunnerConfig::validate`]).
    pub fn timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.timeout).unwrap_or(DEFAULT_TIMEOUT)
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_the_documented_form() {
        let c: PythonRunnerConfig =
            serde_yaml_ng::from_str("in_process: true\npaths: [/a, /b]\nmodules: [x.y]\n")
                .expect("parses");
        assert_eq!(c.threads, DEFAULT_THREADS);
        assert_eq!(c.timeout(), DEFAULT_TIMEOUT);
        assert_eq!(c.paths, ["/a", "/b"]);
        c.validate("ext-plugin.runners.py").expect("valid");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = serde_json::from_str::<PythonRunnerConfig>(r#"{"in_process": true, "thread": 3}"#)
            .expect_err("typo");
        assert!(e.to_string().contains("thread"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let c = PythonRunnerConfig {
            in_process: false,
            paths: vec![String::new()],
            modules: vec!["a..b".into(), "1x".into()],
            threads: 0,
            timeout: -1.0,
        };
        let e = c.validate("ext-plugin.runners.py").expect_err("invalid");
        let all = e.problems.join("\n");
        for needle in [
            "ext-plugin.runners.py.in_process: must be true",
            "ext-plugin.runners.py.threads: must be 1..=256",
            "ext-plugin.runners.py.timeout: seconds must be > 0",
            "ext-plugin.runners.py.paths[0]: empty path",
            "ext-plugin.runners.py.modules[0]",
            "ext-plugin.runners.py.modules[1]",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
    }
}
