//! Logs: the error log through `tracing` (level from config, `RUST_LOG` wins) and the access log.

mod access_log;
pub mod prometheus;

pub use access_log::{AccessLog, AccessLogWriter, AccessRecord};

use tracing_subscriber::EnvFilter;

use crate::config::LogLevel;

/// Installs the global `tracing` subscriber writing to stderr. `RUST_LOG`, when set, overrides
/// `level`. Calling it twice keeps the first subscriber.
pub fn init_tracing(level: LogLevel) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(level.tracing_directive()));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
