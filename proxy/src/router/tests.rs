use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use http::Method;
use serde_json::json;

use super::{RequestInfo, RouteSpec, Router, RouterKind};
use model::expr::{Expr, Vars};

fn route(id: &str, uris: &[&str]) -> RouteSpec {
    RouteSpec {
        value: 0,
        id: id.to_owned(),
        uris: uris.iter().map(|u| (*u).to_owned()).collect(),
        hosts: Vec::new(),
        methods: Vec::new(),
        remote_addrs: Vec::new(),
        vars: None,
        priority: 0,
    }
}

trait Build {
    fn hosts(self, hosts: &[&str]) -> Self;
    fn methods(self, methods: &[Method]) -> Self;
    fn prio(self, priority: i64) -> Self;
    fn addrs(self, addrs: &[&str]) -> Self;
    fn vars(self, rule: serde_json::Value) -> Self;
}

impl Build for RouteSpec {
    fn hosts(mut self, hosts: &[&str]) -> Self {
        self.hosts = hosts.iter().map(|h| (*h).to_owned()).collect();
        self
    }
    fn methods(mut self, methods: &[Method]) -> Self {
        self.methods = methods.to_vec();
        self
    }
    fn prio(mut self, priority: i64) -> Self {
        self.priority = priority;
        self
    }
    fn addrs(mut self, addrs: &[&str]) -> Self {
        self.remote_addrs = addrs
            .iter()
            .map(|a| model::expr::parse_ip_or_cidr(a).expect("test CIDR"))
            .collect();
        self
    }
    fn vars(mut self, rule: serde_json::Value) -> Self {
        self.vars = Some(Expr::compile(&rule).expect("test rule"));
        self
    }
}

/// Variables, and the request body `post_arg.<path>` looks into.
struct Map(HashMap<String, String>, Option<serde_json::Value>);

impl Vars for Map {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.0.get(name).map(|v| Cow::Borrowed(v.as_str()))
    }

    fn post_body(&self) -> Option<&serde_json::Value> {
        self.1.as_ref()
    }
}

/// A request: path, raw host (may carry a port), method, client address, variables.
struct Req {
    path: &'static str,
    raw_host: &'static str,
    method: Method,
    addr: &'static str,
    vars: Map,
}

fn req(path: &'static str) -> Req {
    Req {
        path,
        raw_host: "example.org",
        method: Method::GET,
        addr: "192.0.2.1",
        vars: Map(HashMap::new(), None),
    }
}

impl Req {
    fn host(mut self, raw_host: &'static str) -> Self {
        self.raw_host = raw_host;
        self
    }
    fn method(mut self, m: Method) -> Self {
        self.method = m;
        self
    }
    fn addr(mut self, addr: &'static str) -> Self {
        self.addr = addr;
        self
    }
    fn var(mut self, k: &str, v: &str) -> Self {
        self.vars.0.insert(k.to_owned(), v.to_owned());
        self
    }
    fn body(mut self, body: serde_json::Value) -> Self {
        self.vars.1 = Some(body);
        self
    }
}

/// Builds a router from `routes` (value = position) and returns the id of the route found for
/// each request, plus its captures.
struct Fixture {
    router: Router,
    ids: Vec<String>,
}

impl Fixture {
    fn new(kind: RouterKind, routes: Vec<RouteSpec>) -> Fixture {
        let ids = routes.iter().map(|r| r.id.clone()).collect();
        let routes = routes
            .into_iter()
            .enumerate()
            .map(|(i, mut r)| {
                r.value = u32::try_from(i).expect("few routes");
                r
            })
            .collect();
        Fixture {
            router: Router::build(kind, routes),
            ids,
        }
    }

    fn find(&self, r: &Req) -> Option<(String, Vec<(String, String)>)> {
        let host = match r.raw_host.rfind(':') {
            Some(i) if !r.raw_host.ends_with(']') => &r.raw_host[..i],
            _ => r.raw_host,
        };
        let addr: IpAddr = r.addr.parse().expect("test address");
        let info = RequestInfo {
            path: r.path,
            host,
            raw_host: r.raw_host,
            method: &r.method,
            remote_addr: addr,
            vars: &r.vars,
        };
        self.router.find(&info).map(|m| {
            let params = m
                .params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            (self.ids[m.value as usize].clone(), params)
        })
    }

    fn check(&self, cases: Vec<(Req, Option<&str>)>) {
        for (r, want) in cases {
            let got = self.find(&r).map(|(id, _)| id);
            assert_eq!(
                got.as_deref(),
                want,
                "{:?} {} host {} from {}",
                self.router.kind(),
                r.path,
                r.raw_host,
                r.addr
            );
        }
    }
}

const ALL_KINDS: [RouterKind; 3] = [
    RouterKind::HostUri,
    RouterKind::Uri,
    RouterKind::UriWithParameter,
];

#[test]
fn reference_example() {
    for kind in ALL_KINDS {
        let f = Fixture::new(
            kind,
            vec![
                route("star", &["/blog/foo/*"]),
                route("a", &["/blog/foo/a/*"]),
                route("c", &["/blog/foo/c/*"]),
                route("bar", &["/blog/foo/bar"]),
            ],
        );
        f.check(vec![
            (req("/blog/foo/bar"), Some("bar")),
            (req("/blog/foo/a/b/c"), Some("a")),
            (req("/blog/foo/gloo"), Some("star")),
            (req("/blog/bar"), None),
            (req("/blog/foo"), None),
            (req("/blog/foo/"), Some("star")),
            (req("/blog/foo/c/"), Some("c")),
        ]);
        assert_eq!(f.router.len(), 4);
        assert!(!f.router.is_empty());
    }
}

#[test]
fn ordering_ties() {
    for kind in ALL_KINDS {
        let f = Fixture::new(
            kind,
            vec![
                // exact beats prefix even with lower priority
                route("exact", &["/x"]).prio(-5),
                route("prefix-x", &["/x*"]).prio(100),
                // longer prefix beats shorter prefix regardless of priority
                route("short", &["/p/*"]).prio(100),
                route("long", &["/p/q/*"]),
                // same key: priority wins
                route("lowprio", &["/k/*"]).prio(1),
                route("highprio", &["/k/*"]).prio(2),
                // same key and priority: the longer pattern wins (/m/*/z vs /m/*)
                route("m-short", &["/m/*"]),
                route("m-long", &["/m/*/z"]),
                // same key, priority, pattern length: smaller id wins
                route("id-b", &["/t/*"]),
                route("id-a", &["/t/*"]),
                route("id-c", &["/t/*"]),
            ],
        );
        f.check(vec![
            (req("/x"), Some("exact")),
            (req("/xy"), Some("prefix-x")),
            (req("/p/q/r"), Some("long")),
            (req("/p/r"), Some("short")),
            (req("/k/anything"), Some("highprio")),
            (req("/m/a/z"), Some("m-long")),
            (req("/m/a/y"), Some("m-short")),
            (req("/t/1"), Some("id-a")),
        ]);
    }
}

#[test]
fn failing_candidate_falls_through_in_order() {
    let f = Fixture::new(
        RouterKind::HostUri,
        vec![
            route("exact-post", &["/a/b"]).methods(&[Method::POST]),
            route("long-put", &["/a/*"]).methods(&[Method::PUT]).prio(9),
            route("long-any", &["/a/*"]),
            route("short", &["/*"]).prio(100),
        ],
    );
    f.check(vec![
        (req("/a/b").method(Method::POST), Some("exact-post")),
        (req("/a/b").method(Method::PUT), Some("long-put")),
        (req("/a/b"), Some("long-any")),
        (req("/b"), Some("short")),
        (req("/"), Some("short")),
    ]);
}

#[test]
fn host_routes_beat_hostless_routes() {
    let f = Fixture::new(
        RouterKind::HostUri,
        vec![
            route("hostless-exact", &["/api/v1"]).prio(1000),
            route("host-prefix", &["/api/*"]).hosts(&["foo.com"]),
            route("wild", &["/api/*"]).hosts(&["*.foo.com"]),
            route("wild-deep", &["/api/*"]).hosts(&["*.b.foo.com"]),
            route("odd-wild", &["/api/*"]).hosts(&["*ar.foo.com"]),
            route("any", &["/any"]).hosts(&["*"]),
            route("hostless-any", &["/any"]).prio(1000),
            route("exact-host-other-path", &["/other"]).hosts(&["a.b.foo.com"]),
        ],
    );
    f.check(vec![
        // host route beats the host-less exact path with higher priority
        (req("/api/v1").host("foo.com"), Some("host-prefix")),
        (req("/api/v1").host("foo.com:8443"), Some("host-prefix")),
        (req("/api/v1").host("other.com"), Some("hostless-exact")),
        (req("/api/v1").host("x.foo.com"), Some("wild")),
        // longer wildcard suffix first, exact host with no matching path falls through
        (req("/api/v1").host("a.b.foo.com"), Some("wild-deep")),
        (req("/api/v1").host("z.a.b.foo.com"), Some("wild-deep")),
        // a wildcard that does not start at a label boundary
        (req("/api/v1").host("bar.foo.com"), Some("odd-wild")),
        (req("/api/v1").host("x.bar.foo.com"), Some("odd-wild")),
        (
            req("/other").host("a.b.foo.com"),
            Some("exact-host-other-path"),
        ),
        // `*` host beats the host-less route
        (req("/any").host("whatever.net"), Some("any")),
        (req("/nothing").host("foo.com"), None),
    ]);
}

#[test]
fn hosts_table_all_kinds() {
    for kind in ALL_KINDS {
        let f = Fixture::new(
            kind,
            vec![
                route("exact", &["/h"]).hosts(&["Foo.COM"]),
                route("wild", &["/w"]).hosts(&["*.foo.com"]),
                route("star", &["/s"]).hosts(&["*"]),
                route("port", &["/port"]).hosts(&["foo.com:8080"]),
                route("multi", &["/m"]).hosts(&["a.com", "b.com"]),
            ],
        );
        f.check(vec![
            (req("/h").host("foo.com"), Some("exact")),
            (req("/h").host("bar.com"), None),
            (req("/w").host("a.foo.com"), Some("wild")),
            (req("/w").host("a.b.foo.com"), Some("wild")),
            (req("/w").host("foo.com"), None),
            (req("/s").host("any.thing"), Some("star")),
            (req("/port").host("foo.com:8080"), Some("port")),
            (req("/port").host("foo.com:9090"), None),
            (req("/port").host("foo.com"), None),
            (req("/m").host("b.com"), Some("multi")),
            (req("/m").host("c.com"), None),
        ]);
    }
}

#[test]
fn thousand_hosts_on_one_path() {
    let routes = (0..1000)
        .map(|i| {
            let host = format!("h{i}.example.com");
            route(&format!("r{i}"), &["/same"]).hosts(&[host.as_str()])
        })
        .collect();
    let f = Fixture::new(RouterKind::HostUri, routes);
    f.check(vec![
        (req("/same").host("h0.example.com"), Some("r0")),
        (req("/same").host("h999.example.com"), Some("r999")),
        (req("/same").host("h1000.example.com"), None),
    ]);
}

#[test]
fn methods_and_remote_addrs() {
    for kind in ALL_KINDS {
        let f = Fixture::new(
            kind,
            vec![
                route("get", &["/m"]).methods(&[Method::GET, Method::HEAD]),
                route("purge", &["/m"]).methods(&[Method::from_bytes(b"PURGE").expect("method")]),
                route("v4", &["/ip"]).addrs(&["10.0.0.0/8", "192.0.2.7"]),
                route("v6", &["/ip"]).addrs(&["2001:db8::/32"]),
            ],
        );
        f.check(vec![
            (req("/m"), Some("get")),
            (req("/m").method(Method::HEAD), Some("get")),
            (req("/m").method(Method::POST), None),
            (
                req("/m").method(Method::from_bytes(b"PURGE").expect("method")),
                Some("purge"),
            ),
            (req("/ip").addr("10.9.8.7"), Some("v4")),
            (req("/ip").addr("192.0.2.7"), Some("v4")),
            (req("/ip").addr("::ffff:10.1.1.1"), Some("v4")),
            (req("/ip").addr("192.0.2.8"), None),
            (req("/ip").addr("2001:db8::1"), Some("v6")),
            (req("/ip").addr("2001:db9::1"), None),
        ]);
    }
}

#[test]
fn vars_filter_and_uri_params() {
    let f = Fixture::new(
        RouterKind::UriWithParameter,
        vec![
            route("admin", &["/user/:name"]).vars(json!([["uri_param_name", "==", "admin"]])),
            route("json", &["/user/:name"]).vars(json!([["arg_fmt", "==", "json"]])),
            route("user", &["/user/:name"]),
            // uri_param_ of another candidate is not visible: this route has no `name`
            route("other", &["/o/:id"]).vars(json!([["uri_param_name", "==", "admin"]])),
        ],
    );
    let cases = vec![
        (req("/user/admin"), Some("admin"), vec![("name", "admin")]),
        (
            req("/user/bob").var("arg_fmt", "json"),
            Some("json"),
            vec![("name", "bob")],
        ),
        (req("/user/bob"), Some("user"), vec![("name", "bob")]),
        (req("/o/admin"), None, vec![]),
        (
            req("/o/1").var("uri_param_name", "admin"),
            Some("other"),
            vec![("id", "1")],
        ),
    ];
    for (r, want, params) in cases {
        let got = f.find(&r);
        let want = want.map(|id| {
            (
                id.to_owned(),
                params
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<Vec<_>>(),
            )
        });
        assert_eq!(got, want, "{}", r.path);
    }
}

#[test]
fn body_paths_with_path_parameters() {
    let f = Fixture::new(
        RouterKind::UriWithParameter,
        vec![route("p", &["/u/:id"]).vars(json!([["post_arg.model.name", "==", "x"]]))],
    );
    let hit = req("/u/1").body(json!({"model": {"name": "x"}}));
    assert_eq!(f.find(&hit).map(|(id, _)| id).as_deref(), Some("p"));
    assert_eq!(f.find(&req("/u/1")), None, "no body");
}

#[test]
fn knows_when_a_route_reads_post_args() {
    let plain = vec![route("a", &["/a"]).vars(json!([["arg_k", "==", "v"]]))];
    assert!(!Router::build(RouterKind::Uri, plain).reads_post_args());
    let nested = vec![
        route("a", &["/a"]),
        route("b", &["/b"]).vars(json!([
            "OR",
            ["arg_k", "v"],
            ["!AND", ["post_arg_k", "v"], ["uri", "/"]]
        ])),
    ];
    let nested = Router::build(RouterKind::HostUri, nested);
    assert!(nested.reads_post_args());
    assert!(!nested.reads_body_paths());
    let paths = vec![route("a", &["/a"]).vars(json!([["post_arg.model.name", "==", "x"]]))];
    let paths = Router::build(RouterKind::Uri, paths);
    assert!(paths.reads_body_paths());
    assert!(!paths.reads_post_args());
}

#[test]
fn params_only_with_parameter_kind() {
    let routes = || {
        vec![
            route("colon", &["/u/:id"]),
            route("files", &["/files/*path"]),
            route("bare", &["/b/*"]),
            route("mid", &["/a/*/c"]),
            route("multi", &["/p/:x/q/:y"]),
        ]
    };
    let with = Fixture::new(RouterKind::UriWithParameter, routes());
    type Expected = Option<(&'static str, Vec<(&'static str, &'static str)>)>;
    let cases: Vec<(&'static str, Expected)> = vec![
        ("/u/42", Some(("colon", vec![("id", "42")]))),
        ("/u/", None),
        ("/u/42/x", None),
        ("/files/a/b.txt", Some(("files", vec![("path", "a/b.txt")]))),
        ("/b/x/y", Some(("bare", vec![("ext", "x/y")]))),
        ("/a/b/c", Some(("mid", vec![("ext", "b")]))),
        ("/a/b/d", None),
        ("/p/1/q/2", Some(("multi", vec![("x", "1"), ("y", "2")]))),
    ];
    for (path, want) in cases {
        let want = want.map(|(id, ps)| {
            (
                id.to_owned(),
                ps.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<Vec<_>>(),
            )
        });
        assert_eq!(with.find(&req(path)), want, "{path}");
    }

    for kind in [RouterKind::HostUri, RouterKind::Uri] {
        let without = Fixture::new(kind, routes());
        let cases: Vec<(&'static str, Option<&str>)> = vec![
            ("/u/:id", Some("colon")),
            ("/u/42", None),
            // `*path` is a wildcard followed by the literal "path"
            ("/files/xpath", Some("files")),
            ("/files/a/b.txt", None),
            ("/b/x/y", Some("bare")),
            ("/a/b/c", Some("mid")),
            ("/a/b/x/c", Some("mid")),
            ("/a/b/d", None),
        ];
        for (path, want) in cases {
            let got = without.find(&req(path));
            assert_eq!(
                got.as_ref().map(|(id, _)| id.as_str()),
                want,
                "{kind:?} {path}"
            );
            assert!(got.is_none_or(|(_, params)| params.is_empty()), "{path}");
        }
    }
}

#[test]
fn prefix_star_forms() {
    for kind in ALL_KINDS {
        let f = Fixture::new(
            kind,
            vec![
                route("foo", &["/foo*"]),
                route("bar", &["/bar/*"]),
                route("root", &["*"]),
            ],
        );
        f.check(vec![
            (req("/foo"), Some("foo")),
            (req("/foobar"), Some("foo")),
            (req("/foo/x"), Some("foo")),
            (req("/bar/"), Some("bar")),
            (req("/bar/a/b"), Some("bar")),
            (req("/bar"), Some("root")),
            (req("/"), Some("root")),
        ]);
    }
}

#[test]
fn uri_kind_ignores_priority_across_hosts() {
    // With the URI-only kinds a host is just a filter, so path order decides.
    let f = Fixture::new(
        RouterKind::Uri,
        vec![
            route("hostless-exact", &["/api/v1"]),
            route("host-prefix", &["/api/*"]).hosts(&["foo.com"]),
        ],
    );
    f.check(vec![
        (req("/api/v1").host("foo.com"), Some("hostless-exact")),
        (req("/api/v2").host("foo.com"), Some("host-prefix")),
        (req("/api/v2").host("bar.com"), None),
    ]);
}

#[test]
fn multiple_uris_and_empty_router() {
    let f = Fixture::new(RouterKind::HostUri, vec![route("two", &["/one", "/two/*"])]);
    f.check(vec![
        (req("/one"), Some("two")),
        (req("/two/x"), Some("two")),
        (req("/three"), None),
    ]);
    let empty = Fixture::new(RouterKind::HostUri, Vec::new());
    assert!(empty.router.is_empty());
    assert_eq!(empty.router.len(), 0);
    assert_eq!(empty.find(&req("/")), None);
}
