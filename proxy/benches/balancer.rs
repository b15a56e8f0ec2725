//! Cost of one `Balancer::pick` (plus `on_start`/`on_finish` where the algorithm keeps load state).
//!
//! Run with `cargo bench -p ferrogate --bench balancer`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ferrogate::upstream::balancer::{Balancer, HashOn, Kind, Node};

fn nodes(n: u32, weights: impl Fn(u32) -> u32) -> Vec<Node> {
    (0..n)
        .map(|i| Node {
            host: format!("10.0.{}.{}", i / 256, i % 256),
            port: 8080,
            weight: weights(i),
            priority: 0,
        })
        .collect()
}

fn picks(c: &mut Criterion) {
    let mut g = c.benchmark_group("pick");
    let cases = [
        ("roundrobin/single", Kind::RoundRobin, nodes(1, |_| 1)),
        ("roundrobin/equal-8", Kind::RoundRobin, nodes(8, |_| 1)),
        (
            "roundrobin/weighted-8",
            Kind::RoundRobin,
            nodes(8, |i| i + 1),
        ),
        (
            "chash/8",
            Kind::Chash(HashOn::Vars("uri".into())),
            nodes(8, |_| 1),
        ),
        (
            "chash/100",
            Kind::Chash(HashOn::Vars("uri".into())),
            nodes(100, |_| 1),
        ),
        ("least_conn/8", Kind::LeastConn, nodes(8, |i| i + 1)),
        ("ewma/8", Kind::Ewma, nodes(8, |_| 1)),
    ];
    for (name, kind, ns) in cases {
        let b = Balancer::new(kind, ns);
        for i in 0..b.nodes().len() {
            b.on_start(i);
            b.on_finish(i, Some(Duration::from_millis(1 + i as u64)));
        }
        let keys: Vec<String> = (0..1024).map(|k| format!("/api/items/{k}")).collect();
        let mut k = 0usize;
        g.bench_function(name, |bench| {
            bench.iter(|| {
                k = (k + 1) & 1023;
                let idx = b.pick(Some(black_box(&keys[k])), &[]);
                if let Some(i) = idx {
                    b.on_start(i);
                    b.on_finish(i, Some(Duration::from_millis(2)));
                }
                idx
            })
        });
    }
    let b = Balancer::new(Kind::Chash(HashOn::Vars("uri".into())), nodes(8, |_| 1));
    g.bench_function("chash/8-retry-3-tried", |bench| {
        bench.iter(|| b.pick(Some(black_box("/api/items/7")), black_box(&[0, 1, 2])))
    });
    g.finish();
}

criterion_group!(benches, picks);
criterion_main!(benches);
