//! Logs: the error log through `tracing` (level from config, `RUST_LOG` wins) and the access log.

mod access_log;
pub mod prometheus;

pub use access_log::{AccessLog, AccessLogWriter, AccessRecord};

use tracing_subscriber::EnvFilter;

/// Maps an nginx / APISIX log level name to a tracing level name.
pub fn parse_level(name: &str) -> Option<&'static str> {
    Some(match name {
        "debug" => "debug",
        "info" | "notice" => "info",
        "warn" => "warn",
        "error" | "crit" | "alert" | "emerg" => "error",
        _ => return None,
    })
}

/// Installs the global `tracing` subscriber writing to stderr. `RUST_LOG`, when set, overrides
/// `level`. Calling it twice keeps the first subscriber.
pub fn init_tracing(level: &str) {
    let default = parse_level(level).unwrap_or("warn");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
