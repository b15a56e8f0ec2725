//! The `ferrogate` command (`run`, `validate`, `version`) as a library: [`Ferrogate`] runs it
//! with the built-in plugins and any a user adds.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use plugin_api::PluginKind;

use crate::config::{LoadedConfig, NodeConfig};
use crate::gateway;
use crate::store::FileError;

/// Exit status for configuration errors (EX_USAGE / EX_CONFIG family, as the issue asks: 64).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "ferrogate",
    about = "An API gateway compatible with Apache APISIX",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the gateway.
    Run {
        /// The node config; `apisix.yaml` is read from the same directory.
        #[arg(short, long, default_value = "conf/config.yaml")]
        config: PathBuf,
    },
    /// Check the node config and the declarative file; list every error.
    Validate {
        /// The node config; `apisix.yaml` is read from the same directory.
        #[arg(short, long, default_value = "conf/config.yaml")]
        config: PathBuf,
    },
    /// Print the version.
    Version,
}

/// The `ferrogate` command with the built-in plugins and a user's: what the `ferrogate` binary
/// runs, and what a binary of a user's crate runs to serve its own Rust plugins.
///
/// The `main` of a user's binary, with `TenantHeader` the plugin kind of `examples/rust` (a
/// crate of the workspace, built and tested in CI):
///
/// ```ignore
/// fn main() -> std::process::ExitCode {
///     ferrogate::Ferrogate::new().plugin(Arc::new(TenantHeader)).main()
/// }
/// ```
#[derive(Default)]
pub struct Ferrogate {
    extra: Vec<Arc<dyn PluginKind>>,
}

impl Ferrogate {
    /// The gateway with the built-in plugins only.
    pub fn new() -> Ferrogate {
        Ferrogate::default()
    }

    /// Adds a plugin kind beside the built-in ones; config.yaml's `plugins:` list enables it as
    /// any other. A kind named as a built-in plugin is refused at start.
    #[must_use]
    pub fn plugin(mut self, kind: Arc<dyn PluginKind>) -> Ferrogate {
        self.extra.push(kind);
        self
    }

    /// Parses the command line (`run`, `validate`, `version`) and does what it says.
    pub fn main(self) -> ExitCode {
        match Cli::parse().command {
            Command::Run { config } => run(&config, &self.extra),
            Command::Validate { config } => validate(&config, &self.extra),
            Command::Version => {
                println!("ferrogate {}", env!("CARGO_PKG_VERSION"));
                ExitCode::SUCCESS
            }
        }
    }
}

fn load(path: &Path) -> Result<LoadedConfig, ExitCode> {
    NodeConfig::load(path).map_err(|errors| {
        for e in errors {
            eprintln!("{}: {e}", path.display());
        }
        ExitCode::from(EXIT_CONFIG)
    })
}

fn run(path: &Path, extra: &[Arc<dyn PluginKind>]) -> ExitCode {
    let loaded = match load(path) {
        Ok(l) => l,
        Err(code) => return code,
    };
    crate::observe::init_tracing(loaded.config.nginx_config.error_log_level);
    for key in &loaded.unknown_keys {
        tracing::warn!(key = %key, "unknown config key ignored");
    }
    let threads = loaded.config.nginx_config.worker_processes.threads();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let gw = match gateway::start(loaded, gateway::RELOAD_INTERVAL, extra).await {
            Ok(gw) => gw,
            Err(e @ gateway::StartError::Declarative { .. }) => {
                eprintln!("{e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(threads, "ferrogate started");
        wait_for_signal().await;
        gw.shutdown().await;
        tracing::info!("ferrogate stopped");
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn validate(path: &Path, extra: &[Arc<dyn PluginKind>]) -> ExitCode {
    let loaded = match load(path) {
        Ok(l) => l,
        Err(code) => return code,
    };
    for key in &loaded.unknown_keys {
        eprintln!("{}: warning: unknown key `{key}` ignored", path.display());
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The same checks `run` makes before it serves, so both accept and refuse the same configs.
    let checked = match runtime.block_on(gateway::check(&loaded, extra)) {
        Ok(checked) => checked,
        Err(gateway::StartError::Declarative {
            path: file,
            source: FileError::Invalid(errors),
        }) => {
            // One line per bad item, so every one is named (the gateway refuses the same file).
            for e in &errors {
                eprintln!("{file}: {e}");
            }
            eprintln!(
                "{file}: {} invalid item(s): the gateway would not apply this file",
                errors.len()
            );
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if !checked.unavailable_plugins.is_empty() {
        eprintln!(
            "{}: warning: `plugins:` lists plugins Ferrogate does not have (ignored; configs using them are refused): {}",
            path.display(),
            checked.unavailable_plugins.join(", ")
        );
    }
    match checked.file {
        Some((file, parsed)) => {
            for key in &parsed.ignored {
                eprintln!("{}: warning: {key}", file.display());
            }
            println!(
                "{} and {} are valid: {} routes, {} services, {} upstreams",
                path.display(),
                file.display(),
                parsed.config.routes.len(),
                parsed.config.services.len(),
                parsed.config.upstreams.len()
            );
        }
        None => println!("{} is valid", path.display()),
    }
    ExitCode::SUCCESS
}
