//! Test helpers: the official APISIX Go runner (built once from the Go module proxy), a fake
//! runner for faults a real runner cannot produce on demand, and an `InfoSource`.
#![allow(dead_code, clippy::unwrap_used)]

pub mod official_go;
#[allow(unused_imports)] // only some test binaries build the Go runner
pub use official_go::go_runner;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use runner_protocol::{
    ExtraInfo, Frame, FrameCodec, HttpRequest, HttpResponse, InfoSource, Method, TextEntry,
    ToGateway, ToRunner,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::codec::{Decoder, Encoder};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "runner_ext=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Answers extra-info questions from fixed values and records them.
#[derive(Default)]
pub struct TestInfo {
    pub vars: HashMap<Vec<u8>, Bytes>,
    pub req_body: Bytes,
    pub resp_body: Bytes,
    pub asked: Mutex<Vec<ExtraInfo>>,
}

impl InfoSource for TestInfo {
    async fn answer(&self, q: &ExtraInfo) -> Option<Bytes> {
        self.asked.lock().unwrap().push(q.clone());
        match q {
            ExtraInfo::Var(name) => self.vars.get(&name[..]).cloned(),
            ExtraInfo::ReqBody => Some(self.req_body.clone()),
            ExtraInfo::RespBody => Some(self.resp_body.clone()),
        }
    }
}

pub fn get(path: &str) -> HttpRequest {
    HttpRequest {
        id: 0,
        src_ip: Bytes::from_static(&[127, 0, 0, 1]),
        method: Method::Get,
        path: Bytes::copy_from_slice(path.as_bytes()),
        args: vec![],
        headers: vec![TextEntry::new("host", "example.com")],
        conf_token: 0,
    }
}

pub fn upstream_response(status: u16) -> HttpResponse {
    HttpResponse {
        id: 0,
        status,
        headers: vec![TextEntry::new("content-type", "text/plain")],
        conf_token: 0,
    }
}

pub fn header<'a>(entries: &'a [TextEntry], name: &str) -> Option<&'a [u8]> {
    entries
        .iter()
        .find(|e| e.name.eq_ignore_ascii_case(name.as_bytes()))
        .and_then(|e| e.value.as_deref())
}

/// The gateway side of a fake runner's connection.
pub struct FakeConn {
    pub stream: UnixStream,
    buf: BytesMut,
}

impl FakeConn {
    /// The next message from the gateway; `None` at EOF.
    pub async fn read(&mut self) -> Option<ToRunner> {
        let mut codec = FrameCodec::default();
        loop {
            if let Some(frame) = codec.decode(&mut self.buf).unwrap() {
                return Some(ToRunner::decode(&frame).unwrap());
            }
            if self.stream.read_buf(&mut self.buf).await.unwrap_or(0) == 0 {
                return None;
            }
        }
    }

    pub async fn write(&mut self, msg: ToGateway) {
        self.write_frame(msg.encode()).await;
    }

    pub async fn write_frame(&mut self, frame: Frame) {
        let mut out = BytesMut::new();
        FrameCodec::default().encode(frame, &mut out).unwrap();
        let _ = self.stream.write_all(&out).await;
    }

    pub async fn write_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }
}

/// A fake runner listening on a socket in a temp dir; each connection runs `handler`.
pub struct Fake {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    /// Connections open now, and the most open at once.
    pub open: Arc<AtomicUsize>,
    pub max_open: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn fake<F, Fut>(handler: F) -> Fake
where
    F: Fn(FakeConn) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let max_open = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(handler);
    let (a, o, m) = (accepted.clone(), open.clone(), max_open.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            a.fetch_add(1, Ordering::SeqCst);
            let now = o.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            let handler = handler.clone();
            let o = o.clone();
            tokio::spawn(async move {
                handler(FakeConn {
                    stream,
                    buf: BytesMut::new(),
                })
                .await;
                o.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Fake {
        dir,
        path,
        accepted,
        open,
        max_open,
        task,
    }
}

/// Runners config connecting to `path` with short timeouts.
pub fn connect_config(path: &Path, extra: &str) -> runner_ext::ExtPluginConfig {
    let mut text = format!("path_for_test: {}\n{extra}\n", path.display());
    for default in ["connect_timeout: 0.5", "read_timeout: 0.5"] {
        let (key, _) = default.split_once(':').unwrap();
        if !extra.contains(key) {
            text.push_str(default);
            text.push('\n');
        }
    }
    serde_yaml_ng::from_str(&text).unwrap()
}

pub async fn within<T>(secs: u64, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("test step timed out")
}
