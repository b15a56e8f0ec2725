//! What a web page open in the operator's browser can make the Admin API do: nothing, unless
//! its origin is listed. A page can send requests to `127.0.0.1:9180` (a cross-site form or
//! `fetch`), or rebind its own DNS name to the loopback address and call it as its own origin;
//! these rules refuse both, whether or not keys are required:
//! - **Host**: the `Host` (and any absolute-form authority) must be an IP literal, `localhost` or a
//!   name in `allow_hosts`, else 403. DNS rebinding always arrives under the attacker's name; an
//!   IP literal cannot be rebound, so calling the Admin API by address keeps working.
//! - **Origin**: a write (any method but GET, HEAD and OPTIONS) from a browser page (an `Origin`
//!   header, or `Sec-Fetch-Site: cross-site`/`same-site`) is refused with 403 unless its origin is
//!   in `cors_origins` and `enable_admin_cors` is on. Only those origins get CORS headers.
//! - **Content type of writes**: `text/plain` and `multipart/*` (body types a page can send
//!   without a preflight, `text/plain` even from browsers that send no `Origin`) are refused with
//!   415; a browser write must be `application/json`. Without `Origin`, curl's default
//!   `application/x-www-form-urlencoded` and no content type are accepted, so APISIX's curl
//!   examples work unchanged (a browser form cannot turn such a body into JSON: it percent-encodes
//!   `{` and `"`).

use std::net::{Ipv4Addr, Ipv6Addr};

use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN};
use http::uri::Authority;
use http::{HeaderMap, Method, StatusCode, Uri};

use super::error;
use crate::config::AdminSection;
use crate::listener::FullResponse;

/// The browser-facing rules of one Admin API listener.
pub struct Browser {
    /// Lowercase names accepted in `Host` beside `localhost` and IP literals.
    hosts: Vec<String>,
    /// `allow_hosts` lists `*`: any name is accepted.
    any_host: bool,
    /// Lowercase origins that get CORS and may write (empty when CORS is off).
    origins: Vec<String>,
    /// `enable_admin_cors`: answer `OPTIONS` preflights.
    cors: bool,
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The `Host` is not an accepted name (403).
    Host(String),
    /// A write from a browser page of an origin not allowed (403).
    Origin(String),
    /// A write whose content type a page can send cross-site, or a browser write not JSON (415).
    MediaType(String),
}

impl Refused {
    /// The answer: a JSON error naming the rule and the setting that allows the request.
    pub fn reply(&self) -> FullResponse {
        match self {
            Refused::Host(host) => error(
                StatusCode::FORBIDDEN,
                &format!("403 Forbidden: Host `{host}` is not allowed to use the Admin API (add it to deployment.admin.allow_hosts)"),
            ),
            Refused::Origin(origin) => error(
                StatusCode::FORBIDDEN,
                &format!("403 Forbidden: origin `{origin}` is not allowed to write through the Admin API (add it to deployment.admin.cors_origins)"),
            ),
            Refused::MediaType(media) => error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("unsupported Content-Type `{media}`: send the body as application/json"),
            ),
        }
    }
}

impl Browser {
    /// The rules of `config`.
    pub fn new(config: &AdminSection) -> Browser {
        Browser {
            hosts: config
                .allow_hosts
                .iter()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            any_host: config.allow_hosts.iter().any(|h| h == "*"),
            origins: if config.enable_admin_cors {
                config
                    .cors_origins
                    .iter()
                    .map(|o| o.to_ascii_lowercase())
                    .collect()
            } else {
                Vec::new()
            },
            cors: config.enable_admin_cors,
        }
    }

    /// Whether `OPTIONS` preflights are answered.
    pub fn answers_preflight(&self) -> bool {
        self.cors
    }

    /// Whether answers depend on `Origin` (and carry `Vary: Origin` for caches).
    pub fn varies(&self) -> bool {
        !self.origins.is_empty()
    }

    /// Checks the `Host` header and any absolute-form authority; one of them must be present.
    ///
    /// # Errors
    /// The first name not accepted.
    pub fn check_host(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refused> {
        let from_uri = uri.authority().map(|a| a.as_str().to_owned());
        let from_header = headers
            .get_all(HOST)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let mut seen = false;
        for authority in from_uri.into_iter().chain(from_header) {
            seen = true;
            if !self.host_allowed(&authority) {
                return Err(Refused::Host(authority));
            }
        }
        if seen {
            Ok(())
        } else {
            Err(Refused::Host(String::new()))
        }
    }

    fn host_allowed(&self, authority: &str) -> bool {
        let Ok(parsed) = authority.parse::<Authority>() else {
            return false;
        };
        let host = parsed.host().trim_end_matches('.').to_ascii_lowercase();
        let ip_literal = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
            None => host.parse::<Ipv4Addr>().is_ok(),
        };
        ip_literal || host == "localhost" || self.any_host || self.hosts.contains(&host)
    }

    /// The request's `Origin` when it is allowed CORS (to echo in `Access-Control-Allow-Origin`).
    pub fn cors_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let mut all = headers.get_all(ORIGIN).iter();
        let origin = all.next()?;
        // Several `Origin` headers are not something a browser sends: no CORS for them.
        if all.next().is_some() || !self.origin_allowed(origin) {
            return None;
        }
        Some(origin.clone())
    }

    fn origin_allowed(&self, origin: &HeaderValue) -> bool {
        origin
            .to_str()
            .is_ok_and(|o| self.origins.contains(&o.to_ascii_lowercase()))
    }

    /// Checks a request's origin and body type (GET, HEAD and OPTIONS pass).
    ///
    /// # Errors
    /// Why the write is refused.
    pub fn check_write(&self, method: &Method, headers: &HeaderMap) -> Result<(), Refused> {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        let origins: Vec<&HeaderValue> = headers.get_all(ORIGIN).iter().collect();
        let fetch_site = headers
            .get(HeaderName::from_static("sec-fetch-site"))
            .map(HeaderValue::as_bytes);
        let from_browser =
            !origins.is_empty() || matches!(fetch_site, Some(b"cross-site" | b"same-site"));
        if from_browser {
            match origins.as_slice() {
                [one] if self.origin_allowed(one) => {}
                [one, ..] => {
                    return Err(Refused::Origin(
                        String::from_utf8_lossy(one.as_bytes()).into_owned(),
                    ))
                }
                // `Sec-Fetch-Site` without `Origin`: a browser that hid its origin.
                [] => return Err(Refused::Origin("(none)".to_owned())),
            }
        }
        // A DELETE is a write only when it carries a body (APISIX's scripts send none).
        if *method == Method::DELETE && !has_body(headers) {
            return Ok(());
        }
        let mut types = headers.get_all(CONTENT_TYPE).iter();
        let media = match (types.next(), types.next()) {
            (None, _) => None,
            (Some(one), None) => Some(essence(one)),
            (Some(one), Some(_)) => return Err(Refused::MediaType(essence(one))),
        };
        match media.as_deref() {
            Some("application/json") => Ok(()),
            Some(m) if m == "text/plain" || m.starts_with("multipart/") => {
                Err(Refused::MediaType(m.to_owned()))
            }
            other if from_browser => Err(Refused::MediaType(other.unwrap_or("(none)").to_owned())),
            _ => Ok(()),
        }
    }
}

/// The media type without parameters, lowercase (`Text/Plain; charset=x` → `text/plain`).
fn essence(value: &HeaderValue) -> String {
    let text = String::from_utf8_lossy(value.as_bytes());
    text.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether the request announces a body (a non-zero length, or chunked).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(origins: &[&str], hosts: &[&str], cors: bool) -> Browser {
        Browser::new(&AdminSection {
            cors_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            allow_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            enable_admin_cors: cors,
            ..AdminSection::default()
        })
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn hosts() {
        let b = rules(&[], &["Admin.Internal"], true);
        let uri: Uri = "/apisix/admin/routes".parse().expect("uri");
        for ok in [
            "127.0.0.1:9180",
            "localhost",
            "LOCALHOST:1",
            "localhost.",
            "[::1]:9180",
            "10.1.2.3",
            "admin.internal:9180",
        ] {
            assert_eq!(
                b.check_host(&uri, &headers(&[("host", ok)])),
                Ok(()),
                "{ok}"
            );
        }
        for bad in [
            "evil.example",
            "evil.example:9180",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "[::1",
            "",
        ] {
            assert!(
                b.check_host(&uri, &headers(&[("host", bad)])).is_err(),
                "{bad}"
            );
        }
        assert!(b.check_host(&uri, &HeaderMap::new()).is_err(), "no Host");
        assert!(
            b.check_host(
                &uri,
                &headers(&[("host", "127.0.0.1"), ("host", "evil.example")])
            )
            .is_err(),
            "every Host counts"
        );
        let absolute: Uri = "http://evil.example/apisix/admin/routes"
            .parse()
            .expect("uri");
        assert!(b
            .check_host(&absolute, &headers(&[("host", "127.0.0.1")]))
            .is_err());
        let any = rules(&[], &["*"], true);
        assert_eq!(
            any.check_host(&uri, &headers(&[("host", "svc.cluster.local")])),
            Ok(())
        );
    }

    #[test]
    fn origins_and_cors() {
        let b = rules(&["https://Dash.Example"], &[], true);
        let listed = headers(&[("origin", "https://dash.example")]);
        assert!(b.cors_origin(&listed).is_some());
        assert!(b
            .cors_origin(&headers(&[("origin", "http://evil.example")]))
            .is_none());
        assert!(b.cors_origin(&HeaderMap::new()).is_none());
        let off = rules(&["https://dash.example"], &[], false);
        assert!(off.cors_origin(&listed).is_none(), "CORS off: no origin");
        assert!(!rules(&[], &[], true).varies());
    }

    #[test]
    fn writes() {
        let b = rules(&["https://dash.example"], &[], true);
        let json = ("content-type", "application/json; charset=utf-8");
        let ok = |m: Method, h: &[(&str, &str)]| b.check_write(&m, &headers(h));
        // curl and scripts: no Origin.
        assert_eq!(ok(Method::PUT, &[]), Ok(()));
        assert_eq!(
            ok(
                Method::PUT,
                &[("content-type", "application/x-www-form-urlencoded")]
            ),
            Ok(())
        );
        assert_eq!(ok(Method::POST, &[json]), Ok(()));
        assert!(ok(Method::POST, &[("content-type", "text/plain")]).is_err());
        assert!(ok(
            Method::POST,
            &[("content-type", "Text/Plain;charset=UTF-8")]
        )
        .is_err());
        assert!(ok(
            Method::PATCH,
            &[("content-type", "multipart/form-data; boundary=x")]
        )
        .is_err());
        assert!(ok(Method::PUT, &[json, ("content-type", "text/plain")]).is_err());
        // Browsers.
        let evil = ("origin", "http://evil.example");
        assert!(matches!(
            ok(Method::POST, &[evil, json]),
            Err(Refused::Origin(_))
        ));
        assert!(ok(Method::DELETE, &[evil]).is_err());
        assert!(ok(Method::POST, &[("origin", "null"), json]).is_err());
        assert!(ok(Method::POST, &[("sec-fetch-site", "cross-site"), json]).is_err());
        assert_eq!(ok(Method::POST, &[("sec-fetch-site", "none")]), Ok(()));
        let dash = ("origin", "https://dash.example");
        assert_eq!(ok(Method::POST, &[dash, json]), Ok(()));
        assert!(
            ok(Method::POST, &[dash]).is_err(),
            "a browser write is JSON"
        );
        assert!(ok(
            Method::POST,
            &[dash, ("content-type", "application/x-www-form-urlencoded")]
        )
        .is_err());
        assert_eq!(ok(Method::DELETE, &[dash]), Ok(()));
        // Reads pass whatever their origin (the browser hides the answer without CORS).
        assert_eq!(ok(Method::GET, &[evil]), Ok(()));
        // A DELETE with a body follows the write rules.
        assert!(ok(
            Method::DELETE,
            &[("content-length", "5"), ("content-type", "text/plain")]
        )
        .is_err());
        assert_eq!(
            ok(
                Method::DELETE,
                &[("content-length", "0"), ("content-type", "text/plain")]
            ),
            Ok(())
        );
    }
}
