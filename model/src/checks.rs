//! Upstream health checks (`upstream.checks`): APISIX's fields and defaults.
//!
//! `active` probes every node on a timer (HTTP, HTTPS or a TCP connect); `passive` counts the
//! outcome of real requests. Both feed the same per-node counters, and a counter reaching its
//! threshold flips the node to healthy or unhealthy (see `upstream::health`). APISIX requires
//! `active` whenever `checks` is given: passive checks alone could eject a node but never bring
//! it back, since an unhealthy node gets no traffic.
//!
//! Beyond APISIX: intervals may be fractions of a second (down to [`MIN_INTERVAL`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Checker;

/// The shortest probe interval accepted, in seconds (APISIX: integer seconds, at least 1).
pub const MIN_INTERVAL: f64 = 0.1;

/// `checks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    /// Probes sent by the gateway on a timer (required by APISIX's schema).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<ActiveCheck>,
    /// Counting the outcome of real requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passive: Option<PassiveCheck>,
}

/// How a node is probed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// An HTTP request; its status decides.
    #[default]
    Http,
    /// An HTTP request over TLS.
    Https,
    /// A TCP connect: success when the connection opens.
    Tcp,
}

impl ProbeKind {
    /// The name as written in the config (`http`, `https`, `tcp`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Http => "http",
            ProbeKind::Https => "https",
            ProbeKind::Tcp => "tcp",
        }
    }
}

/// `checks.active`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActiveCheck {
    /// `http` (default), `https` or `tcp`.
    #[serde(rename = "type", default)]
    pub kind: ProbeKind,
    /// Seconds a probe may take (default 1).
    #[serde(default = "one")]
    pub timeout: f64,
    /// Probes in flight at once for this upstream (default 10).
    #[serde(default = "ten")]
    pub concurrency: u32,
    /// Host header (and nothing else) of HTTP probes; default the node's host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port probed instead of the node's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Method of HTTP probes (default `GET`).
    #[serde(default = "get")]
    pub http_method: String,
    /// Path of HTTP probes (default `/`).
    #[serde(default = "slash")]
    pub http_path: String,
    /// Body of HTTP probes (default empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub http_req_body: String,
    /// Verify the node's certificate in HTTPS probes (default true).
    #[serde(default = "crate::yes")]
    pub https_verify_certificate: bool,
    /// Extra headers of HTTP probes, each `"Name: value"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub req_headers: Vec<String>,
    /// When a node counts as healthy again.
    #[serde(default)]
    pub healthy: ActiveHealthy,
    /// When a node counts as unhealthy.
    #[serde(default)]
    pub unhealthy: ActiveUnhealthy,
}

/// `checks.active.healthy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActiveHealthy {
    /// Seconds between probes of a healthy node (default 1).
    #[serde(default = "one")]
    pub interval: f64,
    /// Statuses that count as a success (default 200, 302).
    #[serde(default = "active_healthy_statuses")]
    pub http_statuses: Vec<u16>,
    /// Successes in a row that make an unhealthy node healthy (1-254, default 2).
    #[serde(default = "two")]
    pub successes: u32,
}

/// `checks.active.unhealthy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActiveUnhealthy {
    /// Seconds between probes of an unhealthy node (default 1).
    #[serde(default = "one")]
    pub interval: f64,
    /// Statuses that count as an HTTP failure (default 429, 404, 500-505).
    #[serde(default = "active_unhealthy_statuses")]
    pub http_statuses: Vec<u16>,
    /// HTTP failures that make a node unhealthy (1-254, default 5).
    #[serde(default = "five")]
    pub http_failures: u32,
    /// TCP failures (connect errors, broken connections) that make a node unhealthy (1-254,
    /// default 2).
    #[serde(default = "two")]
    pub tcp_failures: u32,
    /// Timeouts that make a node unhealthy (1-254, default 3).
    #[serde(default = "three")]
    pub timeouts: u32,
}

/// `checks.passive`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PassiveCheck {
    /// `http` (default), `https` or `tcp` (`tcp` ignores statuses).
    #[serde(rename = "type", default)]
    pub kind: ProbeKind,
    /// When real traffic makes a node healthy.
    #[serde(default)]
    pub healthy: PassiveHealthy,
    /// When real traffic makes a node unhealthy.
    #[serde(default)]
    pub unhealthy: PassiveUnhealthy,
}

/// `checks.passive.healthy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PassiveHealthy {
    /// Statuses that count as a success (default 200-208, 226, 300-308).
    #[serde(default = "passive_healthy_statuses")]
    pub http_statuses: Vec<u16>,
    /// Successes that make a node healthy (0-254, 0 = never; default 5).
    #[serde(default = "five")]
    pub successes: u32,
}

/// `checks.passive.unhealthy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PassiveUnhealthy {
    /// Statuses that count as an HTTP failure (default 429, 500, 503).
    #[serde(default = "passive_unhealthy_statuses")]
    pub http_statuses: Vec<u16>,
    /// HTTP failures that make a node unhealthy (0-254, 0 = never; default 5).
    #[serde(default = "five")]
    pub http_failures: u32,
    /// TCP failures that make a node unhealthy (0-254, 0 = never; default 2).
    #[serde(default = "two")]
    pub tcp_failures: u32,
    /// Timeouts that make a node unhealthy (0-254, 0 = never; default 7).
    #[serde(default = "seven")]
    pub timeouts: u32,
}

fn one() -> f64 {
    1.0
}
fn two() -> u32 {
    2
}
fn three() -> u32 {
    3
}
fn five() -> u32 {
    5
}
fn seven() -> u32 {
    7
}
fn ten() -> u32 {
    10
}
fn get() -> String {
    "GET".to_owned()
}
fn slash() -> String {
    "/".to_owned()
}
fn active_healthy_statuses() -> Vec<u16> {
    vec![200, 302]
}
fn active_unhealthy_statuses() -> Vec<u16> {
    vec![429, 404, 500, 501, 502, 503, 504, 505]
}
fn passive_healthy_statuses() -> Vec<u16> {
    let mut s: Vec<u16> = (200..=208).collect();
    s.push(226);
    s.extend(300..=308);
    s
}
fn passive_unhealthy_statuses() -> Vec<u16> {
    vec![429, 500, 503]
}

impl Default for ActiveHealthy {
    fn default() -> Self {
        ActiveHealthy {
            interval: one(),
            http_statuses: active_healthy_statuses(),
            successes: two(),
        }
    }
}

impl Default for ActiveUnhealthy {
    fn default() -> Self {
        ActiveUnhealthy {
            interval: one(),
            http_statuses: active_unhealthy_statuses(),
            http_failures: five(),
            tcp_failures: two(),
            timeouts: three(),
        }
    }
}

impl Default for PassiveHealthy {
    fn default() -> Self {
        PassiveHealthy {
            http_statuses: passive_healthy_statuses(),
            successes: five(),
        }
    }
}

impl Default for PassiveUnhealthy {
    fn default() -> Self {
        PassiveUnhealthy {
            http_statuses: passive_unhealthy_statuses(),
            http_failures: five(),
            tcp_failures: two(),
            timeouts: seven(),
        }
    }
}

impl Checks {
    /// The probe kind shown by the control API (`active.type`, else `passive.type`).
    pub fn kind(&self) -> ProbeKind {
        self.active
            .as_ref()
            .map(|a| a.kind)
            .or_else(|| self.passive.as_ref().map(|p| p.kind))
            .unwrap_or_default()
    }

    /// Checks the rules the types cannot express; paths are relative to `check`'s base
    /// (`...checks`).
    pub fn validate(&self, check: &mut Checker<'_>) {
        let Some(active) = &self.active else {
            check.error("", "checks.active is required");
            return;
        };
        let mut a = check.nested("active");
        if !(active.timeout > 0.0 && active.timeout.is_finite()) {
            a.error("timeout", "must be a number greater than 0");
        }
        if active.concurrency == 0 {
            a.error("concurrency", "must be at least 1");
        }
        if active.port == Some(0) {
            a.error("port", "must be 1-65535");
        }
        if active.host.as_deref() == Some("") {
            a.error("host", "must not be empty");
        }
        if http::Method::from_bytes(active.http_method.as_bytes()).is_err() {
            a.error(
                "http_method",
                format!("invalid method `{}`", active.http_method),
            );
        }
        if !active.http_path.starts_with('/')
            || http::uri::PathAndQuery::try_from(active.http_path.as_str()).is_err()
        {
            a.error(
                "http_path",
                format!("`{}` is not a path starting with `/`", active.http_path),
            );
        }
        for (i, h) in active.req_headers.iter().enumerate() {
            if parse_header(h).is_none() {
                a.error(
                    &format!("req_headers[{i}]"),
                    format!("`{h}` is not a `Name: value` header"),
                );
            }
        }
        interval(&mut a, "healthy.interval", active.healthy.interval);
        interval(&mut a, "unhealthy.interval", active.unhealthy.interval);
        statuses(
            &mut a,
            "healthy.http_statuses",
            &active.healthy.http_statuses,
        );
        statuses(
            &mut a,
            "unhealthy.http_statuses",
            &active.unhealthy.http_statuses,
        );
        for (field, n) in [
            ("healthy.successes", active.healthy.successes),
            ("unhealthy.http_failures", active.unhealthy.http_failures),
            ("unhealthy.tcp_failures", active.unhealthy.tcp_failures),
            ("unhealthy.timeouts", active.unhealthy.timeouts),
        ] {
            if !(1..=254).contains(&n) {
                a.error(field, "must be 1-254");
            }
        }
        if let Some(passive) = &self.passive {
            let mut p = check.nested("passive");
            statuses(
                &mut p,
                "healthy.http_statuses",
                &passive.healthy.http_statuses,
            );
            statuses(
                &mut p,
                "unhealthy.http_statuses",
                &passive.unhealthy.http_statuses,
            );
            for (field, n) in [
                ("healthy.successes", passive.healthy.successes),
                ("unhealthy.http_failures", passive.unhealthy.http_failures),
                ("unhealthy.tcp_failures", passive.unhealthy.tcp_failures),
                ("unhealthy.timeouts", passive.unhealthy.timeouts),
            ] {
                if n > 254 {
                    p.error(field, "must be 0-254");
                }
            }
        }
    }
}

fn interval(check: &mut Checker<'_>, field: &str, v: f64) {
    if !(v >= MIN_INTERVAL && v.is_finite()) {
        check.error(
            field,
            format!("must be a number of at least {MIN_INTERVAL}"),
        );
    }
}

fn statuses(check: &mut Checker<'_>, field: &str, list: &[u16]) {
    if list.is_empty() {
        check.error(field, "must list at least one status");
    }
    for s in list {
        if !(200..=599).contains(s) {
            check.error(field, format!("status {s} is not 200-599"));
        }
    }
}

/// Splits `"Name: value"` into a valid header name and value.
pub fn parse_header(h: &str) -> Option<(http::HeaderName, http::HeaderValue)> {
    let (name, value) = h.split_once(':')?;
    let name = http::HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
    let value = http::HeaderValue::from_str(value.trim()).ok()?;
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigError;

    fn problems(json: &str) -> Vec<String> {
        let c: Checks = serde_json::from_str(json).expect("parses");
        let mut errors: Vec<ConfigError> = Vec::new();
        c.validate(&mut Checker::new("checks", &mut errors, &crate::NoPlugins));
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_are_apisix_defaults() {
        let c: Checks = serde_json::from_str(r#"{"active":{},"passive":{}}"#).expect("parses");
        let a = c.active.expect("active");
        assert_eq!(a.kind, ProbeKind::Http);
        assert_eq!((a.timeout, a.concurrency), (1.0, 10));
        assert_eq!((a.http_method.as_str(), a.http_path.as_str()), ("GET", "/"));
        assert!(a.https_verify_certificate);
        assert_eq!(a.healthy.interval, 1.0);
        assert_eq!(a.healthy.http_statuses, vec![200, 302]);
        assert_eq!(a.healthy.successes, 2);
        assert_eq!(
            a.unhealthy.http_statuses,
            vec![429, 404, 500, 501, 502, 503, 504, 505]
        );
        assert_eq!(
            (
                a.unhealthy.http_failures,
                a.unhealthy.tcp_failures,
                a.unhealthy.timeouts
            ),
            (5, 2, 3)
        );
        let p = c.passive.expect("passive");
        assert_eq!(p.healthy.successes, 5);
        assert_eq!(p.healthy.http_statuses.len(), 9 + 1 + 9);
        assert_eq!(p.unhealthy.http_statuses, vec![429, 500, 503]);
        assert_eq!(
            (
                p.unhealthy.http_failures,
                p.unhealthy.tcp_failures,
                p.unhealthy.timeouts
            ),
            (5, 2, 7)
        );
        assert!(problems(r#"{"active":{"type":"tcp"},"passive":{}}"#).is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        assert_eq!(
            problems(r#"{"passive":{}}"#),
            vec!["checks: checks.active is required"]
        );
        assert_eq!(
            problems(
                r#"{"active":{"timeout":0,"concurrency":0,"port":0,"http_path":"health",
                    "req_headers":["X-Ok: 1","broken"],
                    "healthy":{"interval":0,"successes":0,"http_statuses":[]},
                    "unhealthy":{"http_statuses":[99],"timeouts":255}},
                    "passive":{"unhealthy":{"tcp_failures":300}}}"#
            ),
            vec![
                "checks.active.timeout: must be a number greater than 0",
                "checks.active.concurrency: must be at least 1",
                "checks.active.port: must be 1-65535",
                "checks.active.http_path: `health` is not a path starting with `/`",
                "checks.active.req_headers[1]: `broken` is not a `Name: value` header",
                "checks.active.healthy.interval: must be a number of at least 0.1",
                "checks.active.healthy.http_statuses: must list at least one status",
                "checks.active.unhealthy.http_statuses: status 99 is not 200-599",
                "checks.active.healthy.successes: must be 1-254",
                "checks.active.unhealthy.timeouts: must be 1-254",
                "checks.passive.unhealthy.tcp_failures: must be 0-254",
            ]
        );
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        assert!(serde_json::from_str::<Checks>(r#"{"active":{"type":"udp"}}"#).is_err());
        assert!(serde_json::from_str::<Checks>(r#"{"active":{"bogus":1}}"#).is_err());
        assert!(
            serde_json::from_str::<Checks>(r#"{"active":{"healthy":{"successes":-1}}}"#).is_err()
        );
    }

    #[test]
    fn header_lines() {
        assert!(parse_header("X-A: b c").is_some());
        assert!(parse_header("X-A:b").is_some());
        assert!(parse_header("no colon").is_none());
        assert!(parse_header("bad name: v").is_none());
    }
}
