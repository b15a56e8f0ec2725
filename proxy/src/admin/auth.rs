//! Who may use the Admin API: the client address allow-list (`allow_admin`, loopback by default,
//! refused with 403) and API keys (`X-API-KEY` header, `api_key` query argument or `X-API-KEY`
//! cookie, in APISIX's lookup order: query, header, cookie) with the roles `admin` (every method)
//! and `viewer` (GET only), refused with 401 and APISIX's bodies.
//!
//! When no key is configured, a random admin key is generated at first start, kept in the data
//! directory (`admin_key`, mode 0600) and printed once; later starts reuse it without printing it.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use http::{HeaderMap, Method};
use ipnet::IpNet;
use rand::Rng;

use crate::config::{AdminKey, AdminRole, AdminSection};
use plugin_api::consumer::constant_time_eq;

/// The Admin API's access rules.
pub struct Auth {
    allow: Vec<IpNet>,
    keys: Vec<AdminKey>,
    required: bool,
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The client address is not allowed (403).
    Address,
    /// No key given (401).
    MissingKey,
    /// Unknown key (401).
    WrongKey,
    /// A viewer key with a method other than GET (401).
    ViewerMethod,
}

impl Refusal {
    /// APISIX's `description` of a 401.
    pub fn description(&self) -> &'static str {
        match self {
            Refusal::Address => "client address not allowed",
            Refusal::MissingKey => "missing apikey",
            Refusal::WrongKey => "wrong apikey",
            Refusal::ViewerMethod => "invalid method for role viewer",
        }
    }
}

/// The name of the file holding a generated key in the data directory.
const KEY_FILE: &str = "admin_key";

impl Auth {
    /// Rules from the config; `data_dir` keeps a generated key when none is configured.
    ///
    /// # Errors
    /// When a generated key cannot be read or written.
    pub fn new(config: &AdminSection, data_dir: &Path) -> std::io::Result<Auth> {
        let allow = config
            .allow_admin
            .iter()
            .filter_map(|n| model::parse_net(n))
            .collect();
        let keys = if config.admin_key.is_empty() && config.admin_key_required {
            vec![AdminKey {
                name: "admin".to_owned(),
                key: generated_key(data_dir)?,
                role: AdminRole::Admin,
            }]
        } else {
            config.admin_key.clone()
        };
        if !config.admin_key_required {
            tracing::warn!(
                "Admin API authentication is off (admin_key_required: false); loopback only"
            );
        }
        Ok(Auth {
            allow,
            keys,
            required: config.admin_key_required,
        })
    }

    /// Whether `ip` may reach the Admin API at all.
    pub fn address_allowed(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }

    /// Checks the key of a request; the role it grants (admin when keys are not required).
    ///
    /// # Errors
    /// Why it is refused.
    pub fn check(
        &self,
        method: &Method,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<AdminRole, Refusal> {
        if !self.required {
            return Ok(AdminRole::Admin);
        }
        let token = token(query, headers).ok_or(Refusal::MissingKey)?;
        let key = self
            .keys
            .iter()
            .find(|k| constant_time_eq(k.key.as_bytes(), token.as_bytes()))
            .ok_or(Refusal::WrongKey)?;
        if key.role == AdminRole::Viewer && method != Method::GET {
            return Err(Refusal::ViewerMethod);
        }
        Ok(key.role)
    }
}

/// The key of a request: `api_key` query argument, then `X-API-KEY` header, then cookie.
fn token(query: Option<&str>, headers: &HeaderMap) -> Option<String> {
    let from_query = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "api_key")
            .map(|(_, v)| v.into_owned())
    });
    let from_header = || {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let from_cookie = || {
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("x-api-key"))
            .map(|(_, v)| v.trim().to_owned())
    };
    from_query
        .or_else(from_header)
        .or_else(from_cookie)
        .filter(|t| !t.is_empty())
}

/// The key kept in `data_dir`, generated and printed once if absent.
fn generated_key(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join(KEY_FILE);
    if let Ok(text) = fs::read_to_string(&path) {
        let key = text.trim().to_owned();
        if !key.is_empty() {
            tracing::info!(file = %path.display(), "Admin API key read from the data directory");
            return Ok(key);
        }
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)?;
    let key: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    let tmp = data_dir.join(format!("{KEY_FILE}.tmp"));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(key.as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    // Printed once, on purpose: the operator needs it and nothing else shows it.
    eprintln!(
        "ferrogate: generated an Admin API key (kept in {}): {key}",
        path.display()
    );
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(keys: &[(&str, AdminRole)]) -> AdminSection {
        AdminSection {
            admin_key: keys
                .iter()
                .map(|(k, role)| AdminKey {
                    name: "n".into(),
                    key: (*k).into(),
                    role: *role,
                })
                .collect(),
            ..AdminSection::default()
        }
    }

    #[test]
    fn key_sources_and_roles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let auth = Auth::new(
            &section(&[
                ("adminkey1", AdminRole::Admin),
                ("viewkey12", AdminRole::Viewer),
            ]),
            dir.path(),
        )
        .expect("auth");
        let mut h = HeaderMap::new();
        assert_eq!(auth.check(&Method::GET, None, &h), Err(Refusal::MissingKey));
        h.insert("x-api-key", "nope".parse().expect("value"));
        assert_eq!(auth.check(&Method::GET, None, &h), Err(Refusal::WrongKey));
        assert_eq!(
            auth.check(&Method::GET, Some("api_key=adminkey1"), &h),
            Ok(AdminRole::Admin)
        );
        h.insert("x-api-key", "viewkey12".parse().expect("value"));
        assert_eq!(auth.check(&Method::GET, None, &h), Ok(AdminRole::Viewer));
        assert_eq!(
            auth.check(&Method::PUT, None, &h),
            Err(Refusal::ViewerMethod)
        );
        let mut c = HeaderMap::new();
        c.insert(
            http::header::COOKIE,
            "a=b; X-API-KEY=adminkey1".parse().expect("value"),
        );
        assert_eq!(auth.check(&Method::DELETE, None, &c), Ok(AdminRole::Admin));
        assert!(
            !dir.path().join(KEY_FILE).exists(),
            "no key generated when keys are configured"
        );
    }

    #[test]
    fn generated_key_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = generated_key(dir.path()).expect("key");
        assert_eq!(first.len(), 32);
        assert_eq!(generated_key(dir.path()).expect("key"), first);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn allow_list() {
        let dir = tempfile::tempdir().expect("tempdir");
        let auth =
            Auth::new(&section(&[("adminkey1", AdminRole::Admin)]), dir.path()).expect("auth");
        assert!(auth.address_allowed("127.0.0.1".parse().expect("ip")));
        assert!(auth.address_allowed("::ffff:127.0.0.1".parse().expect("ip")));
        assert!(auth.address_allowed("::1".parse().expect("ip")));
        assert!(!auth.address_allowed("10.0.0.1".parse().expect("ip")));
    }
}
