//! `proxy-control` (priority 21990, rewrite): how the request goes upstream, per route.
//!
//! Config: `request_buffering` (boolean, default true). `false` streams the request body to the
//! upstream as it arrives instead of reading it whole first (nginx's
//! `proxy_request_buffering off`), for uploads the upstream should see as they come. Streamed
//! bodies still count against `streamed_bodies_per_client` and `client_body_timeout`. As
//! APISIX, it runs in `rewrite`, before authentication, and its schema allows other keys.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, RequestCtx};

/// The kind.
pub struct ProxyControl;

#[derive(Deserialize, JsonSchema)]
pub struct Conf {
    #[serde(default = "plugin_api::schema::yes")]
    request_buffering: bool,
}

/// Whether the request body is read whole before the upstream is connected (the default when
/// no `proxy-control` ran); the pipeline reads it from the request's plugin state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestBuffering(pub bool);

/// A configured instance (the checked config).
pub struct Instance {
    request_buffering: bool,
}

impl Kind for ProxyControl {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "proxy-control";
    const PRIORITY: i32 = 21990;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        Ok(Instance {
            request_buffering: conf.request_buffering,
        })
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::REWRITE
    }

    async fn rewrite(&self, req: &mut RequestCtx<'_>) -> Flow {
        req.state.insert(RequestBuffering(self.request_buffering));
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::Fake;
    use plugin_api::PluginKind;
    use serde_json::json;

    #[tokio::test]
    async fn sets_the_request_buffering_of_the_request() {
        for (conf, want) in [
            (json!({}), true),
            (json!({"request_buffering": false}), false),
            (json!({"request_buffering": true}), true),
        ] {
            let plugin = ProxyControl.build(&conf).expect("valid");
            let mut fake = Fake::new(&[]);
            assert!(
                fake.rewrite(plugin.as_ref()).await.is_none(),
                "never answers"
            );
            assert_eq!(
                fake.state.get::<RequestBuffering>(),
                Some(&RequestBuffering(want)),
                "{conf}"
            );
        }
        assert!(ProxyControl
            .build(&json!({"request_buffering": "no"}))
            .is_err());
    }
}
