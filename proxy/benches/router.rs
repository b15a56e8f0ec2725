//! Router benchmarks: lookups in a 100k-route index, 1k routes on one path that differ only by
//! host, and building the 100k index.
//!
//! Run with `cargo bench -p ferrogate --bench router -- --warm-up-time 1 --measurement-time 3`.

use std::borrow::Cow;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ferrogate::config::RouterKind;
use ferrogate::model::expr::{Expr, Vars};
use ferrogate::router::{RequestInfo, RouteSpec, Router};
use http::Method;

const ROUTES: u32 = 100_000;
const HOSTS: u32 = 1_000;

struct NoVars;

impl Vars for NoVars {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        (name == "arg_v").then_some(Cow::Borrowed("1"))
    }
}

fn spec(i: u32, uri: String, hosts: Vec<String>) -> RouteSpec {
    RouteSpec {
        value: i,
        id: format!("{i:06}"),
        uris: vec![uri],
        hosts,
        methods: Vec::new(),
        remote_addrs: Vec::new(),
        vars: None,
        priority: 0,
    }
}

/// 100k routes: exact, trailing-`*` prefix, middle-`*` (or `:param` for the parameter kind),
/// host-bound exact and prefix, some with methods and vars.
fn routes(params: bool) -> Vec<RouteSpec> {
    let vars = Expr::compile(&serde_json::json!([["arg_v", "==", "1"]]));
    (0..ROUTES)
        .map(|i| {
            let mut r = match i % 10 {
                0..=3 => spec(i, format!("/api/v1/svc{i}/items"), Vec::new()),
                4..=5 => spec(i, format!("/static/s{i}/*"), Vec::new()),
                6 if params => spec(i, format!("/users{i}/:id/posts/:post"), Vec::new()),
                6 => spec(i, format!("/m/{i}/*/end"), Vec::new()),
                7 => spec(
                    i,
                    format!("/h/{i}"),
                    vec![format!("h{}.example.com", i % HOSTS)],
                ),
                8 => spec(
                    i,
                    format!("/hp/{i}/*"),
                    vec![format!("*.w{}.example.com", i % HOSTS)],
                ),
                _ => spec(i, format!("/api/v2/svc{i}"), Vec::new()),
            };
            if i % 10 == 9 {
                r.methods = vec![Method::GET, Method::POST];
                r.vars = vars.as_ref().ok().cloned();
            }
            r
        })
        .collect()
}

/// Request paths and hosts that hit each kind of route, plus misses.
fn requests(params: bool) -> Vec<(String, String)> {
    (0..1000u32)
        .map(|n| {
            let i = (n * 7919) % ROUTES;
            let host = format!("h{}.example.com", i % HOSTS);
            match n % 8 {
                0 | 1 => (format!("/api/v1/svc{}/items", i - i % 10 + n % 4), host),
                2 => (format!("/static/s{}/css/site.css", i - i % 10 + 4), host),
                3 if params => (format!("/users{}/42/posts/7", i - i % 10 + 6), host),
                3 => (format!("/m/{}/x/y/end", i - i % 10 + 6), host),
                4 => {
                    let j = i - i % 10 + 7;
                    (format!("/h/{j}"), format!("h{}.example.com", j % HOSTS))
                }
                5 => {
                    let j = i - i % 10 + 8;
                    (
                        format!("/hp/{j}/a/b"),
                        format!("x.w{}.example.com", j % HOSTS),
                    )
                }
                6 => (format!("/api/v2/svc{}", i - i % 10 + 9), host),
                _ => (format!("/nothing/{i}"), host),
            }
        })
        .collect()
}

/// A GET for `path` on `host` from a fixed client.
fn request<'a>(path: &'a str, host: &'a str) -> RequestInfo<'a> {
    RequestInfo {
        path,
        host,
        raw_host: host,
        method: &Method::GET,
        remote_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        vars: &NoVars,
    }
}

/// Measures lookups cycling through `reqs` (path, host).
fn measure(c: &mut Criterion, name: &str, router: &Router, reqs: &[(String, String)]) {
    let mut n = 0;
    c.bench_function(name, |b| {
        b.iter(|| {
            let (path, host) = &reqs[n % reqs.len()];
            n += 1;
            black_box(
                router
                    .find(black_box(&request(path, host)))
                    .map(|m| m.value),
            )
        })
    });
}

fn lookup(c: &mut Criterion, name: &str, kind: RouterKind, params: bool) {
    let router = Router::build(kind, routes(params));
    let reqs = requests(params);
    let hits = reqs
        .iter()
        .filter(|(path, host)| router.find(&request(path, host)).is_some())
        .count();
    // Every request shape but the deliberate miss must find its route.
    assert_eq!(
        hits,
        reqs.len() - reqs.len() / 8,
        "{name}: unexpected misses"
    );
    measure(c, name, &router, &reqs);
}

fn lookups(c: &mut Criterion) {
    lookup(c, "lookup_100k_host_uri", RouterKind::HostUri, false);
    lookup(c, "lookup_100k_uri", RouterKind::Uri, false);
    lookup(
        c,
        "lookup_100k_uri_with_parameter",
        RouterKind::UriWithParameter,
        true,
    );
}

fn same_path_hosts(c: &mut Criterion) {
    let routes = (0..1000u32)
        .map(|i| spec(i, "/same".to_owned(), vec![format!("h{i}.example.com")]))
        .collect();
    let router = Router::build(RouterKind::HostUri, routes);
    let reqs: Vec<(String, String)> = (0..1000u32)
        .map(|i| {
            (
                "/same".to_owned(),
                format!("h{}.example.com", (i * 7) % 1000),
            )
        })
        .collect();
    assert!(reqs
        .iter()
        .all(|(p, h)| router.find(&request(p, h)).is_some()));
    measure(c, "lookup_1k_hosts_same_path", &router, &reqs);
}

fn build(c: &mut Criterion) {
    let specs = routes(false);
    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    group.bench_function("build_100k_host_uri", |b| {
        b.iter_batched(
            || specs.clone(),
            |s| Router::build(RouterKind::HostUri, s),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, lookups, same_path_hosts, build);
criterion_main!(benches);
