//! Config propagation costs with 10k routes: applying one changed route from the store to the
//! typed resources, and building the snapshot the data plane swaps in.
//!
//! Run with `cargo bench -p ferrogate --bench snapshot -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use ferrogate::config::RouterKind;
use ferrogate::router::{RouteSpec, Router};
use ferrogate::snapshot::source::Resources;
use ferrogate::snapshot::{BuildSettings, Builder};
use ferrogate::store::sync::Change;
use ferrogate::store::Entry;

const ROUTES: usize = 10_000;

fn put(key: String, json: String) -> Change {
    Change::Put(Entry {
        key,
        value: Bytes::from(json),
        create_revision: 1,
        mod_revision: 1,
    })
}

/// 10k routes as the Admin API stores them: half on a shared upstream, half with an inline one.
fn loaded() -> Resources {
    let mut resources = Resources::new(ferrogate::gateway::plugin_registry(None, None, &[]));
    let mut changes = vec![put(
        "upstreams/u".into(),
        r#"{"id":"u","nodes":{"127.0.0.1:1980":1}}"#.into(),
    )];
    for i in 0..ROUTES {
        let json = if i % 2 == 0 {
            format!(
                r#"{{"id":"r{i}","uri":"/api/r{i}","methods":["GET"],"upstream_id":"u","create_time":1,"update_time":1}}"#
            )
        } else {
            format!(
                r#"{{"id":"r{i}","uri":"/api/r{i}/*","upstream":{{"nodes":{{"127.0.0.1:1981":1}}}},"create_time":1,"update_time":1}}"#
            )
        };
        changes.push(put(format!("routes/r{i}"), json));
    }
    resources.apply(changes);
    resources
}

fn builder() -> Builder {
    Builder::new(
        BuildSettings {
            router: RouterKind::HostUri,
            keepalive: 320,
            keepalive_timeout: Duration::from_secs(60),
            registry: ferrogate::gateway::plugin_registry(None, None, &[]),
            plugins: Default::default(),
        },
        None,
    )
    .expect("builder")
}

fn bench(c: &mut Criterion) {
    let mut resources = loaded();
    let mut n = 0u64;
    c.bench_function("apply one changed route (10k loaded)", |b| {
        b.iter(|| {
            n += 1;
            let json = format!(r#"{{"id":"r1","uri":"/api/changed{n}","upstream_id":"u"}}"#);
            black_box(resources.apply(vec![put("routes/r1".into(), json)]));
        })
    });
    c.bench_function("typed resources to builder input (10k)", |b| {
        b.iter(|| black_box(resources.to_config_set()))
    });
    let specs: Vec<RouteSpec> = (0..ROUTES as u32)
        .map(|i| RouteSpec {
            value: i,
            id: format!("r{i}"),
            uris: vec![if i % 2 == 0 {
                format!("/api/r{i}")
            } else {
                format!("/api/r{i}/*")
            }],
            hosts: Vec::new(),
            methods: Vec::new(),
            remote_addrs: Vec::new(),
            vars: None,
            priority: 0,
        })
        .collect();
    c.bench_function("router index alone (10k routes)", |b| {
        b.iter_batched(
            || specs.clone(),
            |s| Router::build(RouterKind::HostUri, s),
            criterion::BatchSize::LargeInput,
        )
    });
    let mut builder = builder();
    let config = Arc::new(resources.to_config_set());
    builder.build(config.clone());
    c.bench_function("build the snapshot (10k routes, none changed)", |b| {
        b.iter(|| black_box(builder.build(config.clone())))
    });
    // One route really changed per build (the store hands out a new object for it); the
    // builder frees the router of the snapshot before last, so that cost is timed too.
    c.bench_function("build the snapshot (10k routes, 1 changed)", |b| {
        b.iter_batched(
            || {
                n += 1;
                let json = format!(r#"{{"id":"r1","uri":"/api/changed{n}","upstream_id":"u"}}"#);
                resources.apply(vec![put("routes/r1".into(), json)]);
                Arc::new(resources.to_config_set())
            },
            |config| builder.build(config),
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
