//! Measures how fast Admin API writes go live and whether they stall traffic (run by
//! `bench/propagation`, which starts etcd and two gateway nodes; this program serves the
//! upstream itself: 200 `ok` on 127.0.0.1, any path).
//!
//! 1. loads `--routes` routes through node A's Admin API;
//! 2. same node: writes a new route on A and polls A's proxy until it answers, `--writes` times;
//! 3. other node: the same, polling B;
//! 4. stall: `--connections` clients loop on an existing route of A for `--seconds`, first with
//!    no writes, then while route writes go to A at `--rate` per second; prints both latency
//!    distributions and their ratio.
//!
//! Latencies are from sending the write to the first 200 from the proxy (so they include the
//! Admin API round trip and the polling interval of about 0.2 ms).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

struct Args {
    admin: String,
    proxy_a: String,
    proxy_b: String,
    key: String,
    routes: usize,
    writes: usize,
    rate: u64,
    connections: usize,
    seconds: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        admin: String::new(),
        proxy_a: String::new(),
        proxy_b: String::new(),
        key: String::new(),
        routes: 10_000,
        writes: 200,
        rate: 100,
        connections: 16,
        seconds: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--admin" => args.admin = value,
            "--proxy-a" => args.proxy_a = value,
            "--proxy-b" => args.proxy_b = value,
            "--key" => args.key = value,
            "--routes" => args.routes = number(&value)? as usize,
            "--writes" => args.writes = number(&value)? as usize,
            "--rate" => args.rate = number(&value)?.max(1),
            "--connections" => args.connections = number(&value)? as usize,
            "--seconds" => args.seconds = number(&value)?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.admin.is_empty() || args.proxy_a.is_empty() {
        return Err("--admin and --proxy-a are required".into());
    }
    Ok(args)
}

async fn request(client: &HttpClient, method: &str, url: &str, key: &str, body: String) -> u16 {
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("x-api-key", key)
        .body(Full::new(Bytes::from(body)));
    let Ok(req) = req else { return 0 };
    match client.request(req).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            status
        }
        Err(_) => 0,
    }
}

fn route(uri: &str, upstream: &str) -> String {
    serde_json::json!({"uri": uri, "upstream": {"nodes": {upstream: 1}}}).to_string()
}

/// Serves 200 `ok` on 127.0.0.1 (any port) until the process ends; its `host:port`.
async fn upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the upstream");
    let addr = listener.local_addr().expect("upstream address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(b"ok"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr.to_string()
}

/// Writes a route and polls `proxy` until it serves; the time from the write to the first 200.
async fn propagation(
    client: &HttpClient,
    args: &Args,
    upstream: &str,
    proxy: &str,
    id: &str,
) -> Duration {
    let start = Instant::now();
    let status = request(
        client,
        "PUT",
        &format!("{}/apisix/admin/routes/{id}", args.admin),
        &args.key,
        route(&format!("/{id}"), upstream),
    )
    .await;
    assert!(status == 200 || status == 201, "write {id}: {status}");
    let url = format!("{proxy}/{id}");
    while request(client, "GET", &url, "", String::new()).await != 200 {
        if start.elapsed() > Duration::from_secs(10) {
            panic!("{url} not live after 10 s");
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    start.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let p99 = percentile(&samples, 0.99);
    println!(
        "{name:<28} n={:<6} p50={:>9.3?} p99={:>9.3?} max={:>9.3?}",
        samples.len(),
        percentile(&samples, 0.5),
        p99,
        samples.last().copied().unwrap_or_default()
    );
    p99
}

/// Loops GETs on `url` from `connections` clients for `seconds`; the latencies.
async fn traffic(url: &str, connections: usize, seconds: u64) -> (Vec<Duration>, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (url, stop) = (url.to_owned(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
            let mut samples = Vec::new();
            let mut failures = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if request(&client, "GET", &url, "", String::new()).await != 200 {
                    failures += 1;
                }
                samples.push(t.elapsed());
            }
            (samples, failures)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut failures = 0;
    for t in tasks {
        if let Ok((s, f)) = t.await {
            all.extend(s);
            failures += f;
        }
    }
    (all, failures)
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("propagation: {e}");
            std::process::exit(2);
        }
    };
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let upstream = upstream().await;

    let started = Instant::now();
    let mut pending = Vec::new();
    let shared = Arc::new((
        client.clone(),
        args.admin.clone(),
        args.key.clone(),
        upstream.clone(),
    ));
    for chunk in (0..args.routes)
        .collect::<Vec<_>>()
        .chunks(args.routes.div_ceil(16).max(1))
    {
        let chunk = chunk.to_vec();
        let shared = shared.clone();
        pending.push(tokio::spawn(async move {
            let (client, admin, key, upstream) = &*shared;
            for i in chunk {
                let url = format!("{admin}/apisix/admin/routes/load-{i}");
                let status = request(
                    client,
                    "PUT",
                    &url,
                    key,
                    route(&format!("/load/{i}"), upstream),
                )
                .await;
                assert!(status == 200 || status == 201, "load {i}: {status}");
            }
        }));
    }
    for p in pending {
        p.await.expect("loader");
    }
    let last = format!("{}/load/{}", args.proxy_a, args.routes.saturating_sub(1));
    while request(&client, "GET", &last, "", String::new()).await != 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("loaded {} routes in {:.1?}", args.routes, started.elapsed());

    let interval = Duration::from_micros(1_000_000 / args.rate);
    let mut same = Vec::new();
    for i in 0..args.writes {
        let t = Instant::now();
        same.push(
            propagation(
                &client,
                &args,
                &upstream,
                &args.proxy_a,
                &format!("same-{i}"),
            )
            .await,
        );
        tokio::time::sleep(interval.saturating_sub(t.elapsed())).await;
    }
    report("write -> live, same node", same);
    if !args.proxy_b.is_empty() {
        let mut other = Vec::new();
        for i in 0..args.writes {
            let t = Instant::now();
            other.push(
                propagation(
                    &client,
                    &args,
                    &upstream,
                    &args.proxy_b,
                    &format!("other-{i}"),
                )
                .await,
            );
            tokio::time::sleep(interval.saturating_sub(t.elapsed())).await;
        }
        report("write -> live, other node", other);
    }

    let url = format!("{}/load/0", args.proxy_a);
    let (quiet, quiet_failures) = traffic(&url, args.connections, args.seconds).await;
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (client, admin, key, upstream, writing) = (
            client.clone(),
            args.admin.clone(),
            args.key.clone(),
            upstream.clone(),
            writing.clone(),
        );
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            let mut n = 0u64;
            while writing.load(Ordering::Relaxed) {
                ticker.tick().await;
                let id = format!("churn-{}", n % 1000);
                let url = format!("{admin}/apisix/admin/routes/{id}");
                let _ = request(
                    &client,
                    "PUT",
                    &url,
                    &key,
                    route(&format!("/{id}"), &upstream),
                )
                .await;
                n += 1;
            }
            n
        })
    };
    let (busy, busy_failures) = traffic(&url, args.connections, args.seconds).await;
    writing.store(false, Ordering::Relaxed);
    let written = writer.await.unwrap_or(0);
    let rps = |n: usize| n as f64 / args.seconds as f64;
    println!(
        "traffic without writes: {:.0} req/s, {quiet_failures} failed",
        rps(quiet.len())
    );
    let quiet_p99 = report("  latency", quiet.clone());
    println!(
        "traffic with {written} writes ({:.0}/s): {:.0} req/s, {busy_failures} failed",
        written as f64 / args.seconds as f64,
        rps(busy.len())
    );
    let busy_p99 = report("  latency", busy.clone());
    println!(
        "ratio with/without writes: throughput {:.2}, p99 latency {:.2}",
        rps(busy.len()) / rps(quiet.len()).max(1.0),
        busy_p99.as_secs_f64() / quiet_p99.as_secs_f64().max(1e-9)
    );
}
