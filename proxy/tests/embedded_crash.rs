//! The embedded store under `kill -9`: the gateway binary is killed at random moments while a
//! client writes through the Admin API; after every restart each acknowledged write is there and
//! the store opens cleanly.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::admin::{embedded_config, Admin};
use common::*;
use rand::Rng;

const BIN: &str = env!("CARGO_BIN_EXE_ferrogate");

struct Node {
    child: Child,
    proxy: u16,
    admin: Admin,
}

async fn start(dir: &std::path::Path) -> Node {
    let (proxy, admin_port) = (free_port(), free_port());
    let config = merged_config(&format!(
        "{}apisix:\n  node_listen: [{{ip: 127.0.0.1, port: {proxy}}}]\n",
        embedded_config().replace("port: 0}", &format!("port: {admin_port}}}"))
    ));
    std::fs::write(dir.join("config.yaml"), config).expect("write config");
    let child = Command::new(BIN)
        .args(["run", "-c"])
        .arg(dir.join("config.yaml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    wait_until_listening(admin_port).await;
    let admin = Admin {
        base: format!("http://127.0.0.1:{admin_port}"),
        key: common::admin::ADMIN_KEY.to_owned(),
    };
    Node {
        child,
        proxy,
        admin,
    }
}

#[tokio::test]
async fn no_acknowledged_write_is_lost_to_kill_9() {
    let up = upstream("a", Behaviour::Echo).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acknowledged: Vec<String> = Vec::new();
    let mut next = 0u32;
    for round in 0..5 {
        let mut node = start(dir.path()).await;
        // Everything acknowledged before is there, and the data plane serves it.
        let list = node.admin.get("/routes?page=1&page_size=500").await;
        assert_eq!(list.status, 200, "round {round}: store opens after kill -9");
        let ids: Vec<String> = list.json()["list"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|i| i["value"]["id"].as_str().map(str::to_owned))
            .collect();
        for id in &acknowledged {
            assert!(
                ids.contains(id),
                "round {round}: acknowledged route {id} lost"
            );
        }
        if let Some(last) = acknowledged.last() {
            let got = get(&format!("http://127.0.0.1:{}/{last}", node.proxy)).await;
            assert_eq!(
                got.status, 200,
                "round {round}: route {last} serves after restart"
            );
        }

        // Write until killed at a random moment.
        let kill_after = Duration::from_millis(rand::rng().random_range(50..400));
        let writer = async {
            loop {
                let id = format!("k{next}");
                let body = serde_json::json!({"uri": format!("/{id}"), "upstream": {"nodes": {up.node(): 1}}});
                let got = node.admin.put(&format!("/routes/{id}"), body).await;
                // 200: the write cut by the last kill had reached the disk before it.
                assert!(
                    matches!(got.status.as_u16(), 200 | 201),
                    "write {id}: {}",
                    got.status
                );
                acknowledged.push(id);
                next += 1;
            }
        };
        // The writer may be cut mid-request: that write was never acknowledged.
        let _ = tokio::time::timeout(kill_after, writer).await;
        node.child.kill().expect("kill -9");
        node.child.wait().expect("reaped");
    }
    assert!(
        acknowledged.len() >= 5,
        "writes happened: {}",
        acknowledged.len()
    );
}
