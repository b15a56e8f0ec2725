//! `real-ip` (priority 23000, rewrite): takes the client address from a request variable.
//!
//! Config: `source` (required: a variable such as `http_x_real_ip`, `arg_realip`, or
//! `http_x_forwarded_for`, whose last address is used), `trusted_addresses` (IPs or CIDRs: when
//! set, only requests whose peer is one of them are changed), `recursive` (default false: with
//! `http_x_forwarded_for` and `trusted_addresses`, the right-most address that is not trusted,
//! or the left-most if all are). The value may be `ip`, `ip:port`, `[v6]` or `[v6]:port`; one
//! that is not an address (or has port 0) leaves the client as it was.
//!
//! The new address is what later plugins see (`ip-restriction`, `remote_addr` in limit keys and
//! `vars`), what the log phase and the access log record, and what goes upstream in `X-Real-IP`
//! and at the end of `X-Forwarded-For`. Limit: `remote_port` stays the peer's port.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::header::HeaderName;
use ipnet::IpNet;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{parse_conf, Flow, Plugin, PluginKind, RequestCtx};
use crate::model::parse_net;

/// The kind.
pub struct RealIp;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Conf {
    /// The variable holding the client address.
    #[schemars(length(min = 1))]
    source: String,
    /// Peers allowed to set the client address (IPs or CIDRs, at least one).
    #[schemars(length(min = 1))]
    trusted_addresses: Option<Vec<String>>,
    /// With `http_x_forwarded_for`: skip trusted addresses from the right.
    #[serde(default)]
    recursive: bool,
}

struct Instance {
    source: String,
    trusted: Option<Vec<IpNet>>,
    recursive: bool,
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

impl PluginKind for RealIp {
    fn name(&self) -> &'static str {
        "real-ip"
    }

    fn priority(&self) -> i32 {
        23000
    }

    fn schema(&self) -> Value {
        crate::model::schema_of::<Conf>()
    }

    fn build(&self, conf: &Value) -> Result<Arc<dyn Plugin>, String> {
        let conf: Conf = parse_conf(conf)?;
        if conf.source.is_empty() {
            return Err("property \"source\" validation failed: string too short, expected at least 1, got 0".to_owned());
        }
        let trusted = match conf.trusted_addresses {
            None => None,
            Some(list) if list.is_empty() => {
                return Err("property \"trusted_addresses\" validation failed: expect array to have at least 1 items".to_owned())
            }
            Some(list) => Some(
                list.iter()
                    .map(|a| parse_net(a).ok_or_else(|| format!("invalid ip address: {a}")))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(Arc::new(Instance {
            source: conf.source,
            trusted,
            recursive: conf.recursive,
        }))
    }
}

/// The address (IPv4-mapped IPv6 as IPv4) in `ip`, `ip:port`, `[v6]` or `[v6]:port`; `None` for anything else or port 0.
fn parse_addr(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return (sa.port() != 0).then(|| sa.ip().to_canonical());
    }
    text.strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse::<std::net::Ipv6Addr>().ok())
        .map(|v6| IpAddr::V6(v6).to_canonical())
}

impl Instance {
    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted
            .as_ref()
            .is_some_and(|nets| nets.iter().any(|n| n.contains(&ip)))
    }

    /// The address text `source` gives for this request.
    fn address(&self, req: &RequestCtx<'_>) -> Option<String> {
        if self.source != "http_x_forwarded_for" {
            return req.vars.get(&self.source).map(|v| v.into_owned());
        }
        let chain = req
            .headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        let addrs: Vec<&str> = chain.split(',').map(str::trim).collect();
        let last = addrs.last().copied().filter(|_| !chain.is_empty())?;
        if !(self.recursive && self.trusted.is_some()) {
            return Some(last.to_owned());
        }
        let untrusted = addrs
            .iter()
            .skip(1)
            .rev()
            .find(|a| parse_addr(a).is_none_or(|ip| !self.trusts(ip)));
        Some(untrusted.copied().unwrap_or(addrs[0]).to_owned())
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    async fn rewrite(&self, req: &mut RequestCtx<'_>) -> Flow {
        if self.trusted.is_some() && !self.trusts(req.client) {
            return Flow::Continue;
        }
        let Some(text) = self.address(req) else {
            tracing::debug!(source = %self.source, "real-ip: missing real address");
            return Flow::Continue;
        };
        let Some(ip) = parse_addr(&text) else {
            tracing::debug!(address = %text, "real-ip: bad address");
            return Flow::Continue;
        };
        req.client = ip;
        req.vars.set_remote_addr(ip);
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::Fake;
    use serde_json::json;

    fn build(conf: Value) -> Arc<dyn Plugin> {
        RealIp.build(&conf).expect("valid config")
    }

    /// The client after `rewrite` on a request from 127.0.0.1 (the harness's peer).
    async fn client(conf: Value, fake: &mut Fake) -> IpAddr {
        let plugin = build(conf);
        let mut ctx = fake_ctx(fake);
        assert!(matches!(plugin.rewrite(&mut ctx).await, Flow::Continue));
        ctx.client
    }

    fn fake_ctx(fake: &mut Fake) -> RequestCtx<'_> {
        RequestCtx {
            vars: &fake.vars,
            client: "127.0.0.1".parse().expect("ip"),
            headers: &mut fake.headers,
            response_headers: &mut fake.response_headers,
            rewrite: &mut fake.rewrite,
            body: &mut fake.body,
            consumers: &fake.consumers,
            consumer: &mut fake.consumer,
            state: &mut fake.state,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn configs_are_checked() {
        assert!(RealIp.build(&json!({"source": "http_x_real_ip"})).is_ok());
        assert!(RealIp
            .build(&json!({"source": "http_x_forwarded_for", "trusted_addresses": ["127.0.0.1", "10.0.0.0/8", "::1"], "recursive": true}))
            .is_ok());
        for bad in [
            json!({}),
            json!({"source": ""}),
            json!({"source": 1}),
            json!({"source": "arg_ip", "trusted_addresses": []}),
            json!({"source": "arg_ip", "trusted_addresses": ["1.2.3.400"]}),
            json!({"source": "arg_ip", "recursive": "yes"}),
            json!({"source": "arg_ip", "other": 1}),
        ] {
            assert!(RealIp.build(&bad).is_err(), "{bad}");
        }
        assert_eq!(
            RealIp
                .build(&json!({"source": "arg_ip", "trusted_addresses": ["nope"]}))
                .err()
                .as_deref(),
            Some("invalid ip address: nope")
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_addr("1.2.3.4"), Some(ip("1.2.3.4")));
        assert_eq!(parse_addr(" 1.2.3.4:80 "), Some(ip("1.2.3.4")));
        assert_eq!(parse_addr("1.2.3.4:0"), None);
        assert_eq!(parse_addr("1.2.3.4:70000"), None);
        assert_eq!(parse_addr("::1"), Some(ip("::1")));
        assert_eq!(parse_addr("[::1]"), Some(ip("::1")));
        assert_eq!(parse_addr("[::1]:8080"), Some(ip("::1")));
        assert_eq!(parse_addr("::ffff:1.2.3.4"), Some(ip("1.2.3.4")));
        assert_eq!(parse_addr("unknown"), None);
        assert_eq!(parse_addr(""), None);
    }

    #[tokio::test]
    async fn sources() {
        let mut f = Fake::new(&[("http_x_real_ip", "1.1.1.1"), ("arg_realip", "2.2.2.2:99")]);
        assert_eq!(
            client(json!({"source": "http_x_real_ip"}), &mut f).await,
            ip("1.1.1.1")
        );
        assert_eq!(
            client(json!({"source": "arg_realip"}), &mut f).await,
            ip("2.2.2.2")
        );
        assert_eq!(
            client(json!({"source": "http_x_missing"}), &mut f).await,
            ip("127.0.0.1"),
            "nothing there: unchanged"
        );
        let mut bad = Fake::new(&[("http_x_real_ip", "not-an-ip")]);
        assert_eq!(
            client(json!({"source": "http_x_real_ip"}), &mut bad).await,
            ip("127.0.0.1")
        );
    }

    #[tokio::test]
    async fn forwarded_for_takes_the_last_address() {
        let mut f = Fake::new(&[("http_x_forwarded_for", "3.3.3.3, 4.4.4.4,  5.5.5.5")]);
        assert_eq!(
            client(json!({"source": "http_x_forwarded_for"}), &mut f).await,
            ip("5.5.5.5")
        );
        // Several headers are one list.
        f.headers
            .append("x-forwarded-for", "6.6.6.6".parse().expect("v"));
        assert_eq!(
            client(json!({"source": "http_x_forwarded_for"}), &mut f).await,
            ip("6.6.6.6")
        );
        let mut empty = Fake::new(&[]);
        assert_eq!(
            client(json!({"source": "http_x_forwarded_for"}), &mut empty).await,
            ip("127.0.0.1")
        );
    }

    #[tokio::test]
    async fn trusted_and_recursive() {
        let xff = [(
            "http_x_forwarded_for",
            "1.1.1.1, 2.2.2.2, 10.0.0.2, 10.0.0.3",
        )];
        let mut f = Fake::new(&xff);
        // The peer (127.0.0.1) is not trusted: unchanged.
        assert_eq!(
            client(
                json!({"source": "http_x_forwarded_for", "trusted_addresses": ["10.0.0.0/8"]}),
                &mut f
            )
            .await,
            ip("127.0.0.1")
        );
        let trusted = json!({"source": "http_x_forwarded_for", "trusted_addresses": ["127.0.0.1", "10.0.0.0/8"]});
        assert_eq!(
            client(trusted.clone(), &mut f).await,
            ip("10.0.0.3"),
            "not recursive: the last"
        );
        let mut recursive = trusted.clone();
        recursive["recursive"] = json!(true);
        assert_eq!(client(recursive.clone(), &mut f).await, ip("2.2.2.2"));
        let mut all_trusted = Fake::new(&[("http_x_forwarded_for", "10.0.0.1, 10.0.0.2")]);
        assert_eq!(
            client(recursive.clone(), &mut all_trusted).await,
            ip("10.0.0.1")
        );
        // recursive without trusted_addresses is plain "last".
        assert_eq!(
            client(
                json!({"source": "http_x_forwarded_for", "recursive": true}),
                &mut f
            )
            .await,
            ip("10.0.0.3")
        );
        // A garbage entry counts as untrusted and then is not an address: unchanged.
        let mut garbage = Fake::new(&[("http_x_forwarded_for", "1.1.1.1, junk, 10.0.0.2")]);
        assert_eq!(client(recursive, &mut garbage).await, ip("127.0.0.1"));
    }
}
