//! HTTP route matching with APISIX's lua-resty-radixtree semantics.
//!
//! # Layout
//! - [`model::expr`]: the `vars` expression language (lua-resty-expr).
//! - `path`: a route `uri` parsed into an index key plus the rest to check.
//! - `host`: route host patterns (exact, leading-`*` wildcard, `*`, with or without port).
//! - `radix`: the prefix index (a compressed radix tree).
//!
//! # Design
//! [`Router::build`] turns the route list into indexes once; [`Router::find`] only does hash
//! lookups, a radix-tree prefix walk and per-candidate checks, without allocating unless the
//! winning route captures parameters.
//!
//! A URI index has two parts. Patterns without `*` (and without `:name` when parameters are
//! on) are exact and live in a hash map keyed by the whole path. Every other pattern is keyed
//! by its literal text before the first `*` / `:name` in a compressed radix tree (`radix`,
//! hand-written: see its docs for why) whose lookup yields every stored key that is a prefix
//! of the path, longest first, without allocating; a trailing `*`
//! needs no further check (`/foo*` matches `/foo`, `/foobar`, `/foo/x`; `/foo/*` matches
//! `/foo/` and `/foo/a/b` but not `/foo`), anything else (`/a/*/c`, `/user/:id`) is checked
//! against the rest of the path, which it must match entirely.
//!
//! Wildcards and parameters: `*` matches any text, `/` included, possibly empty. With
//! [`RouterKind::UriWithParameter`], `:name` matches one non-empty segment (`[^/]+`) and
//! `*name` the rest of the path; a bare `*` is captured under the name `ext`. A name is a run
//! of `[A-Za-z0-9_]`; a `:` not followed by one is literal. With the other kinds `:` is always
//! literal and nothing is captured.
//!
//! # Order: which route wins
//! Candidates are tried in this order, and the first one that passes every check wins:
//! 1. routes whose pattern is exactly the path;
//! 2. prefix routes, from the longest matching key to the shortest;
//! 3. within one key: higher `priority` first, then the longer original `uri` pattern, then
//!    the smaller route `id` (byte order) as the stable tie-break.
//!
//! The checks are: method, remote address, host (per-route filter for [`RouterKind::Uri`] and
//! [`RouterKind::UriWithParameter`], and for host patterns carrying a port, which compare with
//! the raw `Host` header), the rest of the path pattern, then `vars` (which can read the
//! candidate's own captures as `uri_param_<name>`).
//!
//! With [`RouterKind::HostUri`] routes that have hosts are indexed by host, each host owning a
//! URI index as above; routes without hosts form one host-less URI index. Lookup tries the
//! exact host, then wildcard hosts from the longest suffix to the shortest (`*.foo.com`
//! matches `a.foo.com` and `a.b.foo.com`, not `foo.com`), then `*`, and only when none of them
//! yields a route, the host-less index. So a route with hosts beats every route without hosts,
//! whatever their priorities. Host lookup is one hash lookup per candidate suffix.

mod host;
mod path;
mod radix;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use http::Method;
use ipnet::IpNet;

pub use self::host::split_port;
use self::host::{HostKind, HostPattern};
use self::path::PathPattern;
use self::radix::RadixTree;
use crate::config::RouterKind;
use model::expr::{Expr, Vars};

/// One route as the router needs it. Routes with `status: 0` are left out by the caller.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// Opaque, returned on match (an index into the caller's route table).
    pub value: u32,
    /// Route id, for the stable tie-break.
    pub id: String,
    /// URI patterns (`uri` and `uris`).
    pub uris: Vec<String>,
    /// Effective hosts (the route's own or inherited from its service); may hold leading-`*`
    /// wildcards, `*` alone, or `host:port`. Lowercased by [`Router::build`].
    pub hosts: Vec<String>,
    /// Allowed methods; empty means any.
    pub methods: Vec<Method>,
    /// Allowed client addresses and networks; empty means any.
    pub remote_addrs: Vec<IpNet>,
    /// The compiled `vars` rule, if any.
    pub vars: Option<Expr>,
    /// Higher wins among candidates with the same path key.
    pub priority: i64,
}

/// A route given to the build: owned (its parts are moved into the router) or borrowed with
/// its value (they are cloned).
trait Input {
    fn value(&self) -> u32;
    fn spec(&self) -> &RouteSpec;
    fn into_parts(self) -> (Box<str>, Vec<IpNet>, Option<Expr>);
}

impl Input for RouteSpec {
    fn value(&self) -> u32 {
        self.value
    }

    fn spec(&self) -> &RouteSpec {
        self
    }

    fn into_parts(self) -> (Box<str>, Vec<IpNet>, Option<Expr>) {
        (self.id.into_boxed_str(), self.remote_addrs, self.vars)
    }
}

impl Input for (u32, &RouteSpec) {
    fn value(&self) -> u32 {
        self.0
    }

    fn spec(&self) -> &RouteSpec {
        self.1
    }

    fn into_parts(self) -> (Box<str>, Vec<IpNet>, Option<Expr>) {
        (
            self.1.id.as_str().into(),
            self.1.remote_addrs.clone(),
            self.1.vars.clone(),
        )
    }
}

/// What the router needs to know about a request.
pub struct RequestInfo<'a> {
    /// Already normalised and percent-decoded by the caller.
    pub path: &'a str,
    /// `Host` without port, lowercased.
    pub host: &'a str,
    /// `Host` header as sent (lowercased), may include `:port`.
    pub raw_host: &'a str,
    /// Request method.
    pub method: &'a Method,
    /// Client address (after real-ip processing).
    pub remote_addr: IpAddr,
    /// Request variables for `vars` rules.
    pub vars: &'a dyn Vars,
}

/// The winning route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match<'r, 'p> {
    /// `RouteSpec::value` of the route.
    pub value: u32,
    /// Captured `(name, value)` pairs in pattern order; empty unless
    /// [`RouterKind::UriWithParameter`].
    pub params: Vec<(&'r str, &'p str)>,
    /// The route's `uri` pattern that matched, as configured (APISIX's
    /// `curr_req_matched._path`).
    pub uri: &'r str,
    /// The route's host pattern that matched, lowercased (APISIX's `curr_req_matched._host`);
    /// `None` when the route has no hosts.
    pub host: Option<&'r str>,
}

/// The compiled route index. Build once per configuration version; share immutably.
pub struct Router {
    kind: RouterKind,
    routes: Vec<RouteData>,
    /// Routes with hosts, for [`RouterKind::HostUri`]; empty otherwise.
    hosts: HostIndex,
    /// Host-less routes for [`RouterKind::HostUri`]; all routes otherwise.
    uris: UriIndex,
    /// Some route's `vars` reads `post_arg_*` (form fields of the request body).
    reads_post_args: bool,
    /// Some route's `vars` reads `post_arg.*` (paths into the request body).
    reads_body_paths: bool,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("kind", &self.kind)
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

/// What is checked per route, whichever index entry led to it.
struct RouteData {
    value: u32,
    id: Box<str>,
    priority: i64,
    methods: MethodSet,
    remote_addrs: Vec<IpNet>,
    /// Per-route host filter ([`RouterKind::Uri`] kinds only; empty means any).
    hosts: Vec<HostPattern>,
    vars: Option<Expr>,
}

/// One (route, uri[, host]) combination stored under a path key.
struct Entry {
    route: u32,
    /// The route's common-case checks, copied here so a lookup need not read its [`RouteData`].
    quick: Quick,
    pattern: PathPattern,
    uri_len: usize,
    /// Set when the entry was indexed under a host written with a port.
    port_host: Option<HostPattern>,
    /// The route's `uri` pattern, as configured (reported by [`Match::uri`]).
    uri: Box<str>,
    /// The host pattern the entry was indexed under ([`RouterKind::HostUri`] routes with hosts).
    host: Option<Box<str>>,
}

/// What [`Router::check`] needs from a route that has nothing to check but standard methods
/// and its path: such a candidate is decided from its [`Entry`] alone, saving a memory access
/// to the route table per candidate.
#[derive(Clone, Copy)]
struct Quick {
    /// [`RouteSpec::value`].
    value: u32,
    /// The route's standard-method bits ([`MethodSet::bits`]); 0 means any method.
    method_bits: u16,
    /// The route has no extension methods, remote addresses, per-route hosts or `vars`, so
    /// `value` and `method_bits` are all there is to check besides the entry itself.
    plain: bool,
}

/// A fast, non-cryptographic hasher (FxHash) for keys that come from configuration; lookups
/// with request data never insert, so hash flooding cannot degrade the tables. Also used by the
/// snapshot builder for its per-build tables (keyed by config ids).
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn write_u8(&mut self, b: u8) {
        self.write(&[b]);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FastMap<V> = HashMap<Box<str>, V, BuildHasherDefault<FxHasher>>;

#[derive(Default)]
struct UriIndex {
    exact: FastMap<Vec<Entry>>,
    /// Prefix keys, each mapped to the span of its candidates in `prefix_entries`. While
    /// building (before [`UriIndex::finish`]), `start` is instead an index into `prefix_lists`.
    prefix: RadixTree<Span>,
    /// Candidates per prefix key while building; emptied into `prefix_entries` by `finish`.
    prefix_lists: Vec<Vec<Entry>>,
    /// The candidates of every prefix key, one sorted run per key, so that a lookup goes from
    /// the tree straight to them.
    prefix_entries: Vec<Entry>,
}

/// A range of `UriIndex::prefix_entries`.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: u32,
    end: u32,
}

#[derive(Default)]
struct HostIndex {
    exact: FastMap<UriIndex>,
    /// Keyed by the text after the leading `*`.
    suffix: FastMap<UriIndex>,
    /// Lengths of `suffix` keys that do not start with `.`, longest first; those cannot be
    /// found by walking label boundaries.
    odd_suffix_lens: Vec<usize>,
    any: Option<UriIndex>,
}

/// Request methods as a bit set, with a list for extension methods.
#[derive(Default)]
struct MethodSet {
    bits: u16,
    others: Vec<Method>,
}

const STANDARD_METHODS: [Method; 9] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::HEAD,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];

fn method_bit(m: &Method) -> Option<u16> {
    STANDARD_METHODS
        .iter()
        .position(|s| s == m)
        .map(|i| 1u16 << i)
}

impl MethodSet {
    fn new(methods: &[Method]) -> MethodSet {
        let mut set = MethodSet::default();
        for m in methods {
            match method_bit(m) {
                Some(bit) => set.bits |= bit,
                None => set.others.push(m.clone()),
            }
        }
        set
    }

    fn allows(&self, m: &Method) -> bool {
        if self.bits == 0 && self.others.is_empty() {
            return true;
        }
        match method_bit(m) {
            Some(bit) => self.bits & bit != 0,
            None => self.others.contains(m),
        }
    }
}

impl UriIndex {
    fn insert(&mut self, entry: Entry) {
        if entry.pattern.exact {
            match self.exact.get_mut(&entry.pattern.key) {
                Some(list) => list.push(entry),
                None => {
                    self.exact.insert(entry.pattern.key.clone(), vec![entry]);
                }
            }
        } else {
            let key = entry.pattern.key.as_bytes();
            match self.prefix.get(key) {
                Some(span) => self.prefix_lists[span.start as usize].push(entry),
                None => {
                    // More than 4 billion keys cannot be configured (routes are numbered
                    // by `u32` too); ignore the excess.
                    let Ok(list) = u32::try_from(self.prefix_lists.len()) else {
                        return;
                    };
                    let span = Span {
                        start: list,
                        end: list,
                    };
                    self.prefix.insert(key, span);
                    self.prefix_lists.push(vec![entry]);
                }
            }
        }
    }

    /// Orders every key's candidates and lays out the prefix candidates for lookup. Called
    /// once, after the last insert.
    fn finish(&mut self, routes: &[RouteData]) {
        let order = |a: &Entry, b: &Entry| {
            let (ra, rb) = (&routes[a.route as usize], &routes[b.route as usize]);
            rb.priority
                .cmp(&ra.priority)
                .then(b.uri_len.cmp(&a.uri_len))
                .then(ra.id.as_bytes().cmp(rb.id.as_bytes()))
        };
        for list in self.exact.values_mut() {
            list.sort_by(order);
        }
        // Flatten the per-key lists into one sorted run per key and point the keys at them.
        let mut spans = Vec::with_capacity(self.prefix_lists.len());
        for mut list in std::mem::take(&mut self.prefix_lists) {
            list.sort_by(order);
            let start = self.prefix_entries.len();
            self.prefix_entries.append(&mut list);
            let end = self.prefix_entries.len();
            // Entries number at most (routes × uris × hosts); past `u32` the excess is dropped
            // (an empty span), like routes past `u32::MAX` in `Router::build`.
            let span = match (u32::try_from(start), u32::try_from(end)) {
                (Ok(start), Ok(end)) => Span { start, end },
                _ => Span::default(),
            };
            spans.push(span);
        }
        self.prefix.for_each_value_mut(|span| {
            *span = spans.get(span.start as usize).copied().unwrap_or_default()
        });
        self.prefix_entries.shrink_to_fit();
        self.prefix.shrink_to_fit();
    }

    fn find<'r, 'p>(&'r self, router: &'r Router, req: &RequestInfo<'p>) -> Option<Match<'r, 'p>> {
        let mut params = Vec::new();
        if let Some(list) = self.exact.get(req.path) {
            for entry in list {
                if let Some(value) = router.check(entry, req, &mut params) {
                    return Some(router.found(entry, req, value, params));
                }
            }
        }
        for span in self.prefix.prefixes(req.path.as_bytes()) {
            // Spans were cut from `prefix_entries` by `finish`.
            let list = self
                .prefix_entries
                .get(span.start as usize..span.end as usize)
                .unwrap_or_default();
            for entry in list {
                if let Some(value) = router.check(entry, req, &mut params) {
                    return Some(router.found(entry, req, value, params));
                }
            }
        }
        None
    }
}

/// The caller's variables plus the candidate's captured parameters as `uri_param_<name>`.
struct ParamVars<'a, 'r, 'p> {
    inner: &'a dyn Vars,
    params: &'a [(&'r str, &'p str)],
}

impl Vars for ParamVars<'_, '_, '_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        if let Some(param) = name.strip_prefix("uri_param_") {
            if let Some((_, value)) = self.params.iter().find(|(k, _)| *k == param) {
                return Some(Cow::Borrowed(value));
            }
        }
        self.inner.get(name)
    }

    fn post_body(&self) -> Option<&serde_json::Value> {
        self.inner.post_body()
    }
}

impl HostIndex {
    fn sub_index(&mut self, kind: HostKind) -> &mut UriIndex {
        match kind {
            HostKind::Any => self.any.get_or_insert_with(UriIndex::default),
            HostKind::Suffix(s) if s.is_empty() => self.any.get_or_insert_with(UriIndex::default),
            HostKind::Suffix(s) => self.suffix.entry(s).or_default(),
            HostKind::Exact(h) => self.exact.entry(h).or_default(),
        }
    }

    fn finish(&mut self, routes: &[RouteData]) {
        let mut lens: Vec<usize> = self
            .suffix
            .keys()
            .filter(|k| !k.starts_with('.'))
            .map(|k| k.len())
            .collect();
        lens.sort_unstable_by(|a, b| b.cmp(a));
        lens.dedup();
        self.odd_suffix_lens = lens;
        for index in self.exact.values_mut().chain(self.suffix.values_mut()) {
            index.finish(routes);
        }
        if let Some(index) = &mut self.any {
            index.finish(routes);
        }
    }

    fn find<'r, 'p>(&'r self, router: &'r Router, req: &RequestInfo<'p>) -> Option<Match<'r, 'p>> {
        let host = req.host;
        if let Some(found) = self.exact.get(host).and_then(|i| i.find(router, req)) {
            return Some(found);
        }
        if !self.suffix.is_empty() {
            // Walk candidate suffix lengths, longest first: every label boundary (a `.` that
            // is not the first byte) merged with the lengths of non-`.` wildcard suffixes.
            let len = host.len();
            let bytes = host.as_bytes();
            let mut dot = 1;
            let mut odd = self
                .odd_suffix_lens
                .iter()
                .copied()
                .filter(|&l| l < len)
                .peekable();
            loop {
                while dot < len && bytes[dot] != b'.' {
                    dot += 1;
                }
                let dot_len = (dot < len).then(|| len - dot);
                let suffix_len = match (dot_len, odd.peek().copied()) {
                    (None, None) => break,
                    (Some(d), Some(o)) if o > d => {
                        odd.next();
                        o
                    }
                    (Some(d), o) => {
                        if o == Some(d) {
                            odd.next();
                        }
                        dot += 1;
                        d
                    }
                    (None, Some(o)) => {
                        odd.next();
                        o
                    }
                };
                let start = len - suffix_len;
                if !host.is_char_boundary(start) {
                    continue;
                }
                if let Some(found) = self
                    .suffix
                    .get(&host[start..])
                    .and_then(|i| i.find(router, req))
                {
                    return Some(found);
                }
            }
        }
        self.any.as_ref().and_then(|i| i.find(router, req))
    }
}

impl Router {
    /// Builds the index. Host patterns are lowercased here; URI patterns are parsed according
    /// to `kind` (see the module docs).
    pub fn build(kind: RouterKind, routes: Vec<RouteSpec>) -> Router {
        Router::build_from(kind, routes)
    }

    /// Like [`Router::build`], from borrowed routes, each paired with the value a match on it
    /// returns (used instead of its `RouteSpec::value`). Lets a caller that keeps its specs
    /// across builds index them without cloning them first.
    pub fn build_with_values<'a>(
        kind: RouterKind,
        routes: impl IntoIterator<Item = (u32, &'a RouteSpec)>,
    ) -> Router {
        Router::build_from(kind, routes)
    }

    fn build_from<I: Input>(kind: RouterKind, routes: impl IntoIterator<Item = I>) -> Router {
        let params = kind == RouterKind::UriWithParameter;
        let routes = routes.into_iter();
        let mut router = Router {
            kind,
            routes: Vec::with_capacity(routes.size_hint().0),
            hosts: HostIndex::default(),
            uris: UriIndex::default(),
            reads_post_args: false,
            reads_body_paths: false,
        };
        for input in routes {
            let (value, spec) = (input.value(), input.spec());
            let Ok(route) = u32::try_from(router.routes.len()) else {
                // More than 4 billion routes cannot be configured; ignore the excess.
                break;
            };
            let mut hosts: Vec<HostPattern> =
                spec.hosts.iter().map(|h| HostPattern::parse(h)).collect();
            hosts.sort();
            hosts.dedup();
            let methods = MethodSet::new(&spec.methods);
            let route_hosts = if kind == RouterKind::HostUri {
                Vec::new()
            } else {
                hosts.clone()
            };
            let quick = Quick {
                value,
                method_bits: methods.bits,
                plain: methods.others.is_empty()
                    && spec.remote_addrs.is_empty()
                    && route_hosts.is_empty()
                    && spec.vars.is_none(),
            };
            for uri in &spec.uris {
                let pattern = PathPattern::parse(uri, params);
                if kind == RouterKind::HostUri && !hosts.is_empty() {
                    for host in &hosts {
                        let entry = Entry {
                            route,
                            quick,
                            pattern: pattern.clone(),
                            uri_len: uri.len(),
                            port_host: host.with_port.then(|| host.clone()),
                            uri: uri.as_str().into(),
                            host: Some(host.text.clone()),
                        };
                        router.hosts.sub_index(host.without_port()).insert(entry);
                    }
                } else {
                    router.uris.insert(Entry {
                        route,
                        quick,
                        pattern,
                        uri_len: uri.len(),
                        port_host: None,
                        uri: uri.as_str().into(),
                        host: None,
                    });
                }
            }
            let priority = spec.priority;
            let (id, remote_addrs, vars) = input.into_parts();
            router.reads_post_args |= vars.as_ref().is_some_and(|v| v.reads("post_arg_"));
            router.reads_body_paths |= vars.as_ref().is_some_and(|v| v.reads("post_arg."));
            router.routes.push(RouteData {
                value,
                id,
                priority,
                methods,
                remote_addrs,
                hosts: route_hosts,
                vars,
            });
        }
        router.hosts.finish(&router.routes);
        router.uris.finish(&router.routes);
        router
    }

    /// The best route for `req` (see the module docs for the order), or `None`.
    pub fn find<'r, 'p>(&'r self, req: &RequestInfo<'p>) -> Option<Match<'r, 'p>> {
        if self.kind == RouterKind::HostUri {
            if let Some(found) = self.hosts.find(self, req) {
                return Some(found);
            }
        }
        self.uris.find(self, req)
    }

    /// The kind this router was built with.
    pub fn kind(&self) -> RouterKind {
        self.kind
    }

    /// Whether some route's `vars` reads `post_arg_<name>`, so that a form body must be read
    /// before routing.
    pub fn reads_post_args(&self) -> bool {
        self.reads_post_args
    }

    /// Whether some route's `vars` reads `post_arg.<path>`, so that a JSON, form or multipart
    /// body must be read before routing.
    pub fn reads_body_paths(&self) -> bool {
        self.reads_body_paths
    }

    /// Number of routes indexed.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether no route is indexed.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The match on `entry` (which passed [`Router::check`]), with the patterns that matched:
    /// the entry's host, else (per-route host filters) the first of the route's hosts that
    /// matches.
    fn found<'r, 'p>(
        &'r self,
        entry: &'r Entry,
        req: &RequestInfo<'p>,
        value: u32,
        params: Vec<(&'r str, &'p str)>,
    ) -> Match<'r, 'p> {
        let host = entry.host.as_deref().or_else(|| {
            self.routes
                .get(entry.route as usize)?
                .hosts
                .iter()
                .find(|h| h.matches(req.host, req.raw_host))
                .map(|h| &*h.text)
        });
        Match {
            value,
            params,
            uri: &entry.uri,
            host,
        }
    }

    /// Runs every check but the path key on one candidate; on success returns its value with
    /// its captures in `params`, on failure leaves `params` empty.
    fn check<'r, 'p>(
        &'r self,
        entry: &'r Entry,
        req: &RequestInfo<'p>,
        params: &mut Vec<(&'r str, &'p str)>,
    ) -> Option<u32> {
        if entry.quick.plain {
            // The same checks as below, in the same order, minus those the route lacks.
            let bits = entry.quick.method_bits;
            if bits != 0 && method_bit(req.method).is_none_or(|bit| bits & bit == 0) {
                return None;
            }
            if let Some(host) = &entry.port_host {
                if !host.matches(req.host, req.raw_host) {
                    return None;
                }
            }
            if !entry.pattern.matches_tail(req.path, params) {
                return None;
            }
            return Some(entry.quick.value);
        }
        // `entry.route` was assigned as an index into `self.routes` by `build`.
        let route = self.routes.get(entry.route as usize)?;
        if !route.methods.allows(req.method) {
            return None;
        }
        if !route.remote_addrs.is_empty() {
            let addr = req.remote_addr.to_canonical();
            if !route.remote_addrs.iter().any(|net| net.contains(&addr)) {
                return None;
            }
        }
        if let Some(host) = &entry.port_host {
            if !host.matches(req.host, req.raw_host) {
                return None;
            }
        }
        if !route.hosts.is_empty()
            && !route
                .hosts
                .iter()
                .any(|h| h.matches(req.host, req.raw_host))
        {
            return None;
        }
        if !entry.pattern.matches_tail(req.path, params) {
            return None;
        }
        if let Some(vars) = &route.vars {
            let ok = if params.is_empty() {
                vars.eval(req.vars)
            } else {
                vars.eval(&ParamVars {
                    inner: req.vars,
                    params,
                })
            };
            if !ok {
                params.clear();
                return None;
            }
        }
        Some(route.value)
    }
}
