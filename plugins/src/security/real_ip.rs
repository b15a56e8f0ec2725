//! `real-ip` (priority 23000, rewrite): takes the client address from a request variable.
//!
//! Config: `source` (required: a variable such as `http_x_real_ip`, `arg_realip`, or
//! `http_x_forwarded_for`, whose last address is used), `trusted_addresses` (IPs or CIDRs: when
//! set, only requests whose peer is one of them are changed), `recursive` (default false: with
//! `http_x_forwarded_for` and `trusted_addresses`, the right-most address that is not trusted,
//! or the left-most if all are). The value may be `ip`, `ip:port`, `v6`, `[v6]` or `[v6]:port`
//! (read as APISIX's `core.utils.parse_addr`); one that is not an address, or whose port is
//! outside 1-65535, leaves the client as it was. A port that is not a number is ignored (the
//! address is still taken), as APISIX's `tonumber`.
//!
//! The new address is what later plugins see (`ip-restriction`, `remote_addr` in limit keys and
//! `vars`), what the log phase and the access log record, and what goes upstream in `X-Real-IP`
//! and at the end of `X-Forwarded-For`. A port in the value becomes `remote_port`; without one,
//! `remote_port` stays the peer's port (as APISIX's `set_real_ip`).

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use http::header::HeaderName;
use ipnet::IpNet;
use schemars::JsonSchema;
use serde::Deserialize;

use model::parse_net;
use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, RequestCtx};

/// The kind.
pub struct RealIp;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    /// The variable holding the client address.
    #[schemars(length(min = 1))]
    source: String,
    /// Peers allowed to set the client address (IPs or CIDRs, at least one).
    #[serde(default)]
    #[schemars(schema_with = "crate::support::schema::ip_list")]
    trusted_addresses: Option<Vec<String>>,
    /// With `http_x_forwarded_for`: skip trusted addresses from the right.
    #[serde(default)]
    recursive: bool,
}

/// A configured instance (the checked config).
pub struct Instance {
    source: String,
    trusted: Option<Vec<IpNet>>,
    recursive: bool,
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

impl Kind for RealIp {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "real-ip";
    const PRIORITY: i32 = 23000;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
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
        Ok(Instance {
            source: conf.source,
            trusted,
            recursive: conf.recursive,
        })
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

/// The address (IPv4-mapped IPv6 as IPv4) and port in a value, as APISIX splits it
/// (`core.utils.parse_addr`) and checks it: `[v6]` / `[v6]:port`; else, when a `.` comes before a
/// second `:`, `v4` / `v4:port`; else a bare IPv6 address. `None` for a value that is not an
/// address or whose port is outside 1-65535; a port that is not a number counts as none.
fn parse_addr(text: &str) -> Option<(IpAddr, Option<u16>)> {
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        match rest.rsplit_once("]:") {
            Some((v6, port)) => (v6, Some(port)),
            None => (rest.strip_suffix(']')?, None),
        }
    } else {
        let dot = text.find('.').unwrap_or(text.len());
        let v6 = text.match_indices(':').nth(1).is_some_and(|(i, _)| i < dot);
        if v6 {
            (text, None)
        } else {
            match text.split_once(':') {
                Some((v4, port)) => (v4, Some(port)),
                None => (text, None),
            }
        }
    };
    let bracketed = text.starts_with('[');
    let ip = if bracketed {
        IpAddr::V6(host.parse::<Ipv6Addr>().ok()?)
    } else {
        host.parse::<IpAddr>().ok()?
    };
    // APISIX's `tonumber`: not a number, no port; a number outside 1-65535 refuses the value.
    let port = match port.map(|p| p.parse::<u64>()) {
        Some(Ok(p)) => Some(u16::try_from(p).ok().filter(|&p| p != 0)?),
        Some(Err(_)) | None => None,
    };
    Some((ip.to_canonical(), port))
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
            .find(|a| parse_addr(a).is_none_or(|(ip, _)| !self.trusts(ip)));
        Some(untrusted.copied().unwrap_or(addrs[0]).to_owned())
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::REWRITE
    }

    async fn rewrite(&self, req: &mut RequestCtx<'_>) -> Flow {
        if self.trusted.is_some() && !self.trusts(req.client) {
            return Flow::Continue;
        }
        let Some(text) = self.address(req) else {
            tracing::debug!(source = %self.source, "real-ip: missing real address");
            return Flow::Continue;
        };
        let Some((ip, port)) = parse_addr(&text) else {
            tracing::debug!(address = %text, "real-ip: bad address");
            return Flow::Continue;
        };
        req.set_client(ip, port);
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::Fake;
    use plugin_api::PluginKind;
    use serde_json::json;
    use serde_json::Value;

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
            client_set: &fake.client_set,
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
        let at = |s: &str, port: Option<u16>| Some((ip(s), port));
        assert_eq!(parse_addr("1.2.3.4"), at("1.2.3.4", None));
        // real-ip.t TEST 4 and TEST 13: the port is taken.
        assert_eq!(parse_addr(" 1.1.1.1:80 "), at("1.1.1.1", Some(80)));
        assert_eq!(parse_addr("1.1.1.1:7090"), at("1.1.1.1", Some(7090)));
        // real-ip.t TEST 6 and TEST 7: a bad address or port changes nothing.
        assert_eq!(parse_addr("1.1.1.1.1"), None);
        assert_eq!(parse_addr("1.1.1.1:65536"), None);
        assert_eq!(parse_addr("1.2.3.4:0"), None);
        assert_eq!(
            parse_addr("1.2.3.4:abc"),
            at("1.2.3.4", None),
            "not a number: no port (APISIX's tonumber)"
        );
        // real-ip.t TEST 9-11: IPv6, bare, bracketed, with a port.
        assert_eq!(parse_addr("::2"), at("::2", None));
        assert_eq!(parse_addr("[::2]"), at("::2", None));
        assert_eq!(parse_addr("[::2]:80"), at("::2", Some(80)));
        assert_eq!(parse_addr("[::1]:65536"), None);
        assert_eq!(parse_addr("[::1"), None);
        assert_eq!(parse_addr("[1.2.3.4]"), None, "brackets hold IPv6 only");
        assert_eq!(parse_addr("::ffff:1.2.3.4"), at("1.2.3.4", None));
        assert_eq!(parse_addr("2001:db8::1"), at("2001:db8::1", None));
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
        // Set for the rest of the request, with the port.
        assert_eq!(f.client_set.get(), Some(ip("2.2.2.2")));
        assert_eq!(f.client_set.port(), Some(99));
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
