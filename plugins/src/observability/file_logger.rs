//! `file-logger` (priority 399, log): one JSON line per request appended to a file.
//!
//! Config: `path` (required, non-empty: there is no plugin metadata to take it from),
//! `log_format` (optional object, see [`crate::support::log_entry`]; default: APISIX's default entry),
//! `log_format_extra`, `include_req_body` / `include_resp_body` (default false) with
//! `include_req_body_expr` / `include_resp_body_expr` and `max_req_body_bytes` /
//! `max_resp_body_bytes` (default 524288, see [`crate::support::log_entry::Bodies`]), and `match` (a
//! `vars` rule, at most 20 expressions: only requests it holds for are logged; evaluated on the
//! request's variables in `rewrite`).
//!
//! The `log` phase only formats the line and appends it to an in-memory buffer; a writer thread
//! per instance (started on the first entry, so validating a config opens nothing) opens the file
//! once (append, parent directories created), writes the buffer out every second or as soon as
//! it holds 64 KiB, and reopens the file after a write error (a batch failing twice is dropped
//! and reported). At most [`MAX_PENDING`] entries wait: beyond that entries are dropped, counted
//! and reported in a warning by the writer. When the instance is dropped (route changed or
//! removed) the writer writes what is left and ends.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::support::log_entry::{Bodies, BodyConf, Format, DEFAULT_MAX_BODY_BYTES};
use model::expr::Expr;
use plugin_api::drain::Drain;
use plugin_api::{BuildContext, Flow, Kind, LogCtx, Phases, Plugin, RequestCtx, ResponseCtx};

/// The kind.
pub struct FileLogger;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    path: Option<String>,
    log_format: Option<Map<String, Value>>,
    log_format_extra: Option<Map<String, Value>>,
    #[serde(default)]
    include_req_body: bool,
    #[schemars(length(min = 1))]
    include_req_body_expr: Option<Vec<Vec<Value>>>,
    #[serde(default)]
    include_resp_body: bool,
    #[schemars(length(min = 1))]
    include_resp_body_expr: Option<Vec<Vec<Value>>>,
    #[serde(default = "default_max_body")]
    #[schemars(range(min = 1))]
    max_req_body_bytes: u64,
    #[serde(default = "default_max_body")]
    #[schemars(range(min = 1))]
    max_resp_body_bytes: u64,
    #[serde(rename = "match")]
    #[schemars(length(max = 20))]
    when: Option<Vec<Vec<Value>>>,
}

fn default_max_body() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}

/// The `file-logger` instances (by address) whose `match` did not hold for a request.
#[derive(Clone, Default)]
struct Unmatched(Vec<usize>);

/// Entries waiting for the writer beyond which new ones are dropped.
pub const MAX_PENDING: usize = 10_000;
/// Buffered bytes at which the writer is woken before its next tick.
const FLUSH_SIZE: usize = 64 * 1024;
/// Longest time an entry waits in the buffer.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A configured instance (the checked config).
pub struct Instance {
    path: PathBuf,
    format: Format,
    /// `match`: only requests it holds for are logged.
    when: Option<Expr>,
    /// Started on the first entry; `None` inside when the thread could not start.
    writer: OnceLock<Option<Writer>>,
    max_pending: usize,
    /// The gateway's shutdown drain: the writer thread counts in it until it ends.
    drain: Option<Arc<Drain>>,
}

/// Lines waiting for the writer thread.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    entries: usize,
    dropped: u64,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

/// The instance's handle on its writer thread; dropping it lets the thread finish and end.
struct Writer {
    shared: Arc<Shared>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.shared.wake.notify_one();
    }
}

/// A `vars` rule written as a list of expressions.
fn rule(expressions: &[Vec<Value>]) -> Value {
    Value::Array(expressions.iter().cloned().map(Value::Array).collect())
}

impl Kind for FileLogger {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "file-logger";
    const PRIORITY: i32 = 399;

    /// The instance, but for the gateway's parts, which [`Kind::instance`] adds.
    fn check(&self, conf: Conf) -> Result<Instance, String> {
        let when = conf
            .when
            .as_deref()
            .map(|w| Expr::compile(&rule(w)))
            .transpose()
            .map_err(|e| format!("failed to validate the 'match' expression: {e}"))?;
        let path = conf.path.as_deref().ok_or(
            "property \"path\" is not set in either the plugin conf or the metadata".to_owned(),
        )?;
        if path.is_empty() {
            return Err("path must not be empty".to_owned());
        }
        let bodies = Bodies::new(
            BodyConf {
                include: conf.include_req_body,
                expr: conf.include_req_body_expr.as_deref(),
                max: conf.max_req_body_bytes,
            },
            BodyConf {
                include: conf.include_resp_body,
                expr: conf.include_resp_body_expr.as_deref(),
                max: conf.max_resp_body_bytes,
            },
        )?;
        Ok(Instance {
            path: PathBuf::from(path),
            format: Format::with(conf.log_format, conf.log_format_extra, bodies)?,
            when,
            writer: OnceLock::new(),
            max_pending: MAX_PENDING,
            drain: None,
        })
    }

    fn instance(&self, checked: Instance, ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        let mut instance = checked;
        instance.drain = ctx.drain.clone();
        Ok(Arc::new(instance))
    }
}

impl Instance {
    /// This instance's identity among a request's loggers.
    fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    fn writer(&self) -> Option<&Writer> {
        self.writer
            .get_or_init(|| {
                let shared = Arc::new(Shared::default());
                let path = self.path.clone();
                let thread_shared = shared.clone();
                let working = self.drain.as_ref().map(Drain::start);
                match std::thread::Builder::new()
                    .name("file-logger".to_owned())
                    .spawn(move || {
                        write_loop(&thread_shared, &path);
                        drop(working);
                    }) {
                    Ok(_) => Some(Writer { shared }),
                    Err(e) => {
                        tracing::error!(error = %e, "file-logger: cannot start the writer thread");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Queues one line; false when the queue is full and the line was dropped.
    fn push(&self, line: &[u8]) -> bool {
        let Some(writer) = self.writer() else {
            return false;
        };
        let mut pending = writer
            .shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if pending.entries >= self.max_pending {
            pending.dropped += 1;
            return false;
        }
        pending.bytes.extend_from_slice(line);
        pending.entries += 1;
        if pending.bytes.len() >= FLUSH_SIZE {
            writer.shared.wake.notify_one();
        }
        true
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::REWRITE | Phases::HEADER_FILTER | Phases::LOG
    }

    async fn rewrite(&self, req: &mut RequestCtx<'_>) -> Flow {
        if self.when.as_ref().is_some_and(|w| !w.eval(req.vars)) {
            let mut unmatched = req.state.remove::<Unmatched>().unwrap_or_default();
            unmatched.0.push(self.id());
            req.state.insert(unmatched);
            return Flow::Continue;
        }
        self.format.capture(req);
        self.format.capture_bodies(req).await;
        Flow::Continue
    }

    fn header_filter(&self, resp: &mut ResponseCtx<'_>) {
        self.format.capture_response(resp);
    }

    fn log(&self, done: &LogCtx<'_>) {
        let id = self.id();
        if done
            .state
            .get::<Unmatched>()
            .is_some_and(|u| u.0.contains(&id))
        {
            return;
        }
        let mut line = self.format.entry(done).to_string().into_bytes();
        line.push(b'\n');
        self.push(&line);
    }
}

/// Opens `path` for appending, creating its directory.
fn open(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// The writer thread: waits for a full buffer, a tick or the close, then writes outside the lock.
fn write_loop(shared: &Shared, path: &Path) {
    let mut file: Option<File> = None;
    let mut spare = Vec::with_capacity(FLUSH_SIZE);
    loop {
        let (closed, entries, dropped) = {
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
            let taken = (
                pending.closed,
                pending.entries,
                std::mem::take(&mut pending.dropped),
            );
            pending.entries = 0;
            taken
        };
        if dropped > 0 {
            tracing::warn!(path = %path.display(), dropped, "file-logger: queue full, entries dropped");
        }
        if !spare.is_empty() {
            if let Err(e) = write_batch(&mut file, path, &spare) {
                tracing::error!(path = %path.display(), error = %e, entries, "file-logger: cannot write, entries dropped");
            }
            spare.clear();
        }
        if closed {
            return;
        }
    }
}

/// Writes `bytes` to the file, (re)opening it as needed; a failed write is retried once on a
/// freshly opened file.
fn write_batch(file: &mut Option<File>, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut last = None;
    for _ in 0..2 {
        let f = match file {
            Some(f) => f,
            None => match open(path) {
                Ok(f) => file.insert(f),
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            },
        };
        match f.write_all(bytes).and_then(|()| f.flush()) {
            Ok(()) => return Ok(()),
            Err(e) => {
                *file = None;
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("write failed")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::parse_conf;
    use plugin_api::testing;
    use plugin_api::PluginKind;
    use serde_json::json;
    use std::time::Instant;

    fn instance(conf: Value) -> Instance {
        let conf: Conf = parse_conf(&conf).expect("valid");
        Instance {
            path: PathBuf::from(conf.path.expect("a path")),
            format: Format::new(conf.log_format).expect("format"),
            when: None,
            writer: OnceLock::new(),
            max_pending: MAX_PENDING,
            drain: None,
        }
    }

    fn lines(path: &Path, want: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("a JSON line"))
                .collect();
            if lines.len() >= want || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn writes_one_json_line_per_request_within_a_second() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/dir/access.log");
        let plugin = instance(json!({"path": path.to_str().expect("utf-8")}));
        let state = http::Extensions::new();
        testing::log(&plugin, 200, &state);
        testing::log(&plugin, 404, &state);
        // Still open: the periodic flush writes them.
        let got = lines(&path, 2);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["response"]["status"], 200);
        assert_eq!(got[1]["response"]["status"], 404);
        assert_eq!(got[0]["route_id"], "1");
        assert_eq!(got[0]["request"]["uri"], "/");
        testing::log(&plugin, 500, &state);
        drop(plugin);
        let got = lines(&path, 3);
        assert_eq!(got.len(), 3, "dropping the instance writes what is left");
        assert_eq!(got[2]["response"]["status"], 500);
    }

    #[test]
    fn log_format_shapes_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.log");
        let plugin = instance(json!({
            "path": path.to_str().expect("utf-8"),
            "log_format": {"host": "$host", "status": "$status", "tag": "x"}
        }));
        testing::log(&plugin, 201, &http::Extensions::new());
        drop(plugin);
        assert_eq!(
            lines(&path, 1),
            vec![json!({"host": "localhost", "status": "201", "tag": "x"})]
        );
    }

    #[test]
    fn a_full_queue_drops_entries_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("q.log");
        let mut plugin = instance(json!({"path": path.to_str().expect("utf-8")}));
        plugin.max_pending = 2;
        assert!(plugin.push(b"{\"n\":1}\n"));
        assert!(plugin.push(b"{\"n\":2}\n"));
        // The writer has not woken yet (it ticks every second): the third entry is dropped.
        assert!(!plugin.push(b"{\"n\":3}\n"));
        let dropped = plugin
            .writer()
            .map(|w| w.shared.pending.lock().expect("lock").dropped);
        assert_eq!(dropped, Some(1));
        drop(plugin);
        assert_eq!(lines(&path, 2), vec![json!({"n": 1}), json!({"n": 2})]);
    }

    #[test]
    fn a_failed_write_reopens_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.log");
        // A handle that cannot write (read-only) stands for a broken file.
        std::fs::write(&path, b"").expect("create");
        let mut file = Some(File::open(&path).expect("open read-only"));
        write_batch(&mut file, &path, b"line\n").expect("written after reopening");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "line\n");
        let mut none = None;
        let bad = dir.path().join("r.log/under/a/file");
        assert!(write_batch(&mut none, &bad, b"x\n").is_err());
    }

    #[test]
    fn configs_are_checked() {
        assert!(FileLogger.build(&json!({"path": "logs/file.log"})).is_ok());
        assert!(FileLogger
            .build(&json!({"path": "a.log", "log_format": {"a": "$host"}, "include_req_body": false, "include_resp_body": false}))
            .is_ok());
        for bad in [
            json!({}),
            json!({"path": ""}),
            json!({"path": 1}),
            json!({"path": "a.log", "log_format": "x"}),
            json!({"path": "a.log", "log_format": {"a": "$"}}),
            json!({"path": "a.log", "unknown": 1}),
            json!({"path": "a.log", "max_resp_body_bytes": 0}),
            json!({"path": "a.log", "match": [["arg_a", "<>", "1"]]}),
        ] {
            assert!(FileLogger.build(&bad).is_err(), "{bad}");
        }
        let Err(why) = FileLogger.build(&json!({})) else {
            panic!("no path accepted");
        };
        assert_eq!(
            why,
            "property \"path\" is not set in either the plugin conf or the metadata"
        );
        assert!(FileLogger
            .build(
                &json!({"path": "a.log", "include_req_body": true, "include_resp_body": true,
                "include_req_body_expr": [["arg_a", "==", "1"]], "match": [["arg_b", "==", "2"]],
                "log_format_extra": {"x": "$host"}})
            )
            .is_ok());
    }

    #[test]
    fn validating_a_config_opens_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("never.log");
        drop(FileLogger.build(&json!({"path": path.to_str().expect("utf-8")})));
        assert!(!path.exists());
    }
}
