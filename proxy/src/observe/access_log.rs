//! The access log: one line per request, buffered in memory and written by a background thread,
//! so a request never waits for the disk and never wakes another thread.
//!
//! As nginx's `access_log ... buffer=64k flush=1s`: lines collect in a shared buffer; the writer
//! thread writes it out every second, or as soon as it holds 64 KiB. [`AccessLogWriter::finish`]
//! (and dropping the writer) writes what is left.
//!
//! Line format (space separated):
//! `client - [unix_time] "METHOD /uri HTTP/1.1" status bytes upstream=ADDR upstream_time=S request_time=S`
//! where `upstream` is `-` when no node answered and times are seconds with millisecond precision.

use std::cell::RefCell;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::uri::Authority;
use http::{Method, StatusCode, Uri, Version};
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

/// Buffered bytes waiting for the writer thread.
struct Pending {
    bytes: Vec<u8>,
    closed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

/// Size at which the writer thread is woken before its next tick.
const FLUSH_SIZE: usize = 64 * 1024;
/// Longest time a line waits in the buffer.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A handle to the access log; cheap to clone.
#[derive(Clone)]
pub struct AccessLog {
    shared: Arc<Shared>,
}

/// Owns the writer thread; [`AccessLogWriter::finish`] or dropping it writes the remaining lines.
pub struct AccessLogWriter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl AccessLog {
    /// Opens the access log at `target` (`stdout` or a file path, appended) and starts its writer
    /// thread. Keep the writer until the server has stopped.
    ///
    /// # Errors
    /// When the file cannot be opened or the thread cannot start.
    pub fn open(target: &str) -> std::io::Result<(AccessLog, AccessLogWriter)> {
        let out: Box<dyn Write + Send> = if target == "stdout" {
            Box::new(std::io::stdout())
        } else {
            let path = Path::new(target);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                bytes: Vec::with_capacity(FLUSH_SIZE),
                closed: false,
            }),
            wake: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("access-log".to_owned())
            .spawn({
                let shared = shared.clone();
                move || write_loop(&shared, out)
            })?;
        Ok((
            AccessLog {
                shared: shared.clone(),
            },
            AccessLogWriter {
                shared,
                thread: Some(thread),
            },
        ))
    }

    /// Writes one line for a finished request that sent `bytes` body bytes.
    pub fn write(&self, r: &AccessRecord, bytes: u64) {
        thread_local! {
            static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(256));
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            format_line(line, r, bytes);
            let mut pending = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            pending.bytes.extend_from_slice(line);
            if pending.bytes.len() >= FLUSH_SIZE {
                self.shared.wake.notify_one();
            }
        });
    }
}

fn format_line(line: &mut Vec<u8>, r: &AccessRecord, bytes: u64) {
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
}

/// The writer thread: waits for a full buffer, a tick or the close, then writes outside the lock.
fn write_loop(shared: &Shared, mut out: Box<dyn Write + Send>) {
    let mut spare = Vec::with_capacity(FLUSH_SIZE);
    loop {
        let closed = {
            let pending = shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let (mut pending, _) = shared
                .wake
                .wait_timeout_while(pending, FLUSH_EVERY, |p| {
                    !p.closed && p.bytes.len() < FLUSH_SIZE
                })
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::swap(&mut pending.bytes, &mut spare);
            pending.closed
        };
        if !spare.is_empty() {
            if let Err(e) = out.write_all(&spare).and_then(|()| out.flush()) {
                tracing::error!(error = %e, "cannot write the access log");
            }
            spare.clear();
        }
        if closed {
            return;
        }
    }
}

impl AccessLogWriter {
    /// Writes every buffered line and stops the writer thread.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .closed = true;
            self.shared.wake.notify_one();
            let _ = thread.join();
        }
    }
}

impl Drop for AccessLogWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Seconds with millisecond precision (`12.345`), formatted without floating point.
struct Seconds(Duration);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0.as_secs(), self.0.subsec_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_written_in_order_when_the_writer_finishes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("logs/access.log");
        let (log, writer) = AccessLog::open(path.to_str().expect("utf-8")).expect("open");
        let record = |status: u16, upstream: Option<&str>| AccessRecord {
            log: log.clone(),
            client: "10.0.0.1".parse().expect("ip"),
            method: Method::GET,
            uri: "/a?b=1".parse().expect("uri"),
            version: Version::HTTP_11,
            status: StatusCode::from_u16(status).expect("status"),
            upstream: upstream.map(|u| u.parse().expect("authority")),
            upstream_time: upstream.map(|_| Duration::from_millis(1234)),
            start: Instant::now(),
        };
        log.write(&record(200, Some("127.0.0.1:80")), 5);
        log.write(&record(404, None), 36);
        writer.finish();
        let text = std::fs::read_to_string(&path).expect("log file");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("10.0.0.1 - ["), "{}", lines[0]);
        assert!(
            lines[0].contains("] \"GET /a?b=1 HTTP/1.1\" 200 5 upstream=127.0.0.1:80 upstream_time=1.234 request_time=0."),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains("\" 404 36 upstream=- upstream_time=- request_time="),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn seconds_have_millisecond_precision() {
        assert_eq!(
            Seconds(Duration::from_micros(12_345_678)).to_string(),
            "12.345"
        );
        assert_eq!(Seconds(Duration::ZERO).to_string(), "0.000");
    }
}
