//! Admin API harness: a gateway on the embedded store with the Admin API on a free port, and a
//! client that sends the keys.

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;

use std::time::Duration;

use super::{client, get, send, start_in, Got, TestGateway};

/// The admin key of test gateways.
pub const ADMIN_KEY: &str = "edd1c9f034335f136f87ad84b625c8f1";
/// The viewer key of test gateways.
pub const VIEWER_KEY: &str = "4054f7cf07e344346cd3f287985e76a2";

/// `config.yaml` text for an embedded store with the Admin API on a free loopback port.
pub fn embedded_config() -> String {
    format!(
        "deployment:\n  role_traditional: {{config_provider: embedded}}\n  admin:\n    admin_listen: {{ip: 127.0.0.1, port: 0}}\n    admin_key:\n      - {{name: admin, key: {ADMIN_KEY}, role: admin}}\n      - {{name: viewer, key: {VIEWER_KEY}, role: viewer}}\n"
    )
}

/// Where a test gateway keeps its config.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    /// The embedded store in the test's temporary directory.
    Embedded,
    /// A real etcd started for the test.
    Etcd,
}

/// A gateway on the embedded store (in a new temporary directory) and its Admin API client.
pub async fn embedded_gateway() -> (TestGateway, Admin) {
    admin_gateway(Backend::Embedded).await
}

/// A gateway on `backend` with the Admin API on a free port, and its client.
pub async fn admin_gateway(backend: Backend) -> (TestGateway, Admin) {
    let dir = tempfile::tempdir().expect("tempdir");
    match backend {
        Backend::Embedded => restart(dir).await,
        Backend::Etcd => {
            let etcd = super::etcd::Etcd::start().await;
            let mut gw = start_in(dir, &etcd_config(&etcd.endpoint(), "/apisix")).await;
            gw.etcd = Some(etcd);
            let admin = Admin::for_gateway(&gw);
            (gw, admin)
        }
    }
}

/// `config.yaml` text for an etcd store at `endpoint` under `prefix`, Admin API on a free port.
pub fn etcd_config(endpoint: &str, prefix: &str) -> String {
    embedded_config().replace(
        "config_provider: embedded}",
        &format!("config_provider: etcd}}\n  etcd: {{host: [\"{endpoint}\"], prefix: {prefix}, timeout: 2}}"),
    )
}

/// A gateway on the embedded store in `dir` (as left by an earlier gateway, if any).
pub async fn restart(dir: tempfile::TempDir) -> (TestGateway, Admin) {
    let gw = start_in(dir, &embedded_config()).await;
    let admin = Admin::for_gateway(&gw);
    (gw, admin)
}

/// An Admin API client.
pub struct Admin {
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// The key sent as `X-API-KEY` (none when empty).
    pub key: String,
}

impl Admin {
    /// The client of `gw`'s Admin API with the admin key.
    pub fn for_gateway(gw: &TestGateway) -> Admin {
        Admin {
            base: format!(
                "http://{}",
                gw.gateway.admin_addr().expect("Admin API enabled")
            ),
            key: ADMIN_KEY.to_owned(),
        }
    }

    /// The same Admin API with another key.
    pub fn with_key(&self, key: &str) -> Admin {
        Admin {
            base: self.base.clone(),
            key: key.to_owned(),
        }
    }

    /// Sends `method` to `/apisix/admin{path}` with a raw body.
    pub async fn call(&self, method: Method, path: &str, body: &str) -> Got {
        self.call_with(method, path, &[], body).await
    }

    /// Sends `method` to `/apisix/admin{path}` with `headers` (a `host` replaces the real one)
    /// and a raw body.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Got {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}/apisix/admin{path}", self.base));
        if !self.key.is_empty() {
            req = req.header("x-api-key", &self.key);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .expect("request");
        send(&client(), req).await
    }

    pub async fn get(&self, path: &str) -> Got {
        self.call(Method::GET, path, "").await
    }

    pub async fn put(&self, path: &str, body: serde_json::Value) -> Got {
        self.call(Method::PUT, path, &body.to_string()).await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> Got {
        self.call(Method::POST, path, &body.to_string()).await
    }

    pub async fn patch(&self, path: &str, body: serde_json::Value) -> Got {
        self.call(Method::PATCH, path, &body.to_string()).await
    }

    pub async fn delete(&self, path: &str) -> Got {
        self.call(Method::DELETE, path, "").await
    }
}

/// Writes `path` with `body` through the Admin API and waits until `probe` on the proxy answers
/// `status` (the write is live).
pub async fn apply(
    gw: &TestGateway,
    admin: &Admin,
    path: &str,
    body: serde_json::Value,
    probe: &str,
    status: u16,
) {
    let put = admin.put(path, body).await;
    assert!(put.status.is_success(), "{path}: {:?}", put.body);
    for _ in 0..200 {
        if get(&gw.url(probe)).await.status == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{probe} never answered {status}");
}
