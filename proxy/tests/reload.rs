//! Hot reload of the declarative file: atomic swap under load, invalid items, broken files.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};

fn routes_to(node: &str, extra_routes: usize) -> String {
    let mut yaml = format!(
        "upstreams:\n  - id: u\n    nodes: {{\"{node}\": 1}}\nroutes:\n  - {{id: main, uri: /load, upstream_id: u}}\n"
    );
    for i in 0..extra_routes {
        yaml.push_str(&format!(
            "  - {{id: r{i}, uri: /extra/{i}, upstream_id: u}}\n"
        ));
    }
    yaml.push_str("#END\n");
    yaml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_fails_no_request() {
    let a = upstream("a", Behaviour::Echo).await;
    let b = upstream("b", Behaviour::Echo).await;
    let gw = gateway(&routes_to(&a.node(), 0)).await;
    let url = gw.url("/load");
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (stop, ok, url) = (stop.clone(), ok.clone(), url.clone());
        workers.push(tokio::spawn(async move {
            let client = client();
            let mut failures = Vec::new();
            let mut servers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let req = http::Request::get(&url)
                    .body(Full::new(Bytes::new()))
                    .expect("request");
                match client.request(req).await {
                    Ok(resp) if resp.status() == 200 => {
                        let body = resp.into_body().collect().await.expect("body").to_bytes();
                        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
                        servers.push(v["server"].as_str().unwrap_or("").to_owned());
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(resp) => failures.push(format!("status {}", resp.status())),
                    Err(e) => failures.push(format!("error {e}")),
                }
            }
            (failures, servers)
        }));
    }
    // Swap between two upstreams and grow/shrink the route table while requests run.
    let mut version = gw.gateway.snapshot_version();
    for round in 0..10 {
        let node = if round % 2 == 0 { b.node() } else { a.node() };
        gw.write_routes(&routes_to(&node, (round % 3) * 500));
        gw.wait_for_version(version).await;
        version = gw.gateway.snapshot_version();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut all_servers = Vec::new();
    for w in workers {
        let (failures, servers) = w.await.expect("worker");
        assert!(
            failures.is_empty(),
            "failed requests during reload: {failures:?}"
        );
        all_servers.extend(servers);
    }
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "too little load: {}",
        ok.load(Ordering::Relaxed)
    );
    assert!(all_servers.iter().any(|s| s == "a") && all_servers.iter().any(|s| s == "b"));
    // The last write pointed at `a`.
    assert_eq!(get(&gw.url("/load")).await.json()["server"], "a");
    assert_eq!(get(&gw.url("/extra/1")).await.status, 404);
}

#[tokio::test]
async fn a_file_with_an_invalid_item_is_not_applied_at_all() {
    let a = upstream("a", Behaviour::Echo).await;
    let good = format!(
        "routes:\n  - {{id: good, uri: /good, upstream: {{nodes: {{\"{0}\": 1}}}}}}\n#END\n",
        a.node()
    );
    let gw = gateway(&good).await;
    let version = gw.gateway.snapshot_version();
    // One invalid item or one dangling reference refuses the whole file: the new good route
    // does not apply either, and the old one keeps serving.
    let node = a.node();
    for bad in [
        format!(
            "  - {{id: bad, uri: /bad, upstream: {{type: magic, nodes: {{\"{node}\": 1}}}}}}\n"
        ),
        "  - {id: dangling, uri: /dangling, upstream_id: nope}\n".to_owned(),
    ] {
        gw.write_routes(&format!(
            "routes:\n  - {{id: new, uri: /new, upstream: {{nodes: {{\"{node}\": 1}}}}}}\n{bad}#END\n"
        ));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(gw.gateway.snapshot_version(), version, "applied: {bad}");
        assert_eq!(get(&gw.url("/good")).await.status, 200);
        assert_eq!(get(&gw.url("/new")).await.status, 404);
    }
}

#[tokio::test]
async fn broken_files_keep_the_current_config() {
    let a = upstream("a", Behaviour::Echo).await;
    let good = format!(
        "routes:\n  - {{id: 1, uri: /x, upstream: {{nodes: {{\"{}\": 1}}}}}}\n#END\n",
        a.node()
    );
    let gw = gateway(&good).await;
    let version = gw.gateway.snapshot_version();
    let broken = [
        "routes:\n  - {id: 1, uri: /y, upstream: {nodes: {}}}\n".to_owned(), // no #END: half-written
        "routes: [\n#END\n".to_owned(),                                      // syntax error
        "- just a list\n#END\n".to_owned(),                                  // not a map
    ];
    for text in &broken {
        gw.write_routes(text);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(gw.gateway.snapshot_version(), version, "applied: {text}");
        assert_eq!(get(&gw.url("/x")).await.status, 200, "after {text}");
    }
    std::fs::remove_file(gw.dir.path().join("apisix.yaml")).expect("remove");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        get(&gw.url("/x")).await.status,
        200,
        "a deleted file keeps the config"
    );
    // A good file applies again.
    gw.write_routes(&good.replace("/x", "/z"));
    gw.wait_for_version(version).await;
    assert_eq!(get(&gw.url("/z")).await.status, 200);
    assert_eq!(get(&gw.url("/x")).await.status, 404);
}

#[tokio::test]
async fn json_files_are_accepted() {
    let a = upstream("a", Behaviour::Echo).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("apisix.json"),
        format!(
            r#"{{"routes":[{{"id":"j","uri":"/json","upstream":{{"nodes":{{"{}":1}}}}}}]}}"#,
            a.node()
        ),
    )
    .expect("write");
    let TestGateway {
        gateway: gw,
        dir: _dir,
        ..
    } = start_in(
        dir,
        "deployment:\n  role_traditional: {config_provider: json}\n",
    )
    .await;
    let got = get(&format!("http://{}/json", gw.addrs()[0])).await;
    assert_eq!(got.status, 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn in_flight_requests_finish_on_the_old_snapshot() {
    let slow = upstream("slow", Behaviour::Slow(Duration::from_millis(300))).await;
    let gw = gateway(&format!(
        "routes:\n  - {{id: 1, uri: /slow, upstream: {{nodes: {{\"{}\": 1}}}}}}\n#END\n",
        slow.node()
    ))
    .await;
    let url = gw.url("/slow");
    let in_flight = tokio::spawn(async move { get(&url).await.status });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let version = gw.gateway.snapshot_version();
    gw.write_routes("routes: []\n#END\n");
    gw.wait_for_version(version).await;
    assert_eq!(
        get(&gw.url("/slow")).await.status,
        404,
        "new requests see the new config"
    );
    assert_eq!(
        in_flight.await.expect("task"),
        200,
        "the old request completes"
    );
}

#[tokio::test]
async fn consumers_follow_the_file_and_unchanged_items_are_not_rebuilt() {
    let a = upstream("a", Behaviour::Echo).await;
    let file = |key: &str, extra_route: bool| {
        let mut yaml = format!(
            "consumers:\n  - {{username: jack, plugins: {{key-auth: {{key: {key}}}}}}}\nroutes:\n  - {{id: 1, uri: /auth, plugins: {{key-auth: {{}}, limit-count: {{count: 2, time_window: 60, rejected_code: 429}}}}, upstream: {{nodes: {{\"{}\": 1}}}}}}\n",
            a.node()
        );
        if extra_route {
            yaml.push_str("  - {id: 2, uri: /open, upstream: {nodes: {\"127.0.0.1:1\": 1}}}\n");
        }
        yaml.push_str("#END\n");
        yaml
    };
    let gw = gateway(&file("k1", false)).await;
    let with = |key: &'static str| [("apikey", key)];
    assert_eq!(get_with(&gw.url("/auth"), &with("k1")).await.status, 200);

    // Another route added: the unchanged route keeps its instance, and its count.
    let version = gw.gateway.snapshot_version();
    gw.write_routes(&file("k1", true));
    gw.wait_for_version(version).await;
    assert_eq!(get_with(&gw.url("/auth"), &with("k1")).await.status, 200);
    assert_eq!(get_with(&gw.url("/auth"), &with("k1")).await.status, 429);

    // The consumer's key changes: the old one is refused, the new one admitted (and counted
    // on the same, unchanged route).
    let version = gw.gateway.snapshot_version();
    gw.write_routes(&file("k2", true));
    gw.wait_for_version(version).await;
    assert_eq!(get_with(&gw.url("/auth"), &with("k1")).await.status, 401);
    assert_eq!(get_with(&gw.url("/auth"), &with("k2")).await.status, 429);
}
