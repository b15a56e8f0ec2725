//! The access log: one line per request, written by a background thread so a slow disk never
//! blocks a request.
//!
//! Line format (space separated):
//! `client - [unix_time] "METHOD /uri HTTP/1.1" status bytes upstream=ADDR upstream_time=S request_time=S`
//! where `upstream` is `-` when no node answered and times are seconds with millisecond precision.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::uri::Authority;
use http::{Method, StatusCode, Uri, Version};

use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};

/// What one access-log line says.
pub struct AccessRecord {
    /// The access log to write to.
    pub log: AccessLog,
    /// Client address.
    pub client: IpAddr,
    /// Request method.
    pub method: Method,
    /// Request URI as sent.
    pub uri: Uri,
    /// HTTP version.
    pub version: Version,
    /// Response status.
    pub status: StatusCode,
    /// The node that answered (or was tried last), if any.
    pub upstream: Option<Authority>,
    /// Time to the upstream's response head.
    pub upstream_time: Option<Duration>,
    /// When the request arrived.
    pub start: Instant,
}

/// A handle to the access log; cheap to clone.
#[derive(Clone)]
pub struct AccessLog {
    writer: NonBlocking,
}

impl AccessLog {
    /// Opens the access log at `target` (`stdout` or a file path, appended). The guard flushes the
    /// remaining lines when dropped: keep it until the server has stopped.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open(target: &str) -> std::io::Result<(AccessLog, WorkerGuard)> {
        let (writer, guard) = if target == "stdout" {
            tracing_appender::non_blocking(std::io::stdout())
        } else {
            let path = Path::new(target);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            tracing_appender::non_blocking(std::io::BufWriter::new(file))
        };
        Ok((AccessLog { writer }, guard))
    }

    /// Writes one line for a finished request that sent `bytes` body bytes.
    pub fn write(&self, r: &AccessRecord, bytes: u64) {
        let mut line = Vec::with_capacity(160);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let _ = write!(
            line,
            "{} - [{}] \"{} {} {:?}\" {} {bytes} upstream=",
            r.client,
            Seconds(now),
            r.method,
            r.uri,
            r.version,
            r.status.as_u16(),
        );
        let _ = match &r.upstream {
            Some(addr) => write!(line, "{addr}"),
            None => line.write_all(b"-"),
        };
        let _ = match r.upstream_time {
            Some(t) => write!(line, " upstream_time={}", Seconds(t)),
            None => line.write_all(b" upstream_time=-"),
        };
        let _ = writeln!(line, " request_time={}", Seconds(r.start.elapsed()));
        let _ = self.writer.clone().write_all(&line);
    }
}

/// Seconds with millisecond precision (`12.345`), formatted without floating point.
struct Seconds(Duration);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0.as_secs(), self.0.subsec_millis())
    }
}
