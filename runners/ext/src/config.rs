//! The `ext-plugin` configuration: APISIX's single-runner form and our named multi-runner form,
//! turned into an ordered list of [`RunnerSpec`]s.
//!
//! ```yaml
//! # APISIX form: one runner, named `default`
//! ext-plugin:
//!   cmd: ["/opt/go-runner", "run"]
//!
//! # development form: connect to a runner started by hand
//! ext-plugin:
//!   path_for_test: /tmp/runner.sock
//!
//! # several runners; the first one is the default
//! ext-plugin:
//!   read_timeout: 30          # top-level settings apply to every runner ...
//!   runners:
//!     go:   { cmd: ["/opt/go-runner", "run"] }
//!     java: { cmd: ["java", "-jar", "/opt/runner.jar"], read_timeout: 90 }   # ... unless overridden
//! ```
//!
//! Durations are seconds (integers or decimals). Every problem is reported with its path by
//! [`ExtPluginConfig::runner_specs`], all at once.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Default `conf_expire_time`: one hour, as APISIX.
pub const DEFAULT_CONF_EXPIRE_TIME: Duration = Duration::from_secs(3600);
/// Default `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default `read_timeout`.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `pool_size`.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// Default `start_timeout`.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `shutdown_grace`.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The gateway's `ext-plugin` config key. Exactly one of `cmd`, `path_for_test` and `runners`
/// must be set. The optional settings (`conf_expire_time` ... `shutdown_grace`) apply to every
/// runner unless the runner sets its own in [`RunnerConfig`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtPluginConfig {
    /// APISIX single-runner form: the runner's argv (program first). The runner is named
    /// [`DEFAULT_RUNNER`].
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// APISIX development form: spawn nothing, connect to this absolute socket path.
    #[serde(default)]
    pub path_for_test: Option<PathBuf>,
    /// Our multi-runner form: runners by name, in order; the first is the default.
    #[serde(default)]
    pub runners: Option<NamedRunners>,
    /// Where spawned runners' sockets live: a fresh private directory (mode 0700, only the
    /// gateway's user can enter it) is made inside it, by default inside the system temp dir.
    /// Its own mode is never changed; one other users can write to must be sticky (like `/tmp`).
    #[serde(default)]
    pub socket_dir: Option<PathBuf>,
    /// Seconds a conf token lives on the runner side (`APISIX_CONF_EXPIRE_TIME`); tokens are
    /// re-prepared after 0.9 x this. Default 3600.
    #[serde(default)]
    pub conf_expire_time: Option<u64>,
    /// Seconds to connect to the runner's socket (and to wait for a (re)starting runner).
    /// Default 1.
    #[serde(default)]
    pub connect_timeout: Option<f64>,
    /// Seconds the runner has for each frame of an answer; a call's total waiting for the runner
    /// is bounded by it too (time spent answering extra-info questions is not counted). Default 60.
    #[serde(default)]
    pub read_timeout: Option<f64>,
    /// Most connections to the runner at once (idle + busy). Default 16.
    #[serde(default)]
    pub pool_size: Option<usize>,
    /// Seconds a spawned runner has to accept connections after it starts. Default 10.
    #[serde(default)]
    pub start_timeout: Option<f64>,
    /// Seconds between SIGTERM and SIGKILL on shutdown. Default 5.
    #[serde(default)]
    pub shutdown_grace: Option<f64>,
}

/// One named runner in the multi-runner form. Unset settings come from the top level
/// ([`ExtPluginConfig`]), then the defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerConfig {
    /// The runner's argv (program first).
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Spawn nothing, connect to this absolute socket path.
    #[serde(default)]
    pub path_for_test: Option<PathBuf>,
    /// Seconds a conf token lives on the runner side (`APISIX_CONF_EXPIRE_TIME`); tokens are
    /// re-prepared after 0.9 x this. Default 3600.
    #[serde(default)]
    pub conf_expire_time: Option<u64>,
    /// Seconds to connect to the runner's socket (and to wait for a (re)starting runner).
    /// Default 1.
    #[serde(default)]
    pub connect_timeout: Option<f64>,
    /// Seconds the runner has for each frame of an answer; a call's total waiting for the runner
    /// is bounded by it too (time spent answering extra-info questions is not counted). Default 60.
    #[serde(default)]
    pub read_timeout: Option<f64>,
    /// Most connections to the runner at once (idle + busy). Default 16.
    #[serde(default)]
    pub pool_size: Option<usize>,
    /// Seconds a spawned runner has to accept connections after it starts. Default 10.
    #[serde(default)]
    pub start_timeout: Option<f64>,
    /// Seconds between SIGTERM and SIGKILL on shutdown. Default 5.
    #[serde(default)]
    pub shutdown_grace: Option<f64>,
}

/// The optional settings of one level (top or runner).
#[derive(Debug, Clone, Copy, Default)]
struct RunnerSettings {
    conf_expire_time: Option<u64>,
    connect_timeout: Option<f64>,
    read_timeout: Option<f64>,
    pool_size: Option<usize>,
    start_timeout: Option<f64>,
    shutdown_grace: Option<f64>,
}

macro_rules! settings_of {
    ($c:expr) => {
        RunnerSettings {
            conf_expire_time: $c.conf_expire_time,
            connect_timeout: $c.connect_timeout,
            read_timeout: $c.read_timeout,
            pool_size: $c.pool_size,
            start_timeout: $c.start_timeout,
            shutdown_grace: $c.shutdown_grace,
        }
    };
}

/// Runners by name, in the order of the config file (a map whose order is kept).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamedRunners(pub Vec<(String, RunnerConfig)>);

impl<'de> Deserialize<'de> for NamedRunners {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Ordered;
        impl<'de> Visitor<'de> for Ordered {
            type Value = NamedRunners;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of runner name to runner config")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NamedRunners, A::Error> {
                let mut out: Vec<(String, RunnerConfig)> = Vec::new();
                while let Some((name, conf)) = map.next_entry::<String, RunnerConfig>()? {
                    if out.iter().any(|(n, _)| *n == name) {
                        return Err(serde::de::Error::custom(format!(
                            "runner `{name}` is defined twice"
                        )));
                    }
                    out.push((name, conf));
                }
                Ok(NamedRunners(out))
            }
        }
        d.deserialize_map(Ordered)
    }
}

/// The name of the runner of the single-runner form.
pub const DEFAULT_RUNNER: &str = "default";

/// How the gateway reaches a runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Spawn and supervise this argv; the socket is `<socket_dir>/<name>.sock`.
    Spawn(Vec<String>),
    /// Connect to a runner started by hand.
    Connect(PathBuf),
}

/// One runner, every setting resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerSpec {
    /// Its name (`default` in the single-runner form).
    pub name: String,
    /// Spawned or connected to.
    pub endpoint: Endpoint,
    /// Token lifetime on the runner side.
    pub conf_expire_time: Duration,
    /// Connect timeout (also the wait for a starting runner).
    pub connect_timeout: Duration,
    /// Read timeout per frame and per call.
    pub read_timeout: Duration,
    /// Most connections at once.
    pub pool_size: usize,
    /// Time a spawned runner has to accept connections.
    pub start_timeout: Duration,
    /// Time between SIGTERM and SIGKILL.
    pub shutdown_grace: Duration,
}

impl RunnerSpec {
    /// A spec with the default settings.
    pub fn new(name: impl Into<String>, endpoint: Endpoint) -> Self {
        Self {
            name: name.into(),
            endpoint,
            conf_expire_time: DEFAULT_CONF_EXPIRE_TIME,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            pool_size: DEFAULT_POOL_SIZE,
            start_timeout: DEFAULT_START_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// The config is invalid; every problem, each with its path (`ext-plugin.runners.go.cmd: ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ext-plugin config: {}", .problems.join("; "))]
pub struct ConfigError {
    /// One line per problem.
    pub problems: Vec<String>,
}

const ROOT: &str = "ext-plugin";

impl ExtPluginConfig {
    /// The runners, in order (the first is the default), with every setting resolved.
    ///
    /// # Errors
    /// [`ConfigError`] listing every problem: none or several of `cmd` / `path_for_test` /
    /// `runners`, an empty argv, a relative socket path, a bad runner name (it becomes a file
    /// name), a zero or non-finite duration, a zero pool size.
    pub fn runner_specs(&self) -> Result<Vec<RunnerSpec>, ConfigError> {
        let mut problems = Vec::new();
        let top = settings_of!(self);
        check_settings(ROOT, &top, &mut problems);
        if let Some(dir) = &self.socket_dir {
            if !dir.is_absolute() {
                problems.push(format!("{ROOT}.socket_dir: must be an absolute path"));
            }
        }
        let forms = [
            self.cmd.is_some(),
            self.path_for_test.is_some(),
            self.runners.is_some(),
        ];
        let mut specs = Vec::new();
        let one_form = match forms.iter().filter(|set| **set).count() {
            0 => {
                problems.push(format!(
                    "{ROOT}: set one of `cmd`, `path_for_test` or `runners`"
                ));
                false
            }
            1 => true,
            _ => {
                problems.push(format!(
                    "{ROOT}: `cmd`, `path_for_test` and `runners` exclude each other"
                ));
                false
            }
        };
        if one_form {
            if let Some(runners) = &self.runners {
                if runners.0.is_empty() {
                    problems.push(format!("{ROOT}.runners: no runner defined"));
                }
                for (name, conf) in &runners.0 {
                    let path = format!("{ROOT}.runners.{name}");
                    if !valid_name(name) {
                        problems.push(format!(
                            "{path}: a runner name is 1..64 characters of [A-Za-z0-9_-]"
                        ));
                    }
                    let own = settings_of!(conf);
                    check_settings(&path, &own, &mut problems);
                    let endpoint = endpoint(
                        &path,
                        conf.cmd.as_ref(),
                        conf.path_for_test.as_ref(),
                        &mut problems,
                    );
                    if let Some(endpoint) = endpoint {
                        specs.push(resolve(name, endpoint, &own, &top));
                    }
                }
            } else if let Some(endpoint) = endpoint(
                ROOT,
                self.cmd.as_ref(),
                self.path_for_test.as_ref(),
                &mut problems,
            ) {
                specs.push(resolve(
                    DEFAULT_RUNNER,
                    endpoint,
                    &RunnerSettings::default(),
                    &top,
                ));
            }
        }
        if problems.is_empty() {
            Ok(specs)
        } else {
            Err(ConfigError { problems })
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn endpoint(
    path: &str,
    cmd: Option<&Vec<String>>,
    sock: Option<&PathBuf>,
    problems: &mut Vec<String>,
) -> Option<Endpoint> {
    match (cmd, sock) {
        (Some(_), Some(_)) => {
            problems.push(format!(
                "{path}: `cmd` and `path_for_test` exclude each other"
            ));
            None
        }
        (None, None) => {
            problems.push(format!("{path}: set `cmd` or `path_for_test`"));
            None
        }
        (Some(argv), None) => {
            if argv.first().is_none_or(String::is_empty) {
                problems.push(format!("{path}.cmd: needs at least the program to run"));
                None
            } else {
                Some(Endpoint::Spawn(argv.clone()))
            }
        }
        (None, Some(p)) => {
            if p.is_absolute() {
                Some(Endpoint::Connect(p.clone()))
            } else {
                problems.push(format!("{path}.path_for_test: must be an absolute path"));
                None
            }
        }
    }
}

fn check_settings(path: &str, s: &RunnerSettings, problems: &mut Vec<String>) {
    let secs = [
        ("connect_timeout", s.connect_timeout),
        ("read_timeout", s.read_timeout),
        ("start_timeout", s.start_timeout),
        ("shutdown_grace", s.shutdown_grace),
    ];
    for (field, value) in secs {
        if let Some(v) = value {
            if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
                problems.push(format!(
                    "{path}.{field}: seconds must be > 0 and <= 86400, got {v}"
                ));
            }
        }
    }
    if s.conf_expire_time == Some(0) {
        problems.push(format!(
            "{path}.conf_expire_time: must be at least 1 second"
        ));
    }
    if s.pool_size == Some(0) {
        problems.push(format!("{path}.pool_size: must be at least 1"));
    }
}

fn resolve(
    name: &str,
    endpoint: Endpoint,
    own: &RunnerSettings,
    top: &RunnerSettings,
) -> RunnerSpec {
    let secs = |own: Option<f64>, top: Option<f64>, default: Duration| {
        own.or(top).map_or(default, Duration::from_secs_f64)
    };
    RunnerSpec {
        name: name.to_owned(),
        endpoint,
        conf_expire_time: own
            .conf_expire_time
            .or(top.conf_expire_time)
            .map_or(DEFAULT_CONF_EXPIRE_TIME, Duration::from_secs),
        connect_timeout: secs(
            own.connect_timeout,
            top.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        ),
        read_timeout: secs(own.read_timeout, top.read_timeout, DEFAULT_READ_TIMEOUT),
        pool_size: own.pool_size.or(top.pool_size).unwrap_or(DEFAULT_POOL_SIZE),
        start_timeout: secs(own.start_timeout, top.start_timeout, DEFAULT_START_TIMEOUT),
        shutdown_grace: secs(
            own.shutdown_grace,
            top.shutdown_grace,
            DEFAULT_SHUTDOWN_GRACE,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<ExtPluginConfig, serde_yaml_ng::Error> {
        serde_yaml_ng::from_str(text)
    }

    #[test]
    fn apisix_cmd_form_is_the_default_runner() {
        let c = yaml("cmd: [\"/bin/runner\", \"run\"]\nread_timeout: 2.5").expect("parses");
        let specs = c.runner_specs().expect("valid");
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].name, DEFAULT_RUNNER);
        assert_eq!(
            specs[0].endpoint,
            Endpoint::Spawn(vec!["/bin/runner".into(), "run".into()])
        );
        assert_eq!(specs[0].read_timeout, Duration::from_millis(2500));
        assert_eq!(specs[0].connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(specs[0].conf_expire_time, DEFAULT_CONF_EXPIRE_TIME);
        assert_eq!(specs[0].pool_size, DEFAULT_POOL_SIZE);
    }

    #[test]
    fn path_for_test_form() {
        let c = yaml("path_for_test: /tmp/x.sock").expect("parses");
        let specs = c.runner_specs().expect("valid");
        assert_eq!(specs[0].endpoint, Endpoint::Connect("/tmp/x.sock".into()));
    }

    #[test]
    fn named_runners_keep_their_order_and_override_top_level() {
        let c = yaml(
            "pool_size: 4\nconf_expire_time: 60\nrunners:\n  zeta: {cmd: [z]}\n  alpha: {path_for_test: /a.sock, pool_size: 2, conf_expire_time: 10}\n",
        )
        .expect("parses");
        let specs = c.runner_specs().expect("valid");
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha"], "config order, first is default");
        assert_eq!((specs[0].pool_size, specs[1].pool_size), (4, 2));
        assert_eq!(specs[0].conf_expire_time, Duration::from_secs(60));
        assert_eq!(specs[1].conf_expire_time, Duration::from_secs(10));
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let e = yaml("cmd: [x]\nreadtimeout: 3").expect_err("typo");
        assert!(e.to_string().contains("readtimeout"), "{e}");
        let e = yaml("runners: {go: {cmd: [x], bogus: 1}}").expect_err("typo");
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = serde_json::from_str::<ExtPluginConfig>(
            r#"{"runners": {"go": {"cmd": ["a"]}, "go": {"cmd": ["b"]}}}"#,
        )
        .expect_err("duplicate");
        assert!(e.to_string().contains("defined twice"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let c = yaml(
            "read_timeout: 0\nsocket_dir: rel\nrunners:\n  'a b': {cmd: []}\n  ok: {path_for_test: rel.sock, pool_size: 0}\n  both: {cmd: [x], path_for_test: /x}\n  none: {}\n",
        )
        .expect("parses");
        let e = c.runner_specs().expect_err("invalid");
        let all = e.problems.join("\n");
        for needle in [
            "ext-plugin.read_timeout: seconds must be > 0",
            "ext-plugin.socket_dir: must be an absolute path",
            "ext-plugin.runners.a b: a runner name",
            "ext-plugin.runners.a b.cmd: needs at least the program",
            "ext-plugin.runners.ok.path_for_test: must be an absolute path",
            "ext-plugin.runners.ok.pool_size: must be at least 1",
            "ext-plugin.runners.both: `cmd` and `path_for_test` exclude each other",
            "ext-plugin.runners.none: set `cmd` or `path_for_test`",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
    }

    #[test]
    fn exactly_one_form() {
        let e = ExtPluginConfig::default()
            .runner_specs()
            .expect_err("empty");
        assert!(e.problems[0].contains("set one of"), "{e}");
        let c = yaml("cmd: [x]\npath_for_test: /x.sock").expect("parses");
        let e = c.runner_specs().expect_err("both");
        assert!(e.problems[0].contains("exclude each other"), "{e}");
        let c = yaml("runners: {}").expect("parses");
        let e = c.runner_specs().expect_err("no runner");
        assert!(e.problems[0].contains("no runner defined"), "{e}");
    }
}
