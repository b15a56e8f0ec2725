//! The fuzz harness: one function per target, decoding raw fuzzer bytes and feeding them to the
//! gateway's own parsers and validators the way an Admin API client, an operator's standalone
//! file or a request would reach them.
//!
//! The fuzz targets (`fuzz_targets/*.rs`) call these functions, and so does the regression
//! replay test of the normal suite (`proxy/tests/fuzz_regressions.rs` includes this file), so a
//! kept input is replayed through exactly the code the fuzzer ran. A function returns how the
//! gateway judged the input; the only failure a fuzzer looks for is a panic (or a hang, or
//! unbounded memory).

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferrogate::config::RouterKind;
use ferrogate::model::expr::Expr;
use ferrogate::model::Resource;
use ferrogate::plugin_api::registry::Registry;
use ferrogate::server::vars::RequestVars;
use ferrogate::server::{path, ConnInfo};
use ferrogate::snapshot::source::Resources;
use ferrogate::snapshot::{BuildSettings, Builder};
use ferrogate::store::sync::Change;
use ferrogate::store::{declarative, ConfigSet, Entry, Format};
use http::header::{HeaderName, HeaderValue};
use serde_json::Value;

/// How the gateway judged one input: accepted (`Ok`), or refused with its message.
pub type Outcome = Result<(), String>;

thread_local! {
    /// One snapshot builder for the whole run, as a gateway keeps one across reloads (its caches
    /// of backends, clients and routes see every accepted input in turn). `None` if it could not
    /// be made (no system CA roots); then accepted inputs are not built.
    static BUILDER: RefCell<Option<Builder>> = RefCell::new(new_builder());
}

/// Every plugin a gateway has, as config.yaml without a `plugins:` list enables them.
fn registry() -> Registry {
    ferrogate::gateway::plugin_registry(None, None, &[])
}

fn new_builder() -> Option<Builder> {
    let mut builder = Builder::new(
        BuildSettings {
            router: RouterKind::HostUri,
            keepalive: 320,
            keepalive_timeout: Duration::from_secs(60),
            registry: registry(),
            plugins: Default::default(),
        },
        None,
    )
    .ok()?;
    // Health checkers are background tasks; a fuzz run has no runtime for them.
    builder.set_health_checks(false);
    Some(builder)
}

/// Builds a data-plane snapshot from accepted resources, as the gateway does after a write or
/// a file reload: a valid config must never crash the builder.
fn build(config: ConfigSet) {
    BUILDER.with(|b| {
        if let Some(builder) = b.borrow_mut().as_mut() {
            drop(builder.build(Arc::new(config)));
        }
    });
}

/// `admin_json`: the first byte picks the resource kind (modulo the number of kinds, in the
/// order of [`Resource::ALL`]), the rest is the Admin API request body. The body is parsed as
/// the Admin API parses it (a JSON object), then checked whole with [`Resource::check`] (the
/// Admin API's write-time check and `POST /schema/validate/{resource}`); an accepted object is
/// then stored under its key and taken up by the data plane ([`Resources::apply`]) and built
/// into a snapshot.
///
/// # Errors
/// The refusal, as text.
pub fn admin_json(data: &[u8]) -> Outcome {
    let (&selector, body) = data.split_first().ok_or("empty input")?;
    let kind = Resource::ALL[usize::from(selector) % Resource::ALL.len()];
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if !value.is_object() {
        return Err("the body must be a JSON object".to_owned());
    }
    kind.check(&value, &registry()).map_err(|problems| {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let key = match kind {
        Resource::Credential => "consumers/fuzz/credentials/1".to_owned(),
        Resource::Consumer => format!(
            "consumers/{}",
            value
                .get("username")
                .and_then(Value::as_str)
                .unwrap_or("fuzz")
        ),
        _ => format!("{}/1", kind.segment()),
    };
    let mut resources = Resources::new(registry());
    resources.apply(vec![Change::Put(Entry {
        key,
        value: Bytes::from(body.to_vec()),
        create_revision: 1,
        mod_revision: 1,
    })]);
    build(resources.to_config_set());
    Ok(())
}

/// `standalone_file`: the first byte picks the format (even: YAML as `apisix.yaml`, odd: JSON
/// as `apisix.json` and `POST /configs/validate`), the rest is the file's text (lossy UTF-8, as
/// the Admin API reads a body). The text goes through [`declarative::parse`]; an accepted file
/// is built into a snapshot, as a reload does.
///
/// # Errors
/// The refusal, as text.
pub fn standalone_file(data: &[u8]) -> Outcome {
    let (&selector, text) = data.split_first().ok_or("empty input")?;
    let format = if selector % 2 == 0 {
        Format::Yaml
    } else {
        Format::Json
    };
    let text = String::from_utf8_lossy(text);
    let loaded = declarative::parse(&text, format, &registry()).map_err(|e| e.to_string())?;
    build(loaded.config);
    Ok(())
}

/// `vars_expr`: the input is the JSON text of a `vars` rule, optionally followed by a NUL byte
/// and a small request head: a line `METHOD TARGET`, then `Name: value` header lines (invalid
/// lines are skipped, as a client could not send them). The rule is compiled with
/// [`Expr::compile`]; when a request is given and its path normalises
/// ([`path::normalize`], else the gateway answers 400 before routing), the rule is evaluated
/// against that request's variables ([`RequestVars`], the ones the router uses).
///
/// # Errors
/// The compile error, or why the request was refused before routing.
pub fn vars_expr(data: &[u8]) -> Outcome {
    let (rule, request) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let rule: Value = serde_json::from_slice(rule).map_err(|e| e.to_string())?;
    let expr = Expr::compile(&rule).map_err(|e| e.to_string())?;
    let Some(request) = request else {
        return Ok(());
    };
    let parts = request_head(request).ok_or("not a request head")?;
    let path = path::normalize(parts.uri.path()).map_err(|e| e.to_string())?;
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.split(':').next().unwrap_or_default().to_ascii_lowercase())
        .unwrap_or_default();
    let conn = ConnInfo {
        peer: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 5555),
        local: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9080),
        tls: false,
    };
    let params = [("id", "1")];
    let vars = RequestVars {
        parts: &parts,
        path: &path,
        host: &host,
        remote: conn.peer_ip(),
        real_ip: ferrogate::plugin_api::client::ClientAddr::default(),
        conn,
        params: &params,
        route: None,
    };
    // The result may be either; only a panic or a hang is a finding.
    std::hint::black_box(expr.eval(&vars));
    Ok(())
}

/// A request head from `METHOD TARGET\nName: value\n...`, or `None` when the first line is not
/// a method and a request target http accepts.
fn request_head(text: &[u8]) -> Option<http::request::Parts> {
    let mut lines = text.split(|b| *b == b'\n');
    let first = lines.next()?;
    let space = first.iter().position(|b| *b == b' ')?;
    let mut builder = http::Request::builder()
        .method(http::Method::from_bytes(&first[..space]).ok()?)
        .uri(http::Uri::try_from(&first[space + 1..]).ok()?);
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = HeaderName::from_bytes(&line[..colon]);
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) = (name, value) {
            builder = builder.header(name, value);
        }
    }
    Some(builder.body(()).ok()?.into_parts().0)
}
