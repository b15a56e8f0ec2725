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

use std::sync::Arc;

use runner_ext::ExtRunners;
use runner_protocol::KeyedRunner;
use runner_python::PythonRunner;

use crate::config::RunnersConfig;

/// One runner, whatever its kind: prepare / forget / request / response by key.
pub type Runner = Arc<dyn KeyedRunner>;

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
    in_process: Vec<PythonRunner>,
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
            in_process.push(PythonRunner::start(name, conf).await?);
        }
        let by_name = config
            .order
            .iter()
            .filter_map(|name| {
                let runner: Runner = match in_process.iter().find(|r| r.name() == name) {
                    Some(r) => Arc::new(r.clone()),
                    None => Arc::new(ext.as_ref()?.get(name)?.clone()),
                };
                Some((name.clone(), runner))
            })
            .collect();
        Ok(Runners {
            ext,
            in_process,
            by_name,
        })
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
        for r in &self.in_process {
            r.shutdown().await;
        }
    }
}
