//! `tenant-header`: a Rust plugin written in its own crate against `ferrogate-plugin-api`, served
//! by this crate's binary (`src/main.rs`: the `ferrogate` command with this plugin added).
//!
//! The plugin reads the tenant from a request header and refuses, with 403 and
//! `{"message": ...}`, a request without one (when `required`) or with one not in `allowed`.
//! A request it lets through keeps its tenant in the per-request state, and `header_filter`
//! copies it onto the response, whoever answered.
//!
//! Config: `header` (default `X-Tenant`), `required` (default true), `allowed` (the tenants let
//! through; empty or absent: any tenant).
//!
//! ```yaml
//! plugins:
//!   tenant-header: {header: X-Tenant, allowed: [acme, globex]}
//! ```

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::StatusCode;
use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, Reply, RequestCtx, ResponseCtx};
use schemars::JsonSchema;
use serde::Deserialize;

/// The `tenant-header` plugin kind: what the gateway registers (`.plugin(Arc::new(TenantHeader))`).
/// It is written as a [`Kind`] (a typed config, checked apart from building an instance), so it
/// is a `PluginKind` too.
pub struct TenantHeader;

/// The config, as routes, services, plugin configs and global rules give it.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    /// The request header holding the tenant, copied onto the response.
    #[serde(default = "default_header")]
    header: String,
    /// Whether a request without the header is refused.
    #[serde(default = "plugin_api::schema::yes")]
    required: bool,
    /// The tenants let through; empty: any.
    #[serde(default)]
    allowed: Vec<String>,
}

fn default_header() -> String {
    "X-Tenant".to_owned()
}

/// One configured instance: the config checked and turned into header types once, before any
/// request, so requests only compare bytes.
pub struct Instance {
    header: HeaderName,
    required: bool,
    allowed: Vec<HeaderValue>,
}

/// The tenant of the request being served, kept for `header_filter`.
#[derive(Clone)]
struct Tenant(HeaderValue);

impl Kind for TenantHeader {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "tenant-header";
    /// Runs after the authentication plugins (2500 and up) and before the limits (1000s).
    const PRIORITY: i32 = 2450;

    /// What the schema cannot say: the header name and the tenants must be usable in headers.
    /// The Admin API and `validate` run this; so does the snapshot builder before `instance`.
    fn check(&self, conf: Conf) -> Result<Instance, String> {
        let header = HeaderName::from_bytes(conf.header.as_bytes())
            .map_err(|_| format!("invalid header name `{}`", conf.header))?;
        let allowed = conf
            .allowed
            .iter()
            .map(|tenant| match HeaderValue::from_str(tenant) {
                Ok(value) if !tenant.is_empty() => Ok(value),
                _ => Err(format!("allowed: `{tenant}` is not a header value")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Instance {
            header,
            required: conf.required,
            allowed,
        })
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::ACCESS | Phases::HEADER_FILTER
    }

    async fn access(&self, req: &mut RequestCtx<'_>) -> Flow {
        let tenant = match req.headers.get(&self.header) {
            Some(value) if !value.is_empty() => value.clone(),
            _ if self.required => {
                return refuse(&format!("missing tenant header {}", self.header));
            }
            _ => return Flow::Continue,
        };
        if !self.allowed.is_empty() && !self.allowed.contains(&tenant) {
            return refuse("tenant not allowed");
        }
        req.state.insert(Tenant(tenant));
        Flow::Continue
    }

    fn header_filter(&self, resp: &mut ResponseCtx<'_>) {
        if let Some(Tenant(tenant)) = resp.state.get::<Tenant>() {
            resp.headers.insert(self.header.clone(), tenant.clone());
        }
    }
}

fn refuse(message: &str) -> Flow {
    Flow::Respond(Reply::message(StatusCode::FORBIDDEN, message))
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;
    use plugin_api::testing::{header, Fake};
    use plugin_api::PluginKind;
    use serde_json::{json, Value};

    use super::*;

    fn plugin(conf: Value) -> Arc<dyn Plugin> {
        match TenantHeader.build(&conf) {
            Ok(plugin) => plugin,
            Err(e) => panic!("{conf} refused: {e}"),
        }
    }

    fn body(reply: &Reply) -> Value {
        serde_json::from_slice(&reply.body).unwrap_or_default()
    }

    #[tokio::test]
    async fn an_allowed_tenant_passes_and_comes_back_on_the_response() {
        let p = plugin(json!({"allowed": ["acme", "globex"]}));
        let mut req = Fake::new(&[("http_x_tenant", "acme")]);
        assert_eq!(req.access(p.as_ref()).await, None);
        let headers = req.header_filter(p.as_ref(), StatusCode::OK, HeaderMap::new());
        assert_eq!(header(&headers, "x-tenant"), Some("acme"));
    }

    #[tokio::test]
    async fn a_missing_or_unknown_tenant_is_refused_with_403() {
        let p = plugin(json!({"allowed": ["acme"]}));
        let reply = Fake::new(&[]).access(p.as_ref()).await.expect("refused");
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(body(&reply)["message"], "missing tenant header x-tenant");

        let mut req = Fake::new(&[("http_x_tenant", "initech")]);
        let reply = req.access(p.as_ref()).await.expect("refused");
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(body(&reply)["message"], "tenant not allowed");
        let headers = req.header_filter(p.as_ref(), StatusCode::FORBIDDEN, HeaderMap::new());
        assert_eq!(header(&headers, "x-tenant"), None, "no tenant on a refusal");
    }

    #[tokio::test]
    async fn optional_tenant_and_own_header_name() {
        let p = plugin(json!({"header": "X-Org", "required": false}));
        let mut req = Fake::new(&[]);
        assert_eq!(req.access(p.as_ref()).await, None);
        let headers = req.header_filter(p.as_ref(), StatusCode::OK, HeaderMap::new());
        assert!(headers.is_empty());

        let mut req = Fake::new(&[("http_x_org", "anyone")]);
        assert_eq!(req.access(p.as_ref()).await, None);
        let headers = req.header_filter(p.as_ref(), StatusCode::OK, HeaderMap::new());
        assert_eq!(header(&headers, "x-org"), Some("anyone"));
    }

    /// What the Admin API and `validate` run on a config.
    #[test]
    fn bad_configs_are_refused_with_the_field() {
        for (conf, wanted) in [
            (json!({"header": "bad header"}), "invalid header name"),
            (json!({"allowed": [""]}), "allowed"),
            (json!({"allowed": "acme"}), "allowed"),
            (json!({"tenants": []}), "tenants"),
        ] {
            match TenantHeader.check_conf(&conf) {
                Ok(()) => panic!("{conf} accepted"),
                Err(e) => assert!(e.contains(wanted), "{conf}: {e}"),
            }
        }
    }
}
