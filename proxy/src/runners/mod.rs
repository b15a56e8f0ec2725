//! The plugin runners the `ext-plugin-*` plugins call, whatever runs them: out-of-process runners
//! over Unix sockets (`runner-ext`) and Python in the gateway's own process (`runner-python`).
//! Both are configured under `ext-plugin` in config.yaml; which one serves a plugin is a config
//! change (`runner: <name>` in the plugin's conf).
//!
//! ```yaml
//! ext-plugin:
//!   runners:
//!     go: {cmd: ["/opt/go-runner"]}                                       # runner-ext
//!     py: {in_process: true, paths: ["/opt/plugins"], modules: [auth]}    # runner-python
//! ```

pub mod ext_plugin;

use runner_ext::{ExtPluginConfig, ExtRunner, ExtRunners};
use runner_protocol::{
    HttpRequest, HttpRequestReply, HttpResponse, HttpResponseReply, InfoSource, RunnerError,
    TextEntry,
};
use runner_python::{PythonRunner, PythonRunnerConfig};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_yaml_ng::Value;

/// The `ext-plugin` section: out-of-process runners (APISIX's forms and our named runners) and
/// in-process Python runners (named runners with `in_process: true`), in config order.
#[derive(Debug, Clone, Default)]
pub struct RunnersConfig {
    /// The out-of-process runners, if any.
    pub ext: Option<ExtPluginConfig>,
    /// The in-process runners, by name.
    pub in_process: Vec<(String, PythonRunnerConfig)>,
    /// Every runner's name in config order (the first is the default).
    pub order: Vec<String>,
}

impl<'de> Deserialize<'de> for RunnersConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut section = Value::deserialize(d)?;
        let mut config = RunnersConfig::default();
        if let Some(Value::Mapping(runners)) = section.get_mut("runners") {
            let names: Vec<Value> = runners.keys().cloned().collect();
            for key in names {
                let name = key
                    .as_str()
                    .ok_or_else(|| D::Error::custom("ext-plugin.runners: names must be strings"))?
                    .to_owned();
                let in_process = runners
                    .get(&key)
                    .and_then(|r| r.get("in_process"))
                    .is_some_and(|v| v.as_bool() == Some(true));
                if in_process {
                    let entry = runners.remove(&key).unwrap_or_default();
                    let parsed = PythonRunnerConfig::deserialize(entry)
                        .map_err(|e| D::Error::custom(format!("ext-plugin.runners.{name}: {e}")))?;
                    config.in_process.push((name.clone(), parsed));
                }
                config.order.push(name);
            }
            if runners.is_empty() {
                if let Value::Mapping(top) = &mut section {
                    top.remove("runners");
                }
            }
        }
        let has_ext = ["cmd", "path_for_test", "runners"]
            .iter()
            .any(|k| section.get(k).is_some());
        if has_ext {
            let ext = ExtPluginConfig::deserialize(section).map_err(D::Error::custom)?;
            if config.order.is_empty() {
                config.order.push(runner_ext::DEFAULT_RUNNER.to_owned());
            }
            config.ext = Some(ext);
        }
        Ok(config)
    }
}

impl RunnersConfig {
    /// Checks what serde cannot: every problem, one per line.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(Err(e)) = self.ext.as_ref().map(ExtPluginConfig::runner_specs) {
            problems.push(e.to_string());
        }
        for (name, config) in &self.in_process {
            if let Err(e) = config.validate(&format!("ext-plugin.runners.{name}")) {
                problems.push(e.to_string());
            }
        }
        if self.order.is_empty() {
            problems.push("no runner configured (cmd, path_for_test or runners)".to_owned());
        }
        problems
    }
}

/// One runner.
#[derive(Clone, Debug)]
pub enum Runner {
    /// A process over a Unix socket.
    Ext(ExtRunner),
    /// Python in the gateway's process.
    InProcess(PythonRunner),
}

impl Runner {
    /// Prepares `conf` under `key` in the background.
    pub fn prepare(&self, key: &str, conf: Vec<TextEntry>) {
        match self {
            Runner::Ext(r) => r.prepare(key, conf),
            Runner::InProcess(r) => r.prepare(key, conf),
        }
    }

    /// Forgets `key`.
    pub fn forget(&self, key: &str) {
        match self {
            Runner::Ext(r) => r.forget(key),
            Runner::InProcess(r) => r.forget(key),
        }
    }

    /// The keys prepared or being prepared.
    pub fn keys(&self) -> Vec<String> {
        match self {
            Runner::Ext(r) => r.keys(),
            Runner::InProcess(r) => r.keys(),
        }
    }

    /// The request call of `key`'s conf.
    ///
    /// # Errors
    /// See [`RunnerError`].
    pub async fn request<I: InfoSource>(
        &self,
        key: &str,
        call: HttpRequest,
        info: &I,
    ) -> Result<HttpRequestReply, RunnerError> {
        match self {
            Runner::Ext(r) => r.request(key, call, info).await,
            Runner::InProcess(r) => r.request(key, call, info).await,
        }
    }

    /// The response call of `key`'s conf.
    ///
    /// # Errors
    /// See [`RunnerError`].
    pub async fn response<I: InfoSource>(
        &self,
        key: &str,
        call: HttpResponse,
        info: &I,
    ) -> Result<HttpResponseReply, RunnerError> {
        match self {
            Runner::Ext(r) => r.response(key, call, info).await,
            Runner::InProcess(r) => r.response(key, call, info).await,
        }
    }
}

/// Why the runners could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An out-of-process runner's config or socket directory.
    #[error(transparent)]
    Ext(#[from] runner_ext::StartError),
    /// An in-process runner (its plugins did not load, ...).
    #[error(transparent)]
    InProcess(#[from] runner_python::StartError),
}

/// Every configured runner, by name.
#[derive(Debug)]
pub struct Runners {
    ext: Option<ExtRunners>,
    /// In config order; the first is the default.
    by_name: Vec<(String, Runner)>,
}

impl Runners {
    /// Starts every runner of `config`.
    ///
    /// # Errors
    /// See [`StartError`].
    pub async fn start(config: &RunnersConfig) -> Result<Runners, StartError> {
        let ext = config.ext.as_ref().map(ExtRunners::start).transpose()?;
        let mut in_process = Vec::new();
        for (name, conf) in &config.in_process {
            in_process.push((name.clone(), PythonRunner::start(name, conf).await?));
        }
        let by_name = config
            .order
            .iter()
            .filter_map(|name| {
                let runner = match in_process.iter().find(|(n, _)| n == name) {
                    Some((_, r)) => Runner::InProcess(r.clone()),
                    None => Runner::Ext(ext.as_ref()?.get(name)?.clone()),
                };
                Some((name.clone(), runner))
            })
            .collect();
        Ok(Runners { ext, by_name })
    }

    /// Loads every in-process Python runner of `config` (its plugin modules are imported) and
    /// stops it again, without spawning any runner process: what `ferrogate validate` checks.
    ///
    /// # Errors
    /// The first runner that does not load, as [`Runners::start`] would report it.
    pub async fn check_in_process(config: &RunnersConfig) -> Result<(), StartError> {
        for (name, conf) in &config.in_process {
            PythonRunner::start(name, conf).await?.shutdown().await;
        }
        Ok(())
    }

    /// The runner named `name`, or the default (the first) for `None`.
    pub fn runner(&self, name: Option<&str>) -> Option<&Runner> {
        match name {
            None => self.by_name.first(),
            Some(name) => self.by_name.iter().find(|(n, _)| n == name),
        }
        .map(|(_, r)| r)
    }

    /// The out-of-process runners (their processes and sockets), if any.
    pub fn ext(&self) -> Option<&ExtRunners> {
        self.ext.as_ref()
    }

    /// Stops every runner: processes get SIGTERM (then SIGKILL), Python pools end.
    pub async fn shutdown(&self) {
        if let Some(ext) = &self.ext {
            ext.shutdown().await;
        }
        for (_, runner) in &self.by_name {
            if let Runner::InProcess(r) = runner {
                r.shutdown().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> RunnersConfig {
        serde_yaml_ng::from_str(yaml).expect("valid")
    }

    #[test]
    fn both_kinds_keep_their_order() {
        let c = parse(
            "read_timeout: 3\nrunners:\n  py: {in_process: true, paths: [/p], modules: [m]}\n  go: {cmd: [/go]}\n",
        );
        assert_eq!(c.order, ["py", "go"]);
        assert_eq!(c.in_process.len(), 1);
        assert_eq!(c.in_process[0].1.modules, ["m"]);
        let ext = c.ext.expect("ext");
        assert_eq!(ext.read_timeout, Some(3.0));
        assert_eq!(ext.runner_specs().expect("specs").len(), 1);
        assert!(parse("cmd: [/go]\n").problems().is_empty());
    }

    #[test]
    fn only_in_process() {
        let c = parse("runners:\n  py: {in_process: true}\n");
        assert!(c.ext.is_none());
        assert_eq!(c.order, ["py"]);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn errors_name_the_runner() {
        let err = serde_yaml_ng::from_str::<RunnersConfig>(
            "runners:\n  py: {in_process: true, threads: many}\n",
        )
        .expect_err("invalid");
        assert!(err.to_string().contains("ext-plugin.runners.py"), "{err}");
        let c = parse("runners:\n  py: {in_process: true, threads: 0}\n");
        assert!(
            c.problems().iter().any(|p| p.contains("threads")),
            "{:?}",
            c.problems()
        );
        assert!(serde_yaml_ng::from_str::<RunnersConfig>("cmd: [/go]\nbogus: 1\n").is_err());
    }
}
