//! The etcd store against a real etcd (`/usr/bin/etcd` from Debian's `etcd-server`), started by
//! each test on free loopback ports: revisions, writes, transactions, leases, the watch, outages,
//! the key layout APISIX shares, authentication and TLS.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::etcd::{Etcd, ServerTls};
use etcd_client::{CompactionOptions, ConnectOptions, GetOptions, Identity, TlsOptions};
use ferrogate::config::{EtcdSection, EtcdTls};
use ferrogate::store::etcd::{EtcdStore, PAGE};
use ferrogate::store::{Event, Store, StoreError, WatchReceiver};

/// How long a test waits for an event that should come.
const EVENT_WITHIN: Duration = Duration::from_secs(10);

fn json(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

async fn store(etcd: &Etcd) -> EtcdStore {
    EtcdStore::connect(&etcd.section())
        .await
        .expect("store connects")
}

/// The next item of a watch; panics if none comes in time or the channel closed.
async fn next(rx: &mut WatchReceiver) -> Result<Vec<Event>, StoreError> {
    tokio::time::timeout(EVENT_WITHIN, rx.recv())
        .await
        .expect("a watch item in time")
        .expect("the watch channel is open")
}

/// Events from a watch until there are `n`.
async fn events(rx: &mut WatchReceiver, n: usize) -> Vec<Event> {
    let mut all = Vec::new();
    while all.len() < n {
        all.extend(next(rx).await.expect("events, not an error"));
    }
    all
}

/// Asserts that the watch channel closes (after its error item) in time.
async fn assert_closes(rx: &mut WatchReceiver) {
    let item = tokio::time::timeout(EVENT_WITHIN, rx.recv())
        .await
        .expect("the watch channel closes in time");
    assert!(
        item.is_none(),
        "the watch goes on after its error: {item:?}"
    );
}

fn unavailable_message(result: Result<impl std::fmt::Debug, StoreError>) -> String {
    match result {
        Err(StoreError::Unavailable(message)) => message,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// The store's current revision, read with the raw client.
async fn current_revision(etcd: &Etcd) -> i64 {
    let mut raw = etcd.client().await;
    let answer = raw.get("/", None).await.expect("raw get");
    answer.header().expect("header").revision()
}

#[tokio::test]
async fn put_get_and_list_carry_create_and_mod_revisions() {
    let etcd = Etcd::start().await;
    let store = store(&etcd).await;
    assert_eq!(store.prefix(), "/apisix");

    let r1 = store
        .put("routes/1", json(r#"{"id":"1"}"#), None)
        .await
        .expect("put");
    assert_eq!(r1.entry.key, "routes/1");
    assert_eq!(r1.entry.create_revision, r1.entry.mod_revision);
    let r2 = store
        .put("routes/2", json(r#"{"id":"2"}"#), None)
        .await
        .expect("put");
    assert!(r2.entry.mod_revision > r1.entry.mod_revision);
    let r1b = store
        .put("routes/1", json(r#"{"id":"1","v":2}"#), None)
        .await
        .expect("put");
    assert_eq!(r1b.entry.create_revision, r1.entry.create_revision);
    assert!(r1b.entry.mod_revision > r2.entry.mod_revision);
    let s1 = store
        .put("services/1", json(r#"{"id":"s"}"#), None)
        .await
        .expect("put");

    assert_eq!(
        store.get("routes/1").await.expect("get"),
        Some(r1b.entry.clone())
    );
    assert_eq!(store.get("routes/3").await.expect("get"), None);

    // What APISIX keeps beside the objects is not listed.
    let mut raw = etcd.client().await;
    raw.put("/apisix/routes/", "init_dir", None)
        .await
        .expect("raw put");
    raw.put("/apisix/", "init_dir", None)
        .await
        .expect("raw put");
    store.next_id().await.expect("next_id");
    let revision = current_revision(&etcd).await;

    let routes = store.list("routes/").await.expect("list");
    assert_eq!(routes.entries, vec![r1b.entry.clone(), r2.entry.clone()]);
    assert_eq!(routes.revision, revision);
    let all = store.list("").await.expect("list");
    assert_eq!(all.entries, vec![r1b.entry, r2.entry, s1.entry]);
    assert_eq!(
        store.list("upstreams/").await.expect("list").entries,
        vec![]
    );
}

#[tokio::test]
async fn list_reads_more_than_a_page_at_one_revision() {
    let etcd = Etcd::start().await;
    let store = store(&etcd).await;
    let count = PAGE as usize * 2 + 7;
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..count {
        let store = store.clone();
        writes.spawn(async move {
            store
                .put(&format!("protos/{i:05}"), json("{}"), None)
                .await
                .expect("put")
        });
    }
    writes.join_all().await;
    let revision = current_revision(&etcd).await;
    let listing = store.list("protos/").await.expect("list");
    assert_eq!(listing.revision, revision);
    let keys: Vec<String> = listing.entries.into_iter().map(|e| e.key).collect();
    let expected: Vec<String> = (0..count).map(|i| format!("protos/{i:05}")).collect();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn put_returns_the_entry_it_replaced() {
    let etcd = Etcd::start().await;
    let store = store(&etcd).await;
    let first = store
        .put("upstreams/u", json(r#"{"v":1}"#), None)
        .await
        .expect("put");
    assert_eq!(first.previous, None);
    let second = store
        .put("upstreams/u", json(r#"{"v":2}"#), None)
        .await
        .expect("put");
    assert_eq!(second.previous, Some(first.entry));
    assert_eq!(second.entry.value, json(r#"{"v":2}"#));
}

#[tokio::test]
async fn compare_and_swap_replaces_only_an_unchanged_entry() {
    let etcd = Etcd::start().await;
    let store = store(&etcd).await;
    let first = store
        .put("routes/1", json(r#"{"v":1}"#), None)
        .await
        .expect("put");
    let rev = first.entry.mod_revision;

    let swapped = store
        .compare_and_swap("routes/1", rev, json(r#"{"v":2}"#), None)
        .await
        .expect("cas")
        .expect("the entry was unchanged");
    assert_eq!(swapped.previous, Some(first.entry.clone()));
    assert_eq!(swapped.entry.create_revision, first.entry.create_revision);
    assert!(swapped.entry.mod_revision > rev);

    // The revision is stale now: nothing is written.
    let lost = store
        .compare_and_swap("routes/1", rev, json(r#"{"v":3}"#), None)
        .await
        .expect("cas");
    assert_eq!(lost, None);
    assert_eq!(
        store.get("routes/1").await.expect("get"),
        Some(swapped.entry.clone())
    );

    // A missing or deleted key never matches.
    assert_eq!(
        store
            .compare_and_swap("routes/2", rev, json("{}"), None)
            .await
            .expect("cas"),
        None
    );
    store.delete("routes/1").await.expect("delete");
    assert_eq!(
        store
            .compare_and_swap("routes/1", swapped.entry.mod_revision, json("{}"), None)
            .await
            .expect("cas"),
        None
    );
    assert_eq!(store.get("routes/1").await.expect("get"), None);
}

#[tokio::test]
async fn delete_removes_the_key_and_everything_under_it() {
    let etcd = Etcd::start().await;
    let store = store(&etcd).await;
    let jack = store
        .put("consumers/jack", json(r#"{"username":"jack"}"#), None)
        .await
        .expect("put");
    for key in [
        "consumers/jack/credentials/c1",
        "consumers/jack/credentials/c2",
        "consumers/jackson",
        "consumers/x/credentials/c1",
    ] {
        store.put(key, json("{}"), None).await.expect("put");
    }

    let deleted = store.delete("consumers/jack").await.expect("delete");
    assert_eq!(deleted, Some(jack.entry));
    let left: Vec<String> = store
        .list("consumers/")
        .await
        .expect("list")
        .entries
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(left, ["consumers/jackson", "consumers/x/credentials/c1"]);
    assert_eq!(store.delete("consumers/jack").await.expect("delete"), None);

    // Children go even when the key itself does not exist.
    assert_eq!(store.delete("consumers/x").await.expect("delete"), None);
    assert_eq!(
        store.get("consumers/x/credentials/c1").await.expect("get"),
        None
    );
}

#[tokio::test]
async fn next_id_is_the_revision_of_a_write_to_gen_id() {
    let etcd = Etcd::start().await;
    let store = store(&etcd).await;
    let first = store.next_id().await.expect("next_id");
    let put = store.put("routes/1", json("{}"), None).await.expect("put");
    let second = store.next_id().await.expect("next_id");
    assert!(put.entry.mod_revision > first);
    assert!(second > put.entry.mod_revision);

    let mut raw = etcd.client().await;
    let gen_id = raw.get("/apisix/gen_id", None).await.expect("raw get");
    assert_eq!(gen_id.kvs()[0].mod_revision(), second);
    assert_eq!(
        store
            .get("gen_id")
            .await
            .expect("get")
            .map(|e| e.mod_revision),
        Some(second)
    );
}

#[tokio::test]
async fn ttl_expiry_produces_a_delete_event_and_a_put_without_ttl_drops_the_lease() {
    let etcd = Etcd::start().await;
    let store = store(&etcd).await;
    let ttl = Some(Duration::from_secs(1));
    let kept = store
        .put("routes/kept", json("{}"), ttl)
        .await
        .expect("put with ttl");
    store
        .put("routes/kept", json("{}"), None)
        .await
        .expect("put without ttl");
    let expiring = store
        .put("routes/expiring", json("{}"), ttl)
        .await
        .expect("put with ttl");

    let mut raw = etcd.client().await;
    let lease_of = |answer: etcd_client::GetResponse| answer.kvs()[0].lease();
    assert_ne!(
        lease_of(
            raw.get("/apisix/routes/expiring", None)
                .await
                .expect("raw get")
        ),
        0
    );
    assert_eq!(
        lease_of(raw.get("/apisix/routes/kept", None).await.expect("raw get")),
        0
    );

    let mut rx = store
        .watch(expiring.entry.mod_revision + 1)
        .await
        .expect("watch");
    let started = Instant::now();
    let events = events(&mut rx, 1).await;
    match &events[0] {
        Event::Delete { key, revision } => {
            assert_eq!(key, "routes/expiring");
            assert!(*revision > expiring.entry.mod_revision);
        }
        other => panic!("expected the expiry, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(store.get("routes/expiring").await.expect("get"), None);
    // Its lease was granted first and has expired too; the later put without TTL kept the key.
    let kept_now = store.get("routes/kept").await.expect("get").expect("kept");
    assert_eq!(kept_now.create_revision, kept.entry.create_revision);
}

#[tokio::test]
async fn watch_delivers_events_in_order_from_a_revision() {
    let etcd = Etcd::start().await;
    let store = store(&etcd).await;
    let before = store
        .put("routes/0", json(r#"{"before":true}"#), None)
        .await
        .expect("put");
    let r1 = store
        .put("routes/1", json(r#"{"v":1}"#), None)
        .await
        .expect("put");
    let r2 = store
        .put("routes/2", json(r#"{"v":1}"#), None)
        .await
        .expect("put");
    let r1b = store
        .put("routes/1", json(r#"{"v":2}"#), None)
        .await
        .expect("put");
    store.delete("routes/2").await.expect("delete");
    let delete_revision = current_revision(&etcd).await;
    store.next_id().await.expect("next_id");
    let mut raw = etcd.client().await;
    raw.put("/apisix/services/", "init_dir", None)
        .await
        .expect("raw put");
    raw.put("/elsewhere/routes/1", "{}", None)
        .await
        .expect("raw put");

    let mut rx = store
        .watch(before.entry.mod_revision + 1)
        .await
        .expect("watch");
    let live = store
        .put("services/1", json(r#"{"id":"1"}"#), None)
        .await
        .expect("put");
    let got = events(&mut rx, 5).await;
    assert_eq!(
        got,
        vec![
            Event::Put(r1.entry),
            Event::Put(r2.entry),
            Event::Put(r1b.entry),
            Event::Delete {
                key: "routes/2".to_owned(),
                revision: delete_revision,
            },
            Event::Put(live.entry),
        ]
    );
    assert!(got.windows(2).all(|w| w[0].revision() < w[1].revision()));
}

#[tokio::test]
async fn watch_from_a_compacted_revision_reports_compacted_and_closes() {
    let etcd = Etcd::start().await;
    let store = store(&etcd).await;
    let first = store.put("routes/1", json("{}"), None).await.expect("put");
    store.put("routes/1", json("{}"), None).await.expect("put");
    let last = store.put("routes/1", json("{}"), None).await.expect("put");
    let mut raw = etcd.client().await;
    raw.compact(
        last.entry.mod_revision,
        Some(CompactionOptions::new().with_physical()),
    )
    .await
    .expect("compact");

    let mut rx = store.watch(first.entry.mod_revision).await.expect("watch");
    match next(&mut rx).await {
        Err(StoreError::Compacted { requested, oldest }) => {
            assert_eq!(requested, first.entry.mod_revision);
            assert_eq!(oldest, last.entry.mod_revision);
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert_closes(&mut rx).await;

    // From the compaction revision on, the history is there.
    let mut rx = store.watch(last.entry.mod_revision).await.expect("watch");
    assert_eq!(events(&mut rx, 1).await, vec![Event::Put(last.entry)]);
}

#[tokio::test]
async fn watch_reports_unavailable_and_closes_when_etcd_stops() {
    let mut etcd = Etcd::start().await;
    let store = store(&etcd).await;
    let mut rx = store.watch(1).await.expect("watch");
    let put = store.put("routes/1", json("{}"), None).await.expect("put");
    assert_eq!(events(&mut rx, 1).await, vec![Event::Put(put.entry)]);

    etcd.stop();
    let stopped = Instant::now();
    let message = unavailable_message(next(&mut rx).await);
    assert!(message.contains("etcd"), "{message}");
    assert!(message.contains(&etcd.endpoint()), "{message}");
    // The connection closes: no need to wait for a probe.
    assert!(
        stopped.elapsed() < Duration::from_secs(2),
        "{:?}",
        stopped.elapsed()
    );
    assert_closes(&mut rx).await;
}

#[tokio::test]
async fn watch_notices_a_frozen_etcd_within_probe_interval_and_timeout() {
    let etcd = Etcd::start().await;
    let store = store(&etcd).await; // timeout 2 s: a probe after 2 s of silence, 2 s for the answer
    let mut rx = store.watch(1).await.expect("watch");
    let put = store.put("routes/1", json("{}"), None).await.expect("put");
    assert_eq!(events(&mut rx, 1).await, vec![Event::Put(put.entry)]);

    // Quiet but alive: the probes are answered and the watch goes on.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let put = store.put("routes/2", json("{}"), None).await.expect("put");
    assert_eq!(events(&mut rx, 1).await, vec![Event::Put(put.entry)]);

    etcd.freeze();
    let frozen = Instant::now();
    let message = unavailable_message(next(&mut rx).await);
    let waited = frozen.elapsed();
    etcd.thaw();
    assert!(message.contains("progress request"), "{message}");
    assert!(waited >= Duration::from_secs(3), "{waited:?}");
    assert!(waited < Duration::from_secs(6), "{waited:?}");
    assert_closes(&mut rx).await;
}

#[tokio::test]
async fn dropping_the_receiver_cancels_the_watch_in_etcd() {
    let etcd = Etcd::start().await;
    let store = store(&etcd).await;
    let watchers = || async {
        let got = common::get(&format!("{}/metrics", etcd.endpoint())).await;
        let text = String::from_utf8_lossy(&got.body).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix("etcd_debugging_mvcc_watcher_total "))
            .expect("watcher gauge in etcd's metrics")
            .trim()
            .parse::<f64>()
            .expect("a number")
    };
    assert_eq!(watchers().await, 0.0);
    let rx = store.watch(1).await.expect("watch");
    assert_eq!(watchers().await, 1.0);
    drop(rx);
    let deadline = Instant::now() + Duration::from_secs(5);
    while watchers().await != 0.0 {
        assert!(Instant::now() < deadline, "the watch is still in etcd");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn requests_fail_within_the_timeout_while_etcd_is_down_and_work_after_restart() {
    let mut etcd = Etcd::start().await;
    let store = store(&etcd).await;
    let put = store
        .put("routes/1", json(r#"{"id":"1"}"#), None)
        .await
        .expect("put");

    etcd.stop();
    let endpoint = etcd.endpoint();
    let bound = Duration::from_millis(3500); // the 2 s timeout and some slack
    macro_rules! fails {
        ($call:expr) => {{
            let started = Instant::now();
            let message = unavailable_message($call.await);
            assert!(
                started.elapsed() < bound,
                "{:?}: {message}",
                started.elapsed()
            );
            assert!(message.contains("etcd"), "{message}");
            assert!(message.contains(&endpoint), "{message}");
            message
        }};
    }
    let message = fails!(store.get("routes/1"));
    assert!(message.contains("/apisix/routes/1"), "{message}");
    fails!(store.list(""));
    fails!(store.put("routes/2", json("{}"), None));
    fails!(store.put("routes/2", json("{}"), Some(Duration::from_secs(5))));
    fails!(store.compare_and_swap("routes/1", put.entry.mod_revision, json("{}"), None));
    fails!(store.delete("routes/1"));
    fails!(store.next_id());
    fails!(store.watch(1));
    fails!(EtcdStore::connect(&etcd.section()));

    etcd.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        match store.get("routes/1").await {
            Ok(got) => break got,
            Err(e) => {
                assert!(Instant::now() < deadline, "no recovery after restart: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(got, Some(put.entry));
    let again = store
        .put("routes/2", json("{}"), None)
        .await
        .expect("put after restart");
    let mut rx = store.watch(again.entry.mod_revision).await.expect("watch");
    assert_eq!(events(&mut rx, 1).await, vec![Event::Put(again.entry)]);
}

#[tokio::test]
async fn connect_fails_with_unavailable_when_nothing_listens() {
    let section = EtcdSection {
        host: vec![format!("http://{}", common::refused_node().await)],
        timeout: Duration::from_secs(1),
        ..EtcdSection::default()
    };
    let started = Instant::now();
    let message = unavailable_message(EtcdStore::connect(&section).await);
    assert!(started.elapsed() < Duration::from_millis(2500));
    assert!(message.contains("etcd"), "{message}");
    assert!(message.contains(&section.host[0]), "{message}");
}

#[tokio::test]
async fn keys_live_under_the_configured_prefix() {
    let etcd = Etcd::start().await;
    let apisix = store(&etcd).await;
    let value = r#"{"id":"1","uri":"/hello"}"#;
    let put = apisix
        .put("routes/1", json(value), None)
        .await
        .expect("put");

    let mut raw = etcd.client().await;
    let got = raw.get("/apisix/routes/1", None).await.expect("raw get");
    let kv = &got.kvs()[0];
    assert_eq!(kv.value(), value.as_bytes());
    assert_eq!(kv.mod_revision(), put.entry.mod_revision);
    assert_eq!(kv.create_revision(), put.entry.create_revision);
    // Keys written outside the store show up as entries too.
    raw.put("/apisix/routes/2", r#"{"id":"2"}"#, None)
        .await
        .expect("raw put");
    let keys: Vec<String> = apisix
        .list("routes/")
        .await
        .expect("list")
        .entries
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, ["routes/1", "routes/2"]);

    let other = EtcdStore::connect(&EtcdSection {
        prefix: "/other".to_owned(),
        ..etcd.section()
    })
    .await
    .expect("connect");
    assert_eq!(other.prefix(), "/other");
    assert_eq!(other.list("").await.expect("list").entries, vec![]);
    other.put("routes/1", json("{}"), None).await.expect("put");
    let under_other = raw
        .get(
            "/other/",
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await
        .expect("raw get");
    let raw_keys: Vec<&[u8]> = under_other.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(raw_keys, [b"/other/routes/1".as_slice()]);
    assert_eq!(
        apisix.get("routes/1").await.expect("get").map(|e| e.value),
        Some(json(value))
    );
}

#[tokio::test]
async fn user_and_password_authenticate() {
    let etcd = Etcd::start().await;
    let mut raw = etcd.client().await;
    raw.user_add("root", "secret", None)
        .await
        .expect("user add");
    raw.user_grant_role("root", "root").await.expect("grant");
    raw.auth_enable().await.expect("auth enable");

    let section = EtcdSection {
        user: Some("root".to_owned()),
        password: Some("secret".to_owned()),
        ..etcd.section()
    };
    let store = EtcdStore::connect(&section)
        .await
        .expect("connect with a password");
    let put = store.put("routes/1", json("{}"), None).await.expect("put");
    assert_eq!(store.get("routes/1").await.expect("get"), Some(put.entry));

    let wrong = EtcdSection {
        password: Some("wrong".to_owned()),
        ..section.clone()
    };
    let message = unavailable_message(EtcdStore::connect(&wrong).await);
    assert!(message.contains("etcd"), "{message}");
    assert!(message.contains("authentication failed"), "{message}");

    let anonymous = etcd.section();
    let message = unavailable_message(EtcdStore::connect(&anonymous).await);
    assert!(message.contains("user name is empty"), "{message}");
}

/// A CA and certificates for the TLS tests, written to files.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().expect("key");
        let ca = params.self_signed(&key).expect("ca");
        let pki = Pki {
            dir: tempfile::tempdir().expect("tempdir"),
            ca,
            issuer: rcgen::Issuer::new(params, key),
        };
        std::fs::write(pki.path("ca.pem"), pki.ca.pem()).expect("write ca");
        pki
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `<name>.pem` and `<name>-key.pem`, a certificate for `names` signed by the CA.
    fn leaf(&self, name: &str, names: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        let (cert_path, key_path) = (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}-key.pem")),
        );
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }
}

#[tokio::test]
async fn tls_with_a_client_certificate() {
    let pki = Pki::new();
    let (server_cert, server_key) = pki.leaf("server", &["127.0.0.1", "etcd.test"]);
    let (client_cert, client_key) = pki.leaf("client", &["client"]);
    let read = |p: &std::path::Path| std::fs::read(p).expect("read pem");
    let raw_options = ConnectOptions::new().with_tls(
        TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(pki.ca.pem()))
            .identity(Identity::from_pem(read(&client_cert), read(&client_key))),
    );
    let etcd = Etcd::start_tls(
        ServerTls {
            cert: server_cert,
            key: server_key,
            client_ca: Some(pki.path("ca.pem")),
        },
        raw_options,
    )
    .await;
    assert!(etcd.endpoint().starts_with("https://"));

    let tls = EtcdTls {
        cert: Some(client_cert.clone()),
        key: Some(client_key.clone()),
        ca: Some(pki.path("ca.pem")),
        ..EtcdTls::default()
    };
    let section = EtcdSection {
        tls: Some(tls.clone()),
        ..etcd.section()
    };
    let store = EtcdStore::connect(&section)
        .await
        .expect("connect over TLS");
    let put = store.put("routes/1", json("{}"), None).await.expect("put");
    let mut rx = store.watch(put.entry.mod_revision).await.expect("watch");
    assert_eq!(
        events(&mut rx, 1).await,
        vec![Event::Put(put.entry.clone())]
    );

    // The name to verify can differ from the endpoint's host.
    let by_name = EtcdSection {
        tls: Some(EtcdTls {
            sni: Some("etcd.test".to_owned()),
            ..tls.clone()
        }),
        ..etcd.section()
    };
    let store = EtcdStore::connect(&by_name)
        .await
        .expect("connect with sni");
    assert_eq!(store.get("routes/1").await.expect("get"), Some(put.entry));

    let refused = |tls: EtcdTls| EtcdSection {
        tls: Some(tls),
        ..etcd.section()
    };
    // No client certificate: etcd refuses the handshake.
    let message = unavailable_message(
        EtcdStore::connect(&refused(EtcdTls {
            cert: None,
            key: None,
            ..tls.clone()
        }))
        .await,
    );
    assert!(message.contains("etcd"), "{message}");
    // A name the certificate does not have.
    unavailable_message(
        EtcdStore::connect(&refused(EtcdTls {
            sni: Some("other.test".to_owned()),
            ..tls.clone()
        }))
        .await,
    );
    // Not verifying is refused outright.
    let message = unavailable_message(
        EtcdStore::connect(&refused(EtcdTls {
            verify: false,
            ..tls.clone()
        }))
        .await,
    );
    assert!(message.contains("tls.verify"), "{message}");
    let message = unavailable_message(
        EtcdStore::connect(&refused(EtcdTls {
            key: None,
            ..tls.clone()
        }))
        .await,
    );
    assert!(message.contains("tls.cert and tls.key"), "{message}");
}

#[tokio::test]
async fn watch_skips_gen_id_and_placeholders_but_reports_objects() {
    let etcd = Etcd::start().await;
    let store = store(&etcd).await;
    let from = current_revision(&etcd).await + 1;
    let mut rx = store.watch(from).await.expect("watch");
    store.next_id().await.expect("next_id");
    let mut raw = etcd.client().await;
    raw.put("/apisix/routes/", "init_dir", None)
        .await
        .expect("raw put");
    raw.delete("/apisix/routes/", None)
        .await
        .expect("raw delete");
    let put = store.put("routes/1", json("{}"), None).await.expect("put");
    let got = next(&mut rx).await.expect("events");
    assert_eq!(got, vec![Event::Put(put.entry)]);
}
