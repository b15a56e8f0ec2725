//! The etcd store: the config in an etcd v3 cluster, laid out as APISIX lays it out, so that
//! Ferrogate and APISIX nodes can share one cluster.
//!
//! Keys are `<prefix>/<key>` (`/apisix/routes/1`), values the JSON text. The writes are the
//! requests APISIX's Admin API makes, each one atomic:
//!
//! - `put` is a put with `prev_kv` (the previous entry tells 200 from 201); a TTL is a lease granted
//!   just before the put, and a put without TTL detaches the key from any earlier lease;
//! - `compare_and_swap` is a transaction comparing `mod_revision` (PATCH);
//! - `delete` is a transaction deleting the key and the range `key/` (a consumer and its
//!   credentials);
//! - `next_id` writes `<prefix>/gen_id` and returns the revision of that write (POST ids).
//!
//! `list` reads the range in pages of [`PAGE`] keys, every page at the revision of the first;
//! `watch` is one etcd watch on `<prefix>/`, forwarded by a task on a bounded channel. Both leave
//! out what APISIX keeps beside the objects: `<prefix>/gen_id` and the `init_dir` placeholders
//! that `apisix init_etcd` writes under keys ending in `/`.
//!
//! Every request is bounded by `deployment.etcd.timeout`; an etcd that is down, slow or refuses
//! the credentials gives [`StoreError::Unavailable`] naming etcd, its endpoints and the request.
//!
//! A watch notices a dead connection in bounded time, also when no TCP reset ever arrives (a
//! network partition, a frozen etcd): after `min(timeout, 10 s)` without a word from etcd it asks
//! for a progress notification (`WatchProgressRequest`), and it ends with
//! [`StoreError::Unavailable`] when no answer comes within `timeout`. etcd 3.4 answers at once;
//! 3.5 and later may hold the answer while the watch catches up, which is when events arrive
//! anyway. Server-side periodic progress notifications are not used: etcd sends them every 10
//! minutes by default. The connections also send HTTP/2 keepalive pings (every 10 s, at or above
//! etcd's default minimum of 5 s), so requests do not wait on a connection that died silently.

use std::error::Error as _;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Identity,
    KeyValue, KvClient, LeaseClient, PutOptions, ResponseHeader, TlsOptions, Txn, TxnOp,
    TxnOpResponse, WatchClient, WatchOptions, WatchRequestSender, WatchResponse,
    WatchResponseStream,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Entry, Event, Listing, Revision, Store, StoreError, WatchReceiver, Written};
use crate::config::EtcdSection;

/// Keys read per request by [`Store::list`].
pub const PAGE: i64 = 500;

/// Watch batches buffered before the watch task waits for the reader.
const WATCH_BUFFER: usize = 64;

/// Largest etcd answer accepted (a watch batch or a page of a listing). tonic's default of 4 MiB
/// is too small for a page of large objects (SSL certificates, protos).
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// HTTP/2 keepalive ping interval; etcd closes connections that ping more often than every 5 s.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// A watch asks for a progress notification after this long without news (or after the request
/// timeout, if shorter).
const PROBE_INTERVAL: Duration = Duration::from_secs(10);

/// The key `next_id` writes, relative to the prefix (APISIX's `/gen_id`).
const GEN_ID: &str = "gen_id";

/// The value `apisix init_etcd` writes under `<prefix>/<dir>/`.
const INIT_DIR: &[u8] = b"init_dir";

/// The config in etcd. Clones share the connections.
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    lease: LeaseClient,
    watch: WatchClient,
    /// `/apisix`.
    prefix: String,
    /// `/apisix/`: what every key of the store starts with.
    root: String,
    timeout: Duration,
    /// The endpoints, for error messages.
    endpoints: String,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to the cluster of `section` and checks that it answers.
    ///
    /// Each connection attempt and each request is bounded by `section.timeout`. With `user` and
    /// `password` the client authenticates (and renews its token when it expires). `https://`
    /// endpoints use TLS (rustls): etcd's certificate is verified against the system roots and
    /// `tls.ca`, for the endpoint's host or `tls.sni`; `tls.cert` and `tls.key` give a client
    /// certificate. The check reads `<prefix>/gen_id`, so the credentials must allow reading the
    /// prefix.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when etcd cannot be reached in time, refuses the credentials,
    /// or the settings cannot be used: no endpoint, `http://` and `https://` endpoints mixed,
    /// `tls.verify: false` (not supported: give the CA in `tls.ca` instead), a TLS file that
    /// cannot be read, `tls.cert` without `tls.key` or the reverse.
    pub async fn connect(section: &EtcdSection) -> Result<EtcdStore, StoreError> {
        let endpoints = section.host.join(", ");
        let fail = |why: String| StoreError::Unavailable(format!("etcd {endpoints}: {why}"));
        if section.host.is_empty() {
            return Err(StoreError::Unavailable(
                "etcd: no endpoint configured (deployment.etcd.host)".to_owned(),
            ));
        }
        let mut options = ConnectOptions::new()
            .with_connect_timeout(section.timeout)
            .with_timeout(section.timeout)
            .with_keep_alive(KEEPALIVE_INTERVAL, section.timeout)
            .with_keep_alive_while_idle(true);
        match (&section.user, &section.password) {
            (Some(user), password) => {
                options = options
                    .with_user(user.clone(), password.clone().unwrap_or_default())
                    .with_auto_token_refresh(true);
            }
            (None, Some(_)) => return Err(fail("a password is set but no user".to_owned())),
            (None, None) => {}
        }
        if let Some(tls) = tls_options(section).await.map_err(&fail)? {
            options = options.with_tls(tls);
        }
        let client = match tokio::time::timeout(
            section.timeout,
            Client::connect(&section.host, Some(options)),
        )
        .await
        {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(fail(format!("connect: {}", describe(&e)))),
            Err(_) => {
                return Err(fail(format!(
                    "connect: no answer within {:?}",
                    section.timeout
                )))
            }
        };
        let prefix = section.prefix.trim_end_matches('/').to_owned();
        let store = EtcdStore {
            kv: client.kv_client().max_decoding_message_size(MAX_MESSAGE),
            lease: client.lease_client(),
            watch: client.watch_client().max_decoding_message_size(MAX_MESSAGE),
            root: format!("{prefix}/"),
            prefix,
            timeout: section.timeout,
            endpoints,
        };
        let probe = store.full_key(GEN_ID);
        let mut kv = store.kv.clone();
        store
            .request(
                &format!("read {probe}"),
                kv.get(probe.clone(), Some(GetOptions::new().with_keys_only())),
            )
            .await?;
        Ok(store)
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.root)
    }

    fn unavailable(&self, what: &str, why: &str) -> StoreError {
        StoreError::Unavailable(format!("etcd {}: {what}: {why}", self.endpoints))
    }

    /// Runs one etcd request within the timeout.
    async fn request<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(self.unavailable(what, &describe(&e))),
            Err(_) => Err(self.unavailable(what, &format!("no answer within {:?}", self.timeout))),
        }
    }

    /// The store revision in the header of an answer.
    fn revision(
        &self,
        what: &str,
        header: Option<&ResponseHeader>,
    ) -> Result<Revision, StoreError> {
        match header {
            Some(header) => Ok(header.revision()),
            None => Err(self.unavailable(what, "the answer has no header (no revision)")),
        }
    }

    /// The entry of a key read from etcd; `None` for a key outside the prefix or not UTF-8.
    fn entry(&self, kv: &KeyValue) -> Option<Entry> {
        Some(Entry {
            key: relative_key(&self.root, kv.key())?,
            value: Bytes::copy_from_slice(kv.value()),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
        })
    }

    /// A lease for `ttl`, if any.
    async fn lease_for(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
        let Some(ttl) = ttl else { return Ok(0) };
        let mut lease = self.lease.clone();
        let granted = self
            .request(
                &format!("grant a lease for {key}"),
                lease.grant(lease_seconds(ttl), None),
            )
            .await?;
        Ok(granted.id())
    }

    /// The result of a put of `key` with `value` at `revision`, which replaced `previous`.
    fn written(
        &self,
        key: &str,
        value: Bytes,
        revision: Revision,
        previous: Option<&KeyValue>,
    ) -> Written {
        let previous = previous.and_then(|kv| self.entry(kv));
        Written {
            entry: Entry {
                key: key.to_owned(),
                value,
                create_revision: previous.as_ref().map_or(revision, |p| p.create_revision),
                mod_revision: revision,
            },
            previous,
        }
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    fn prefix(&self) -> &str {
        &self.prefix
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let full = self.full_key(key);
        let mut kv = self.kv.clone();
        let answer = self
            .request(&format!("get {full}"), kv.get(full.clone(), None))
            .await?;
        Ok(answer.kvs().first().and_then(|kv| self.entry(kv)))
    }

    async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        let base = self.full_key(prefix);
        let end = prefix_end(base.as_bytes());
        let what = format!("list {base}");
        let mut start = base.into_bytes();
        let mut listing = Listing::default();
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if listing.revision > 0 {
                options = options.with_revision(listing.revision);
            }
            let mut kv = self.kv.clone();
            let answer = self
                .request(&what, kv.get(start.clone(), Some(options)))
                .await?;
            if listing.revision == 0 {
                listing.revision = self.revision(&what, answer.header())?;
            }
            for kv in answer.kvs() {
                if let Some(entry) = self.entry(kv) {
                    if !is_placeholder(&entry.key, &entry.value) {
                        listing.entries.push(entry);
                    }
                }
            }
            match answer.kvs().last() {
                Some(last) if answer.more() => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => return Ok(listing),
            }
        }
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<Written, StoreError> {
        let full = self.full_key(key);
        let lease = self.lease_for(&full, ttl).await?;
        let options = PutOptions::new().with_prev_key().with_lease(lease);
        let what = format!("put {full}");
        let mut kv = self.kv.clone();
        let answer = self
            .request(&what, kv.put(full.clone(), value.to_vec(), Some(options)))
            .await?;
        let revision = self.revision(&what, answer.header())?;
        Ok(self.written(key, value, revision, answer.prev_key()))
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Revision,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<Option<Written>, StoreError> {
        let full = self.full_key(key);
        // When the comparison fails, the lease is left to expire.
        let lease = self.lease_for(&full, ttl).await?;
        let options = PutOptions::new().with_prev_key().with_lease(lease);
        let txn = Txn::new()
            .when([Compare::mod_revision(
                full.clone(),
                CompareOp::Equal,
                expected,
            )])
            .and_then([TxnOp::put(full.clone(), value.to_vec(), Some(options))]);
        let what = format!("compare and swap {full} at revision {expected}");
        let mut kv = self.kv.clone();
        let answer = self.request(&what, kv.txn(txn)).await?;
        if !answer.succeeded() {
            return Ok(None);
        }
        let revision = self.revision(&what, answer.header())?;
        let previous = answer.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Put(put) => put.prev_key().cloned(),
            _ => None,
        });
        Ok(Some(self.written(key, value, revision, previous.as_ref())))
    }

    async fn delete(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let full = self.full_key(key);
        let txn = Txn::new().and_then([
            TxnOp::delete(full.clone(), Some(DeleteOptions::new().with_prev_key())),
            TxnOp::delete(format!("{full}/"), Some(DeleteOptions::new().with_prefix())),
        ]);
        let mut kv = self.kv.clone();
        let answer = self
            .request(&format!("delete {full} and {full}/"), kv.txn(txn))
            .await?;
        let deleted = answer
            .op_responses()
            .into_iter()
            .next()
            .and_then(|op| match op {
                TxnOpResponse::Delete(d) => d.prev_kvs().first().and_then(|kv| self.entry(kv)),
                _ => None,
            });
        Ok(deleted)
    }

    async fn next_id(&self) -> Result<Revision, StoreError> {
        let full = self.full_key(GEN_ID);
        let what = format!("put {full}");
        let mut kv = self.kv.clone();
        // APISIX writes `1` there too; only the revision of the write matters.
        let answer = self.request(&what, kv.put(full.clone(), "1", None)).await?;
        self.revision(&what, answer.header())
    }

    async fn watch(&self, from: Revision) -> Result<WatchReceiver, StoreError> {
        let what = format!("watch {} from revision {from}", self.root);
        let options = WatchOptions::new().with_prefix().with_start_revision(from);
        let mut client = self.watch.clone();
        let stream = self
            .request(&what, client.watch(self.root.clone(), Some(options)))
            .await?;
        let (requests, mut responses) = stream.split();
        // etcd answers a new watch at once (`created`); waiting for it turns an etcd that accepts
        // connections but does not answer into an error here rather than in the channel.
        let first = match self.request(&what, responses.message()).await? {
            Some(first) => first,
            None => return Err(self.unavailable(&what, "etcd closed the watch stream")),
        };
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let task = WatchTask {
            store: self.clone(),
            from,
            what,
            watch_id: None,
        };
        tokio::spawn(task.run(first, requests, responses, tx));
        Ok(rx)
    }
}

/// Forwards one etcd watch to a [`WatchReceiver`].
struct WatchTask {
    store: EtcdStore,
    from: Revision,
    /// `watch /apisix/ from revision N`, for errors.
    what: String,
    watch_id: Option<i64>,
}

type WatchSender = mpsc::Sender<Result<Vec<Event>, StoreError>>;

/// Why a watch task stops.
enum Stop {
    /// The watch cannot go on; the reader gets the error.
    Failed(StoreError),
    /// The reader dropped its receiver.
    ReaderGone,
}

impl WatchTask {
    async fn run(
        mut self,
        first: WatchResponse,
        mut requests: WatchRequestSender,
        mut responses: WatchResponseStream,
        tx: WatchSender,
    ) {
        match self
            .forward(first, &mut requests, &mut responses, &tx)
            .await
        {
            Stop::Failed(error) => {
                tracing::debug!(error = %error, "etcd watch ended");
                let _ = tx.send(Err(error)).await;
            }
            Stop::ReaderGone => {
                // Closing the stream ends the watch too; cancelling it first frees it in etcd
                // without waiting for the stream to be torn down.
                if let Some(id) = self.watch_id {
                    let _ = tokio::time::timeout(self.store.timeout, requests.cancel(id)).await;
                }
            }
        }
    }

    /// Forwards events until the watch fails or the reader goes.
    async fn forward(
        &mut self,
        first: WatchResponse,
        requests: &mut WatchRequestSender,
        responses: &mut WatchResponseStream,
        tx: &WatchSender,
    ) -> Stop {
        let timeout = self.store.timeout;
        let probe_after = timeout.min(PROBE_INTERVAL);
        if let Err(stop) = self.deliver(&first, tx).await {
            return stop;
        }
        let mut heard = Instant::now();
        let mut probe_deadline: Option<Instant> = None;
        loop {
            let wake = probe_deadline.unwrap_or(heard + probe_after);
            tokio::select! {
                () = tx.closed() => return Stop::ReaderGone,
                message = responses.message() => {
                    heard = Instant::now();
                    probe_deadline = None;
                    let delivered = match message {
                        Ok(Some(response)) => self.deliver(&response, tx).await,
                        Ok(None) => Err(self.fail("etcd closed the watch stream")),
                        Err(e) => Err(self.fail(&describe(&e))),
                    };
                    if let Err(stop) = delivered {
                        return stop;
                    }
                }
                () = tokio::time::sleep_until(wake) => {
                    if probe_deadline.is_some() {
                        return self.fail(&format!(
                            "no answer to a progress request within {timeout:?}"
                        ));
                    }
                    match tokio::time::timeout(timeout, requests.request_progress()).await {
                        Ok(Ok(())) => probe_deadline = Some(later(timeout)),
                        Ok(Err(e)) => return self.fail(&describe(&e)),
                        Err(_) => {
                            return self.fail(&format!(
                                "could not send a progress request within {timeout:?}"
                            ))
                        }
                    }
                }
            }
        }
    }

    /// Sends the events of one response to the reader.
    async fn deliver(&mut self, response: &WatchResponse, tx: &WatchSender) -> Result<(), Stop> {
        if response.created() {
            self.watch_id = Some(response.watch_id());
        }
        if response.compact_revision() > 0 {
            return Err(Stop::Failed(StoreError::Compacted {
                requested: self.from,
                oldest: response.compact_revision(),
            }));
        }
        if response.canceled() {
            let reason = response.cancel_reason();
            return Err(if reason.is_empty() {
                self.fail("etcd cancelled the watch")
            } else {
                self.fail(&format!("etcd cancelled the watch: {reason}"))
            });
        }
        let events: Vec<Event> = response
            .events()
            .iter()
            .filter_map(|event| event.kv())
            .filter_map(|kv| self.event(kv))
            .collect();
        if events.is_empty() {
            return Ok(());
        }
        tx.send(Ok(events)).await.map_err(|_| Stop::ReaderGone)
    }

    /// The event for the key-value of an etcd event; `None` for keys the store leaves out.
    fn event(&self, kv: &KeyValue) -> Option<Event> {
        let entry = self.store.entry(kv)?;
        if entry.key == GEN_ID {
            return None;
        }
        // etcd sends a deletion as the key with version 0 and the revision of the deletion
        // (`mvccpb.Event.type` is not read: the client library panics on a type it does not know).
        if kv.version() == 0 {
            if entry.key.is_empty() || entry.key.ends_with('/') {
                return None;
            }
            return Some(Event::Delete {
                key: entry.key,
                revision: entry.mod_revision,
            });
        }
        if is_placeholder(&entry.key, &entry.value) {
            return None;
        }
        Some(Event::Put(entry))
    }

    fn fail(&self, why: &str) -> Stop {
        Stop::Failed(self.store.unavailable(&self.what, why))
    }
}

/// TLS settings for `https://` endpoints; `None` for `http://` ones.
async fn tls_options(section: &EtcdSection) -> Result<Option<TlsOptions>, String> {
    let https = section
        .host
        .iter()
        .filter(|h| h.starts_with("https://"))
        .count();
    if https == 0 {
        return Ok(None);
    }
    if https != section.host.len() {
        return Err("http:// and https:// endpoints cannot be mixed".to_owned());
    }
    let tls = section.tls.clone().unwrap_or_default();
    if !tls.verify {
        return Err(
            "tls.verify: false is not supported; give the CA of etcd's certificate in tls.ca"
                .to_owned(),
        );
    }
    let read = |path: std::path::PathBuf| async move {
        tokio::fs::read(&path)
            .await
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let mut options = TlsOptions::new().with_native_roots();
    if let Some(ca) = tls.ca {
        options = options.ca_certificate(Certificate::from_pem(read(ca).await?));
    }
    match (tls.cert, tls.key) {
        (Some(cert), Some(key)) => {
            options = options.identity(Identity::from_pem(read(cert).await?, read(key).await?));
        }
        (None, None) => {}
        _ => return Err("tls.cert and tls.key must be given together".to_owned()),
    }
    if let Some(sni) = tls.sni {
        options = options.domain_name(sni);
    }
    Ok(Some(options))
}

/// `key` without `root`; `None` when it is outside `root` or not UTF-8.
fn relative_key(root: &str, key: &[u8]) -> Option<String> {
    let rest = key.strip_prefix(root.as_bytes())?;
    String::from_utf8(rest.to_vec()).ok()
}

/// What APISIX keeps beside the objects: the id generator and the `init_dir` placeholders.
fn is_placeholder(key: &str, value: &[u8]) -> bool {
    key == GEN_ID
        || ((key.is_empty() || key.ends_with('/'))
            && (value == INIT_DIR
                || value
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    == Some(INIT_DIR)))
}

/// The end of the range of keys starting with `prefix` (etcd's rule: the prefix with its last
/// byte below 0xff incremented, what follows it dropped; `\0` for "to the end").
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// `wait` from now; about 30 years from now if that does not fit (the timeout comes from the
/// config and may be huge), as tokio does for its timeouts.
fn later(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

/// A lease TTL in whole seconds, rounded up, at least 1.
fn lease_seconds(ttl: Duration) -> i64 {
    let seconds = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    i64::try_from(seconds).unwrap_or(i64::MAX).max(1)
}

/// An etcd client error as one line, with its causes (tonic keeps the interesting part, such as
/// "Connection refused", in the source chain).
fn describe(e: &etcd_client::Error) -> String {
    let (mut text, mut source): (String, Option<&(dyn std::error::Error + 'static)>) = match e {
        etcd_client::Error::GRpcStatus(status) => (
            format!("{} (gRPC status {:?})", status.message(), status.code()),
            status.source(),
        ),
        etcd_client::Error::TransportError(t) => (t.to_string(), t.source()),
        other => (other.to_string(), None),
    };
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end(b"/apisix/"), b"/apisix0".to_vec());
        assert_eq!(prefix_end(b"/a\xff"), b"/b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn keys_are_relative_to_the_root() {
        assert_eq!(
            relative_key("/apisix/", b"/apisix/routes/1").as_deref(),
            Some("routes/1")
        );
        assert_eq!(relative_key("/apisix/", b"/other/routes/1"), None);
        assert_eq!(relative_key("/apisix/", b"/apisix/\xff"), None);
    }

    #[test]
    fn placeholders_are_gen_id_and_init_dir_under_directory_keys() {
        assert!(is_placeholder("gen_id", b"1"));
        assert!(is_placeholder("routes/", b"init_dir"));
        assert!(is_placeholder("routes/", b"\"init_dir\""));
        assert!(is_placeholder("", b"init_dir"));
        assert!(!is_placeholder("routes/1", b"init_dir"));
        assert!(!is_placeholder("routes/", b"{}"));
    }

    #[test]
    fn lease_seconds_round_up() {
        assert_eq!(lease_seconds(Duration::from_millis(1)), 1);
        assert_eq!(lease_seconds(Duration::ZERO), 1);
        assert_eq!(lease_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(lease_seconds(Duration::from_secs(60)), 60);
        assert_eq!(lease_seconds(Duration::MAX), i64::MAX);
    }
}
