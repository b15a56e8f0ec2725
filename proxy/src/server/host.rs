//! The request's Host, checked and normalised once, as nginx builds `$host`.
//!
//! Every decision that looks at the host (the router, the mTLS gate, `vars`' `$host`, plugins,
//! loggers) uses the one [`Host`] made here, so a route or a client-certificate requirement
//! cannot be dodged by spelling the host differently (`SECURE.LOCAL.`, `secure.local:08080`):
//! 1. the authority comes from HTTP/2's `:authority` or an absolute-form request-target when
//!    present (RFC 9113 8.3.1, RFC 9112 3.2.2), else from the `Host` header; the request's
//!    `Host` header is then made equal to it, so `$http_host`, plugins and the upstream agree;
//! 2. an HTTP/1.1 (or later) request needs exactly one host (no `Host`, or two `Host` headers,
//!    is a 400, as RFC 9112 3.2 and nginx); HTTP/1.0 may omit it;
//! 3. the name is lower-cased and loses one trailing dot; the port is split off and written
//!    without leading zeros;
//! 4. anything that is not `name[:port]` is a 400: a name is dot-separated non-empty labels of
//!    ASCII letters, digits, `-` and `_`, or a bracketed IPv6 address; a port is at most five
//!    digits up to 65535 (`name:` with an empty port is the name alone, as RFC 3986 allows).

use std::borrow::Cow;
use std::net::Ipv6Addr;

use http::header::{HeaderValue, HOST};
use http::request::Parts;
use http::Version;

use crate::router::split_port;

/// Why a request's host was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// An HTTP/1.1 or HTTP/2 request without a host.
    #[error("the request has no Host")]
    Missing,
    /// More than one `Host` header.
    #[error("the request has more than one Host header")]
    Duplicate,
    /// The name is empty or holds characters a host name cannot.
    #[error("invalid host name")]
    BadName,
    /// The port is not a number up to 65535.
    #[error("invalid port in the Host")]
    BadPort,
}

/// A normalised host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Host<'a> {
    /// Lower case, without the port and the trailing dot; an IPv6 address keeps its brackets.
    /// Empty for an HTTP/1.0 request that sent no host.
    pub name: Cow<'a, str>,
    /// `name:port` when the client gave a port, else `name` (for route hosts written with a
    /// port).
    pub with_port: Cow<'a, str>,
}

/// Checks and normalises a host as sent (`name[:port]`).
///
/// # Errors
/// [`HostError::BadName`] or [`HostError::BadPort`] for what is not `name[:port]`.
pub fn normalize(raw: &str) -> Result<Host<'_>, HostError> {
    let (sent_name, port) = split_port(raw);
    let name = normalize_name(sent_name)?;
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(parse_port(p)?),
    };
    let with_port = match port {
        None => name.clone(),
        // Already canonical (lower case, no trailing dot, no leading zeros): the text as sent.
        Some((_, true)) if *name == *sent_name => Cow::Borrowed(raw),
        Some((port, _)) => Cow::Owned(format!("{name}:{port}")),
    };
    Ok(Host { name, with_port })
}

/// The port's number and whether `text` is its canonical spelling.
fn parse_port(text: &str) -> Result<(u16, bool), HostError> {
    if text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::BadPort);
    }
    let port: u16 = text.parse().map_err(|_| HostError::BadPort)?;
    Ok((port, !(text.len() > 1 && text.starts_with('0'))))
}

fn normalize_name(name: &str) -> Result<Cow<'_, str>, HostError> {
    if let Some(inner) = name.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(HostError::BadName)?;
        // Zone identifiers and IPvFuture literals are refused by the address parser.
        inner.parse::<Ipv6Addr>().map_err(|_| HostError::BadName)?;
        return Ok(lowercase(name));
    }
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !trimmed.split('.').all(label_ok) {
        return Err(HostError::BadName);
    }
    Ok(lowercase(trimmed))
}

fn lowercase(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// The request's authority as sent (see the module docs for where it comes from), with the
/// request's `Host` header set to it; `None` for an HTTP/1.0 request without one.
///
/// # Errors
/// [`HostError::Duplicate`] for two `Host` headers, [`HostError::Missing`] for an HTTP/1.1
/// request without a `Host` header or an HTTP/2 request without `:authority` and `Host`.
pub fn authority(parts: &mut Parts) -> Result<Option<HeaderValue>, HostError> {
    let mut sent = parts.headers.get_all(HOST).iter();
    let header = sent.next().cloned();
    if sent.next().is_some() {
        return Err(HostError::Duplicate);
    }
    let from_target = parts
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    let needs_header = parts.version == Version::HTTP_11;
    let needs_host = parts.version > Version::HTTP_10;
    match (from_target, header) {
        (_, None) if needs_header => Err(HostError::Missing),
        (None, None) if needs_host => Err(HostError::Missing),
        (None, None) => Ok(None),
        (None, Some(header)) => Ok(Some(header)),
        (Some(target), header) => {
            if header.as_ref() != Some(&target) {
                parts.headers.insert(HOST, target.clone());
            }
            Ok(Some(target))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(name, with_port)` or the error.
    type Want = Result<(&'static str, &'static str), HostError>;

    #[test]
    fn normalize_table() {
        let cases: &[(&str, Want)] = &[
            ("secure.local", Ok(("secure.local", "secure.local"))),
            ("secure.local.", Ok(("secure.local", "secure.local"))),
            ("SECURE.LOCAL.", Ok(("secure.local", "secure.local"))),
            (
                "Secure.Local:8080",
                Ok(("secure.local", "secure.local:8080")),
            ),
            (
                "secure.local.:8080",
                Ok(("secure.local", "secure.local:8080")),
            ),
            (
                "secure.local:08080",
                Ok(("secure.local", "secure.local:8080")),
            ),
            ("secure.local:0", Ok(("secure.local", "secure.local:0"))),
            (
                "secure.local:65535",
                Ok(("secure.local", "secure.local:65535")),
            ),
            ("secure.local:", Ok(("secure.local", "secure.local"))),
            ("a_b-c.d", Ok(("a_b-c.d", "a_b-c.d"))),
            ("127.0.0.1:9080", Ok(("127.0.0.1", "127.0.0.1:9080"))),
            ("localhost", Ok(("localhost", "localhost"))),
            ("[::1]", Ok(("[::1]", "[::1]"))),
            ("[::1]:80", Ok(("[::1]", "[::1]:80"))),
            ("[FE80::1]:80", Ok(("[fe80::1]", "[fe80::1]:80"))),
            ("secure.local:abc", Err(HostError::BadPort)),
            ("secure.local:65536", Err(HostError::BadPort)),
            ("secure.local:000080", Err(HostError::BadPort)),
            ("secure.local:-1", Err(HostError::BadPort)),
            ("secure.local:+80", Err(HostError::BadPort)),
            ("secure.local: 80", Err(HostError::BadPort)),
            ("[::1]:x", Err(HostError::BadPort)),
            ("", Err(HostError::BadName)),
            (".", Err(HostError::BadName)),
            (":80", Err(HostError::BadName)),
            ("secure..local", Err(HostError::BadName)),
            (".secure.local", Err(HostError::BadName)),
            ("secure.local..", Err(HostError::BadName)),
            ("secure local", Err(HostError::BadName)),
            ("secure.local/x", Err(HostError::BadName)),
            ("secure.local\\x", Err(HostError::BadName)),
            ("user@secure.local", Err(HostError::BadName)),
            ("secure.local:80:80", Err(HostError::BadName)),
            ("*.local", Err(HostError::BadName)),
            ("caf\u{e9}.local", Err(HostError::BadName)),
            ("secure%2elocal", Err(HostError::BadName)),
            ("[::1", Err(HostError::BadName)),
            ("[::1]x", Err(HostError::BadName)),
            ("[secure.local]", Err(HostError::BadName)),
            ("[fe80::1%25eth0]", Err(HostError::BadName)),
            ("::1", Err(HostError::BadName)),
        ];
        for (raw, want) in cases {
            let got = normalize(raw);
            let got = got
                .as_ref()
                .map(|h| (&*h.name, &*h.with_port))
                .map_err(|e| *e);
            assert_eq!(got, *want, "normalize({raw:?})");
        }
    }

    #[test]
    fn canonical_hosts_are_borrowed() {
        let h = normalize("a.com:80").expect("valid");
        assert!(matches!(h.name, Cow::Borrowed(_)));
        assert!(matches!(h.with_port, Cow::Borrowed(_)));
        assert!(matches!(
            normalize("A.com").expect("valid").name,
            Cow::Owned(_)
        ));
    }

    fn parts(version: Version, uri: &str, hosts: &[&str]) -> Parts {
        let mut req = http::Request::builder().version(version).uri(uri);
        for h in hosts {
            req = req.header(HOST, *h);
        }
        req.body(()).expect("request").into_parts().0
    }

    #[test]
    fn authority_rules() {
        let got = |version, uri, hosts: &[&str]| {
            let mut p = parts(version, uri, hosts);
            let a = authority(&mut p);
            let header = p.headers.get(HOST).cloned();
            (a, header)
        };
        let hv = |s: &'static str| Some(HeaderValue::from_static(s));
        assert_eq!(
            got(Version::HTTP_11, "/", &["a.com"]),
            (Ok(hv("a.com")), hv("a.com"))
        );
        assert_eq!(got(Version::HTTP_11, "/", &[]).0, Err(HostError::Missing));
        assert_eq!(
            got(Version::HTTP_11, "http://a.com/", &[]).0,
            Err(HostError::Missing)
        );
        assert_eq!(
            got(Version::HTTP_11, "/", &["a.com", "b.com"]).0,
            Err(HostError::Duplicate)
        );
        assert_eq!(
            got(Version::HTTP_2, "/", &["a.com", "a.com"]).0,
            Err(HostError::Duplicate)
        );
        assert_eq!(got(Version::HTTP_10, "/", &[]), (Ok(None), None));
        // The request-target's authority wins, and the Host header follows it.
        assert_eq!(
            got(Version::HTTP_11, "http://a.com/", &["b.com"]),
            (Ok(hv("a.com")), hv("a.com"))
        );
        assert_eq!(
            got(Version::HTTP_2, "http://a.com/", &["b.com"]),
            (Ok(hv("a.com")), hv("a.com"))
        );
        assert_eq!(
            got(Version::HTTP_2, "http://a.com/", &[]),
            (Ok(hv("a.com")), hv("a.com"))
        );
        assert_eq!(
            got(Version::HTTP_2, "/", &["b.com"]),
            (Ok(hv("b.com")), hv("b.com"))
        );
        assert_eq!(got(Version::HTTP_2, "/", &[]).0, Err(HostError::Missing));
    }
}
