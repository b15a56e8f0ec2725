//! Connection floods: idle keep-alive connections beyond `worker_connections`, a cap full of
//! busy connections, the open-file limit of the `ferrogate` binary.

use std::process::{Child, Command};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ferrogate");

fn routes(up: &Upstream) -> String {
    format!(
        "routes:\n  - {{id: all, uri: /*, upstream: {{nodes: {{\"{}\": 1}}}}}}\n#END\n",
        up.node()
    )
}

/// An HTTP/1.1 keep-alive connection that made one request and now waits for the next.
struct KeptAlive {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    conn: tokio::task::JoinHandle<()>,
}

async fn kept_alive(addr: std::net::SocketAddr) -> KeptAlive {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender
        .send_request(
            http::Request::get("/idle")
                .header("host", "a.test")
                .body(Empty::new())
                .expect("request"),
        )
        .await
        .expect("answered");
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.expect("body");
    KeptAlive { sender, conn }
}

/// Whether the gateway closed `stream` (end of stream or reset within `wait`).
async fn closed_by_peer(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(wait, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// A GET on a new connection that must be answered within 2 s.
async fn get_in_time(url: &str) -> u16 {
    tokio::time::timeout(Duration::from_secs(2), get(url))
        .await
        .expect("answered in time (the gateway still accepts)")
        .status
        .as_u16()
}

/// 50 kept-alive connections fill a cap of 50, then 20 silent ones and 30 new clients come:
/// all are served, the longest-idle connections being closed to make room for them.
#[tokio::test]
async fn idle_connections_make_room_for_new_clients() {
    let up = upstream("u", Behaviour::Echo).await;
    let gw = gateway_with(
        &routes(&up),
        "nginx_config:\n  event:\n    worker_connections: 50\n",
    )
    .await;
    let addr = gw.addr();
    let mut kept = Vec::new();
    for _ in 0..50 {
        kept.push(kept_alive(addr).await);
    }
    // Connections that never send a byte are idle too (and hold a descriptor all the same).
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(addr).await.expect("connect"));
    }
    for i in 0..30 {
        assert_eq!(get_in_time(&gw.url(&format!("/new/{i}"))).await, 200);
    }
    // The new clients closed their own connections; of the 70 others at most 50 remain, and
    // the longest idle (the kept-alive ones) were closed first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let closed_kept = kept.iter().filter(|k| k.conn.is_finished()).count();
    let mut closed_silent = 0;
    for s in &mut silent {
        if closed_by_peer(s, Duration::from_millis(50)).await {
            closed_silent += 1;
        }
    }
    assert!(
        closed_kept + closed_silent >= 20,
        "only {closed_kept} + {closed_silent} idle connections were closed"
    );
    assert!(
        closed_silent == 0 || closed_kept == kept.len(),
        "newer silent connections ({closed_silent}) closed before older idle ones ({closed_kept})"
    );
    // A kept-alive connection that survived still works; closed ones report it.
    for k in &mut kept {
        if !k.conn.is_finished() {
            let resp = k
                .sender
                .send_request(
                    http::Request::get("/again")
                        .header("host", "a.test")
                        .body(Empty::new())
                        .expect("request"),
                )
                .await
                .expect("a connection left open still serves");
            assert_eq!(resp.status(), 200);
        }
    }
    drop(kept);
    drop(silent);
    // After the flood, normal traffic as before.
    for _ in 0..5 {
        assert_eq!(get_in_time(&gw.url("/after")).await, 200);
    }
}

/// A cap full of requests in progress: the newest connection is closed at once (not left
/// hanging), the requests in progress finish, and afterwards new clients are served.
#[tokio::test]
async fn busy_connections_refuse_the_newest_then_recover() {
    let slow = upstream("slow", Behaviour::Slow(Duration::from_millis(1500))).await;
    let gw = gateway_with(
        &routes(&slow),
        "nginx_config:\n  event:\n    worker_connections: 4\n",
    )
    .await;
    let in_flight: Vec<_> = (0..4)
        .map(|i| {
            let url = gw.url(&format!("/busy/{i}"));
            tokio::spawn(async move { get(&url).await.status.as_u16() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut newest = TcpStream::connect(gw.addr()).await.expect("connect");
    let _ = newest
        .write_all(b"GET /refused HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await;
    assert!(
        closed_by_peer(&mut newest, Duration::from_secs(1)).await,
        "over the cap with nothing idle, the newest connection is closed"
    );
    for task in in_flight {
        assert_eq!(
            task.await.expect("task"),
            200,
            "requests in progress finish"
        );
    }
    assert_eq!(get_in_time(&gw.url("/after")).await, 200);
}

/// Starts the binary with `ulimit` options applied first (through `sh`), on `port`.
fn spawn_limited(ulimit: &str, dir: &std::path::Path, port: u16, log: &std::path::Path) -> Child {
    let extra = format!(
        "apisix:\n  node_listen:\n    - {{ip: 127.0.0.1, port: {port}}}\nnginx_config:\n  error_log_level: warn\n"
    );
    std::fs::write(dir.join("config.yaml"), merged_config(&extra)).expect("config");
    let log = std::fs::File::create(log).expect("log file");
    let log2 = log.try_clone().expect("log file");
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit {ulimit} && exec \"$0\" run -c config.yaml"))
        .arg(BIN)
        .current_dir(dir)
        .stdout(log2)
        .stderr(log)
        .spawn()
        .expect("starts")
}

/// `(soft, hard)` of "Max open files" in /proc/<pid>/limits.
fn open_files_limit(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open files line");
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().expect("soft").to_owned(),
        fields.next().expect("hard").to_owned(),
    )
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Started under a soft limit of 256 open files, the binary raises it to the hard limit.
#[tokio::test]
async fn binary_raises_its_soft_open_file_limit() {
    let up = upstream("u", Behaviour::Echo).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("apisix.yaml"), routes(&up)).expect("routes");
    let port = free_port();
    let child = Killed(spawn_limited(
        "-S -n 256",
        dir.path(),
        port,
        &dir.path().join("err.log"),
    ));
    wait_until_listening(port).await;
    let (soft, hard) = open_files_limit(child.0.id());
    assert_ne!(hard, "256", "the test needs a hard limit above 256");
    assert_eq!(soft, hard, "soft limit raised to the hard limit");
    assert_eq!(
        get_in_time(&format!("http://127.0.0.1:{port}/x")).await,
        200
    );
}

/// Under a hard limit of 300 open files, 400 silent connections cannot exhaust the
/// descriptors: the cap follows the limit, idle connections make room, new clients are served
/// and the log holds no flood of accept failures.
#[tokio::test]
async fn open_file_limit_bounds_connections() {
    let up = upstream("u", Behaviour::Echo).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("apisix.yaml"), routes(&up)).expect("routes");
    let port = free_port();
    let log = dir.path().join("err.log");
    let child = Killed(spawn_limited("-n 300", dir.path(), port, &log));
    wait_until_listening(port).await;
    assert_eq!(open_files_limit(child.0.id()).0, "300");
    let mut silent = Vec::new();
    for _ in 0..400 {
        silent.push(
            TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect"),
        );
    }
    for i in 0..10 {
        assert_eq!(
            get_in_time(&format!("http://127.0.0.1:{port}/during/{i}")).await,
            200
        );
    }
    drop(silent);
    assert_eq!(
        get_in_time(&format!("http://127.0.0.1:{port}/after")).await,
        200
    );
    let text = std::fs::read_to_string(&log).expect("log");
    let failures = text.matches("accept failed").count();
    assert!(failures <= 3, "{failures} accept failures logged:\n{text}");
}
