//! One file of the APISIX suite: the cases of one Test::Nginx `.t` file, in order, against one
//! gateway (blocks share its config as they share APISIX's etcd).
//!
//! The file format is described in `tests/apisix/README.md`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::Full;
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::common::{self, Got, TestGateway};

/// A case file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// The `.t` file, as `t/plugin/limit-count.t`.
    pub source: String,
    /// `config.yaml` text merged over the suite's base config.
    #[serde(default)]
    pub config: String,
    /// The ported blocks, in the file's order.
    pub blocks: Vec<Block>,
    /// The blocks left out, each group with its reason.
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    /// Run when no other file runs (answers that depend on timing).
    #[serde(default)]
    pub alone: bool,
}

/// Blocks left out of a file, and why.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skipped {
    pub tests: Vec<u32>,
    pub why: String,
}

/// One `=== TEST n` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    pub test: u32,
    pub name: String,
    /// The heading in docs/apisix-differences.md this block's answers differ by; the steps then
    /// state Ferrogate's answers.
    #[serde(default)]
    pub difference: Option<String>,
    pub steps: Vec<Step>,
}

/// One request, a write through APISIX's test helper, or a pause.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// `METHOD /path`: sent as `t()` of `lib.test_admin` sends it (answers `passed`).
    #[serde(default)]
    pub admin: Option<String>,
    /// `METHOD /path?query`: a plain request, as Test::Nginx's `--- request`.
    #[serde(default)]
    pub request: Option<String>,
    /// Seconds to wait (`ngx.sleep`).
    #[serde(default)]
    pub sleep: Option<f64>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A string is sent as it is; anything else as its JSON text.
    #[serde(default)]
    pub body: Option<Value>,
    /// `t()`'s pattern: the answer must contain it (JSON; `null` = absent).
    #[serde(default)]
    pub pattern: Option<Value>,
    /// Send this many times, each expecting the same.
    #[serde(default)]
    pub times: Option<u32>,
    /// Send this many copies at once (concurrent requests); `expect.statuses` then counts their
    /// answers' statuses, and nothing else is checked.
    #[serde(default)]
    pub parallel: Option<u32>,
    #[serde(default)]
    pub expect: Expect,
}

/// What the answer must be.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Default: 200 for requests; any status below 300 for admin steps.
    #[serde(default)]
    pub status: Option<u16>,
    /// The exact body (admin steps: with trailing white space ignored; default `passed`).
    #[serde(default)]
    pub body: Option<String>,
    /// A regular expression the body matches (anywhere, `.` matching new lines).
    #[serde(default)]
    pub body_like: Option<String>,
    /// JSON the body contains, as `t()`'s pattern.
    #[serde(default)]
    pub json: Option<Value>,
    /// Header values (the first of each name); `null` = absent.
    #[serde(default)]
    pub headers: BTreeMap<String, Option<String>>,
    /// Regular expressions header values match.
    #[serde(default)]
    pub headers_like: BTreeMap<String, String>,
    /// With `times`: how many answers had each body, in any order (a balancer's distribution).
    #[serde(default)]
    pub counts: Option<BTreeMap<String, u32>>,
    /// With `times`: how many different bodies the answers had (1: the same node every time).
    #[serde(default)]
    pub distinct: Option<usize>,
    /// With `parallel`: how many answers had each status, in any order.
    #[serde(default)]
    pub statuses: Option<BTreeMap<u16, u32>>,
}

/// Where a file's requests go, and the real ports standing for APISIX's fixed ones.
pub struct Target {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub admin_key: String,
    /// The Prometheus exporter, when the file's config serves one (`plugin_attr.prometheus`):
    /// requests to [`METRICS_PATH`] go there (APISIX's tests reach it through a `public-api`
    /// route on the proxy port).
    pub prometheus: Option<SocketAddr>,
    /// (APISIX's port, the real one): the test server's 1980-1982 and the gateway's 1984.
    pub ports: Vec<(u16, u16)>,
}

impl Target {
    /// The text with APISIX's fixed ports replaced by the real ones.
    fn to_real(&self, text: &str) -> String {
        let fixed = Regex::new(r"\b(198[0-4])\b").expect("regex");
        fixed
            .replace_all(text, |c: &regex::Captures<'_>| {
                let port: u16 = c[1].parse().expect("digits");
                self.ports
                    .iter()
                    .find(|(apisix, _)| *apisix == port)
                    .map_or_else(|| c[1].to_owned(), |(_, real)| real.to_string())
            })
            .into_owned()
    }

    /// The text with the real ports replaced by APISIX's.
    fn to_apisix(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (apisix, real) in &self.ports {
            text = text.replace(&real.to_string(), &apisix.to_string());
        }
        text
    }
}

/// The exporter's default path.
pub const METRICS_PATH: &str = "/apisix/prometheus/metrics";

/// The outcome of one step, for the failure report.
type Outcome = Result<(), String>;

impl Step {
    pub async fn run(&self, target: &Target, gw: &TestGateway) -> Outcome {
        if let Some(seconds) = self.sleep {
            tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
            return Ok(());
        }
        if let (Some(n), Some(line)) = (self.parallel, &self.request) {
            return self.run_parallel(target, n, line).await;
        }
        let mut counts = BTreeMap::<String, u32>::new();
        for _ in 0..self.times.unwrap_or(1) {
            if let Some(line) = &self.admin {
                let (method, path) = split_line(line)?;
                let before = gw.gateway.snapshot_version();
                let got = self.send(target, &method, &path, true).await?;
                self.check_admin(target, &got)?;
                if method != Method::GET && got.status.as_u16() < 300 {
                    // Writes apply asynchronously; the next request must see this one.
                    for _ in 0..100 {
                        if gw.gateway.snapshot_version() > before {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            } else if let Some(line) = &self.request {
                let (method, path) = split_line(line)?;
                let got = self.send(target, &method, &path, false).await?;
                self.check_request(target, &got)?;
                if self.expect.counts.is_some() || self.expect.distinct.is_some() {
                    let body = target.to_apisix(&String::from_utf8_lossy(&got.body));
                    *counts.entry(body).or_default() += 1;
                }
            } else {
                return Err("a step needs `admin`, `request` or `sleep`".into());
            }
        }
        match (&self.expect.counts, self.expect.distinct) {
            (Some(want), _) if *want != counts => {
                Err(format!("expected answers {want:?}, got {counts:?}"))
            }
            (_, Some(want)) if want != counts.len() => {
                Err(format!("expected {want} different answers, got {counts:?}"))
            }
            _ => Ok(()),
        }
    }

    /// Sends `n` copies of the request at once and counts their statuses.
    async fn run_parallel(&self, target: &Target, n: u32, line: &str) -> Outcome {
        let (method, path) = split_line(line)?;
        let mut running = tokio::task::JoinSet::new();
        for _ in 0..n {
            running.spawn(fetch(self.build(target, &method, &path, false)?));
        }
        let mut statuses = BTreeMap::<u16, u32>::new();
        while let Some(got) = running.join_next().await {
            let got = got.map_err(|e| format!("request task failed: {e}"))??;
            *statuses.entry(got.status.as_u16()).or_default() += 1;
        }
        match &self.expect.statuses {
            Some(want) if *want != statuses => {
                Err(format!("expected statuses {want:?}, got {statuses:?}"))
            }
            _ => Ok(()),
        }
    }

    async fn send(
        &self,
        target: &Target,
        method: &Method,
        path: &str,
        admin_helper: bool,
    ) -> Result<Got, String> {
        fetch(self.build(target, method, path, admin_helper)?).await
    }

    /// The request this step sends.
    fn build(
        &self,
        target: &Target,
        method: &Method,
        path: &str,
        admin_helper: bool,
    ) -> Result<Request<Full<Bytes>>, String> {
        let to_admin = path.starts_with("/apisix/admin");
        let addr = match target.prometheus {
            _ if to_admin => target.admin,
            Some(exporter) if path.starts_with(METRICS_PATH) => exporter,
            _ => target.proxy,
        };
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!("http://{addr}{}", target.to_real(path)));
        let has = |name: &str| self.headers.keys().any(|k| k.eq_ignore_ascii_case(name));
        if !has("host") {
            req = req.header("host", "localhost");
        }
        if to_admin && !has("x-api-key") {
            req = req.header("x-api-key", &target.admin_key);
        }
        if admin_helper && !has("content-type") {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        for (name, value) in &self.headers {
            req = req.header(name.as_str(), target.to_real(value));
        }
        let body = match &self.body {
            None => String::new(),
            Some(Value::String(text)) => target.to_real(text),
            Some(json) => target.to_real(&json.to_string()),
        };
        req.body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("bad request in case file: {e}"))
    }

    /// `t()`'s answer: the raw body from 300 up, else `passed` when the pattern matches.
    fn check_admin(&self, target: &Target, got: &Got) -> Outcome {
        let raw = target.to_apisix(&String::from_utf8_lossy(&got.body));
        let (status, body) = match (&self.pattern, got.status.as_u16()) {
            (_, s) if s >= 300 => (s, raw.clone()),
            (None, s) => (s, "passed".to_owned()),
            (Some(pattern), _) => match contains_json(pattern, &raw) {
                Ok(()) => (200, "passed".to_owned()),
                Err(e) => (500, format!("failed, {e}")),
            },
        };
        let status_ok = match self.expect.status {
            Some(expected) => status == expected,
            None => status < 300,
        };
        let expected_body =
            self.expect
                .body
                .as_deref()
                .or(if status < 300 { Some("passed") } else { None });
        let body_ok = expected_body.is_none_or(|b| b.trim_end() == body.trim_end());
        if !status_ok || !body_ok {
            return Err(format!(
                "expected {} {:?}, got {status} {body:?}",
                self.expect
                    .status
                    .map_or("< 300".to_owned(), |s| s.to_string()),
                expected_body.unwrap_or("(any body)")
            ));
        }
        self.check_common(&raw, &got.headers, target)
    }

    fn check_request(&self, target: &Target, got: &Got) -> Outcome {
        let body = target.to_apisix(&String::from_utf8_lossy(&got.body));
        let expected = self.expect.status.unwrap_or(200);
        if got.status.as_u16() != expected {
            return Err(format!(
                "expected status {expected}, got {} {body:?}",
                got.status.as_u16()
            ));
        }
        if let Some(want) = &self.expect.body {
            if *want != body {
                return Err(format!("expected body {want:?}, got {body:?}"));
            }
        }
        self.check_common(&body, &got.headers, target)
    }

    fn check_common(&self, body: &str, headers: &HeaderMap, target: &Target) -> Outcome {
        if let Some(pattern) = &self.expect.body_like {
            let re = Regex::new(&format!("(?s){pattern}"))
                .map_err(|e| format!("bad body_like {pattern:?}: {e}"))?;
            if !re.is_match(body) {
                return Err(format!("body {body:?} does not match {pattern:?}"));
            }
        }
        if let Some(json) = &self.expect.json {
            contains_json(json, body)?;
        }
        let value = |name: &str| {
            headers
                .get(name)
                .map(|v| target.to_apisix(&String::from_utf8_lossy(v.as_bytes())))
        };
        for (name, want) in &self.expect.headers {
            let got = value(name);
            if got.as_deref() != want.as_deref() {
                return Err(format!("header {name}: expected {want:?}, got {got:?}"));
            }
        }
        for (name, pattern) in &self.expect.headers_like {
            let re = Regex::new(pattern).map_err(|e| format!("bad regex {pattern:?}: {e}"))?;
            match value(name) {
                Some(v) if re.is_match(&v) => {}
                got => return Err(format!("header {name}: {got:?} does not match {pattern:?}")),
            }
        }
        Ok(())
    }
}

/// Sends a request and reads its answer whole (10 s at most).
async fn fetch(req: Request<Full<Bytes>>) -> Result<Got, String> {
    let client = common::client();
    match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
        Err(_) => Err("no answer in 10 s".into()),
        Ok(Err(e)) => Err(format!("request failed: {e}")),
        Ok(Ok(response)) => {
            let (parts, body) = response.into_parts();
            let body = http_body_util::BodyExt::collect(body)
                .await
                .map_err(|e| format!("body failed: {e}"))?
                .to_bytes();
            Ok(Got {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        }
    }
}

fn split_line(line: &str) -> Result<(Method, String), String> {
    let (method, path) = line
        .split_once(' ')
        .ok_or_else(|| format!("`{line}`: expected `METHOD /path`"))?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|e| format!("{line}: {e}"))?;
    Ok((method, path.trim().to_owned()))
}

/// `body` (JSON text) contains `pattern` as `lib.test_admin`'s `com_tab` checks: every key of
/// the pattern present with an equal value, objects and arrays compared key by key, `null`
/// meaning absent.
fn contains_json(pattern: &Value, body: &str) -> Outcome {
    let pattern = match pattern {
        Value::String(text) => serde_json::from_str(text)
            .map_err(|e| format!("failed to decode expected data: {e}"))?,
        other => other.clone(),
    };
    let data: Value =
        serde_json::from_str(body).map_err(|e| format!("answer is not JSON ({e}): {body:?}"))?;
    compare(&pattern, &data, &mut Vec::new())
}

fn compare(pattern: &Value, data: &Value, path: &mut Vec<String>) -> Outcome {
    let entries: Vec<(String, &Value)> = match pattern {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| ((i + 1).to_string(), v))
            .collect(),
        _ => return Err("a pattern is an object or an array".into()),
    };
    for (key, want) in entries {
        path.push(key.clone());
        let got = match data {
            Value::Object(map) => map.get(&key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i - 1)),
            _ => None,
        };
        let got = got.filter(|v| !v.is_null());
        match (want, got) {
            (Value::Object(_) | Value::Array(_), Some(got)) => compare(want, got, path)?,
            (Value::Null, None) => {}
            (want, Some(got)) if same_scalar(want, got) => {}
            (want, got) => {
                return Err(format!(
                    "path: {} expect: {want} got: {}",
                    path.join("->"),
                    got.map_or("nil".to_owned(), Value::to_string)
                ))
            }
        }
        path.pop();
    }
    Ok(())
}

fn same_scalar(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}
