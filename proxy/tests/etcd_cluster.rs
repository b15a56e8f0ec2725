//! Several gateway nodes on one real etcd: writes on one node serve on the other, etcd outages
//! do not fail data-plane requests, and a watch that lost its history catches up by re-reading.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::admin::*;
use common::etcd::Etcd;
use common::*;
use ferrogate::store::etcd::EtcdStore;
use ferrogate::store::sync::{follow, Change, Follower};
use ferrogate::store::{Revision, Store};
use serde_json::json;

async fn node(etcd: &Etcd) -> (TestGateway, Admin) {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start_in(dir, &etcd_config(&etcd.endpoint(), "/apisix")).await;
    let admin = Admin::for_gateway(&gw);
    (gw, admin)
}

/// Polls `url` until it answers `status`; returns how long that took.
async fn until(url: &str, status: u16) -> Duration {
    let start = Instant::now();
    while get(url).await.status != status {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{url} never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn two_nodes_converge() {
    let up = upstream("a", Behaviour::Echo).await;
    let etcd = Etcd::start().await;
    let (a, admin_a) = node(&etcd).await;
    let (b, admin_b) = node(&etcd).await;

    let put = admin_a
        .put(
            "/routes/shared",
            json!({"uri": "/shared", "upstream": {"nodes": {up.node(): 1}}}),
        )
        .await;
    assert_eq!(put.status, 201);
    // Each node applies the write from its own etcd watch, in its own time.
    until(&b.url("/shared"), 200).await;
    until(&a.url("/shared"), 200).await;
    // The other node's Admin API sees the same object, revisions included.
    assert_eq!(
        admin_b.get("/routes/shared").await.json(),
        admin_a.get("/routes/shared").await.json()
    );

    assert_eq!(admin_b.delete("/routes/shared").await.status, 200);
    until(&a.url("/shared"), 404).await;
    until(&b.url("/shared"), 404).await;
}

#[tokio::test]
async fn etcd_restart_under_load_fails_no_request() {
    let up = upstream("a", Behaviour::Echo).await;
    let mut etcd = Etcd::start().await;
    let (gw, admin) = node(&etcd).await;
    let put = admin
        .put(
            "/routes/1",
            json!({"uri": "/load", "upstream": {"nodes": {up.node(): 1}}}),
        )
        .await;
    assert_eq!(put.status, 201);
    until(&gw.url("/load"), 200).await;

    let sent = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..2 {
        let (url, sent, failed, stop) =
            (gw.url("/load"), sent.clone(), failed.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let client = client();
            while !stop.load(Ordering::SeqCst) {
                let req = http::Request::get(&url)
                    .body(http_body_util::Full::new(Bytes::new()))
                    .expect("request");
                let got = send(&client, req).await;
                sent.fetch_add(1, Ordering::SeqCst);
                if got.status != 200 {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    etcd.stop();
    // The Admin API reports the outage; the data plane keeps serving from memory.
    let down = admin.get("/routes/1").await;
    assert_eq!(down.status, 503, "{:?}", down.body);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    etcd.restart().await;
    // After the restart the node reconnects and sees new writes.
    let mut written = false;
    for _ in 0..100 {
        let got = admin
            .put(
                "/routes/2",
                json!({"uri": "/after", "upstream": {"nodes": {up.node(): 1}}}),
            )
            .await;
        if got.status.is_success() {
            written = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(written, "writes work again after etcd restarts");
    until(&gw.url("/after"), 200).await;
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.expect("load task");
    }
    assert!(
        sent.load(Ordering::SeqCst) > 100,
        "load ran: {}",
        sent.load(Ordering::SeqCst)
    );
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "no data-plane request failed"
    );
}

/// One call to a follower: the changes and the revision.
type Handed = (Vec<Change>, Revision);

/// Records what a follower is handed.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Handed>>>);

impl Follower for Recorder {
    fn apply(&mut self, changes: Vec<Change>, revision: Revision) {
        self.0.lock().expect("lock").push((changes, revision));
    }
}

#[tokio::test]
async fn a_compacted_watch_resyncs_only_the_differences() {
    let etcd = Etcd::start().await;
    let store = EtcdStore::connect(&etcd.section()).await.expect("connect");
    for id in ["1", "2", "3"] {
        store
            .put(&format!("routes/{id}"), Bytes::from_static(b"{}"), None)
            .await
            .expect("put");
    }
    // The follower has the state at this read...
    let loaded = store.list("").await.expect("list");
    // ...then the store moves on and its history is compacted away.
    store
        .put("routes/2", Bytes::from_static(b"{\"v\":2}"), None)
        .await
        .expect("put");
    store.delete("routes/3").await.expect("delete");
    store
        .put("routes/4", Bytes::from_static(b"{}"), None)
        .await
        .expect("put");
    let now = store.list("").await.expect("list").revision;
    etcd.client()
        .await
        .compact(now, None)
        .await
        .expect("compact");

    let recorder = Recorder::default();
    let store: Arc<dyn Store> = Arc::new(store);
    let task = tokio::spawn(follow(
        store.clone(),
        recorder.clone(),
        Some(loaded),
        Default::default(),
    ));
    let start = Instant::now();
    while recorder.0.lock().expect("lock").is_empty() {
        assert!(start.elapsed() < Duration::from_secs(5), "no resync");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (changes, revision) = recorder.0.lock().expect("lock")[0].clone();
    let mut keys: Vec<String> = changes
        .iter()
        .map(|c| match c {
            Change::Put(e) => format!("put {}", e.key),
            Change::Delete(k) => format!("delete {k}"),
        })
        .collect();
    keys.sort();
    assert_eq!(keys, ["delete routes/3", "put routes/2", "put routes/4"]);
    assert_eq!(revision, now);

    // And it follows live changes after the resync.
    store
        .put("routes/5", Bytes::from_static(b"{}"), None)
        .await
        .expect("put");
    let start = Instant::now();
    loop {
        let seen = recorder.0.lock().expect("lock").iter().any(|(c, _)| {
            c.iter()
                .any(|c| matches!(c, Change::Put(e) if e.key == "routes/5"))
        });
        if seen {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "live change not seen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
}

#[tokio::test]
async fn control_plane_writes_and_data_plane_serves() {
    let up = upstream("a", Behaviour::Echo).await;
    let etcd = Etcd::start().await;
    let etcd_part = etcd_config(&etcd.endpoint(), "/apisix");
    let control = start_in(
        tempfile::tempdir().expect("tempdir"),
        &format!(
            "{}  role: control_plane\n",
            etcd_part.replace("role_traditional:", "role_control_plane:")
        ),
    )
    .await;
    assert!(
        control.gateway.addrs().is_empty(),
        "a control plane has no proxy"
    );
    let data = start_in(
        tempfile::tempdir().expect("tempdir"),
        &format!(
            "{}  role: data_plane\n",
            etcd_part.replace("role_traditional:", "role_data_plane:")
        ),
    )
    .await;
    assert!(
        data.gateway.admin_addr().is_none(),
        "a data plane has no Admin API"
    );

    let admin = Admin::for_gateway(&control);
    let put = admin
        .put(
            "/routes/dp",
            json!({"uri": "/dp", "upstream": {"nodes": {up.node(): 1}}}),
        )
        .await;
    assert_eq!(put.status, 201);
    until(&data.url("/dp"), 200).await;
}
