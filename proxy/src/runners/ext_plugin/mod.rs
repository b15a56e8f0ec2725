//! `ext-plugin-pre-req` (priority 12000, rewrite), `ext-plugin-post-req` (-3000, access) and
//! `ext-plugin-post-resp` (-4000, once the upstream answered): plugins run by an external
//! runner over the runner protocol (`docs/runner-protocol.md`).
//!
//! Config (APISIX's): `conf` (the runner's plugins in order, `[{name, value}]`; `name` 1-128
//! characters, `value` an opaque string, usually JSON) and `allow_degradation` (default false:
//! a runner that fails, times out or breaks the protocol makes the request 503; true skips the
//! plugin instead). Beyond APISIX: `runner` names the runner (`ext-plugin.runners` in the
//! config file); default the first one.
//!
//! An instance is built once per config version of its owner (a route, the global rules, a
//! consumer): it prepares its conf token then, in the background, under the key
//! `<owner>#<plugin>#<n>` (`n` unique per instance), and forgets it when the config version is
//! gone. The call flow and how an answer is applied are in its `call` and `apply` modules.

mod apply;
mod call;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::config::Role;
use crate::runners::{Runner, Runners};
use http::StatusCode;
use runner_protocol::TextEntry;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use plugin_api::{
    parse_conf, BuildContext, Flow, Phases, Plugin, PluginError, PluginKind, Reply, RequestCtx,
    ResponseCtx, UpstreamResponseCtx,
};

/// Which of the three plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    PreReq,
    PostReq,
    PostResp,
}

/// One of the three kinds, with the runners its instances call (`None`: configs are only
/// checked, as the Admin API and `ferrogate validate` do).
pub struct ExtPlugin {
    phase: Phase,
    runners: Option<Arc<Runners>>,
}

/// `ext-plugin-pre-req`, checking configs only.
pub const PRE_REQ: ExtPlugin = ExtPlugin::unbound(Phase::PreReq);
/// `ext-plugin-post-req`, checking configs only.
pub const POST_REQ: ExtPlugin = ExtPlugin::unbound(Phase::PostReq);
/// `ext-plugin-post-resp`, checking configs only.
pub const POST_RESP: ExtPlugin = ExtPlugin::unbound(Phase::PostResp);

impl ExtPlugin {
    const fn unbound(phase: Phase) -> ExtPlugin {
        ExtPlugin {
            phase,
            runners: None,
        }
    }

    /// The three kinds, their instances calling `runners`.
    pub fn kinds(runners: Option<Arc<Runners>>) -> Vec<Arc<dyn PluginKind>> {
        [Phase::PreReq, Phase::PostReq, Phase::PostResp]
            .into_iter()
            .map(|phase| {
                Arc::new(ExtPlugin {
                    phase,
                    runners: runners.clone(),
                }) as Arc<dyn PluginKind>
            })
            .collect()
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Conf {
    #[serde(default)]
    conf: Vec<ConfEntry>,
    #[serde(default)]
    allow_degradation: bool,
    /// The runner's name (Ferrogate; default the first runner).
    runner: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ConfEntry {
    name: String,
    value: String,
}

/// Makes every instance's token key unique.
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

struct Instance {
    phase: Phase,
    runner: Runner,
    key: String,
    allow_degradation: bool,
}

impl PluginKind for ExtPlugin {
    fn name(&self) -> &'static str {
        match self.phase {
            Phase::PreReq => "ext-plugin-pre-req",
            Phase::PostReq => "ext-plugin-post-req",
            Phase::PostResp => "ext-plugin-post-resp",
        }
    }

    fn priority(&self) -> i32 {
        match self.phase {
            Phase::PreReq => 12000,
            Phase::PostReq => -3000,
            Phase::PostResp => -4000,
        }
    }

    fn schema(&self) -> Value {
        model::schema_of::<Conf>()
    }

    fn check_conf(&self, conf: &Value) -> Result<(), String> {
        plugin_api::schema::check(&plugin_api::schema::from_rust_types(&self.schema()), conf)?;
        check(conf).map(drop)
    }

    /// Builds an instance without a runner (only the data plane's [`PluginKind::build_with`]
    /// has one): it answers every request with 503.
    fn build(&self, conf: &Value) -> Result<Arc<dyn Plugin>, String> {
        check(conf)?;
        Ok(Arc::new(Unbound))
    }

    fn build_with(&self, conf: &Value, ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        let conf = check(conf)?;
        let runners = self
            .runners
            .as_ref()
            .ok_or("no external plugin runner is configured (`ext-plugin` in config.yaml)")?;
        let runner = runners
            .runner(conf.runner.as_deref())
            .ok_or_else(|| format!("runner {:?} is not configured", conf.runner))?
            .clone();
        let key = format!(
            "{}#{}#{}",
            ctx.owner,
            self.name(),
            NEXT_KEY.fetch_add(1, Ordering::Relaxed)
        );
        let entries = conf
            .conf
            .into_iter()
            .map(|e| TextEntry::new(e.name, e.value))
            .collect();
        runner.prepare(&key, entries);
        Ok(Arc::new(Instance {
            phase: self.phase,
            runner,
            key,
            allow_degradation: conf.allow_degradation,
        }))
    }
}

/// The runners `ext-plugin-*` configs may name, known where configs are written (the Admin API,
/// the standalone file) so a config naming a missing runner is refused there instead of making
/// its route answer 503.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnownRunners {
    /// Not known on this node: a control plane without an `ext-plugin` section (its data planes
    /// start the runners). Every config is accepted.
    Elsewhere,
    /// The runners of this node's `ext-plugin` section, in config order (empty: none).
    Named(Vec<String>),
}

impl KnownRunners {
    /// What a node with this `ext-plugin` section and role knows.
    pub fn of(config: Option<&crate::config::RunnersConfig>, role: Role) -> KnownRunners {
        match (config, role) {
            (None, Role::ControlPlane) => KnownRunners::Elsewhere,
            (config, _) => KnownRunners::Named(config.map(|c| c.order.clone()).unwrap_or_default()),
        }
    }

    /// Checks the `ext-plugin-*` entries of a `plugins` map: the runner each names (default the
    /// first) must be configured. A disabled entry is not checked (as APISIX, which does not
    /// check a disabled plugin's config).
    ///
    /// # Errors
    /// APISIX's plugin check message: `failed to check the configuration of plugin <name> err:
    /// ...`.
    pub fn check(&self, plugins: &serde_json::Map<String, Value>) -> Result<(), String> {
        let KnownRunners::Named(names) = self else {
            return Ok(());
        };
        for (name, conf) in plugins {
            if ![PRE_REQ, POST_REQ, POST_RESP]
                .iter()
                .any(|k| k.name() == name)
            {
                continue;
            }
            let Ok((conf, meta)) = plugin_api::meta::split(conf) else {
                continue; // a bad `_meta` is the plugin check's to report
            };
            if meta.disable {
                continue;
            }
            let failed = |why: String| {
                format!("failed to check the configuration of plugin {name} err: {why}")
            };
            let runner = conf.get("runner").and_then(Value::as_str);
            match runner {
                _ if names.is_empty() => {
                    return Err(failed(
                        "no external plugin runner is configured (`ext-plugin` in config.yaml)"
                            .to_owned(),
                    ))
                }
                Some(runner) if !names.iter().any(|n| n == runner) => {
                    return Err(failed(format!(
                        "runner \"{runner}\" is not configured (configured: {})",
                        names.join(", ")
                    )))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Parses and checks a config.
fn check(conf: &Value) -> Result<Conf, String> {
    let conf: Conf = parse_conf(conf)?;
    for (i, entry) in conf.conf.iter().enumerate() {
        if entry.name.is_empty() || entry.name.chars().count() > 128 {
            return Err(format!(
                "property \"conf[{i}].name\" validation failed: expected 1-128 characters"
            ));
        }
    }
    Ok(conf)
}

/// An instance built without a runner.
struct Unbound;

#[async_trait::async_trait]
impl Plugin for Unbound {
    fn phases(&self) -> Phases {
        Phases::REWRITE
    }

    async fn rewrite(&self, _req: &mut RequestCtx<'_>) -> Flow {
        Flow::Respond(Reply::message(
            StatusCode::SERVICE_UNAVAILABLE,
            "no external plugin runner",
        ))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.runner.forget(&self.key);
    }
}

impl Instance {
    /// What a failed call means for the request: skipped with `allow_degradation`, else 503.
    fn failed(&self, why: &dyn std::fmt::Display) -> Flow {
        if self.allow_degradation {
            tracing::warn!(key = %self.key, error = %why, "external plugin failed; skipped (allow_degradation)");
            Flow::Continue
        } else {
            Flow::Fail(PluginError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("external plugin {}: {why}", self.key),
            ))
        }
    }

    async fn request_call(&self, req: &mut RequestCtx<'_>) -> Flow {
        let call = call::request(req);
        let answered = {
            let consumer = req.consumer.as_ref().map(|c| c.consumer.username.as_str());
            let info = call::Info::new(req.vars, consumer, &mut *req.body, None);
            self.runner.request(&self.key, call, &info).await
        };
        match answered {
            Ok(reply) => apply::request_action(reply.action, req),
            Err(e) => self.failed(&e),
        }
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        let call = match self.phase {
            Phase::PreReq => Phases::REWRITE,
            Phase::PostReq => Phases::ACCESS,
            Phase::PostResp => Phases::UPSTREAM_RESPONSE,
        };
        call | Phases::HEADER_FILTER
    }

    async fn rewrite(&self, req: &mut RequestCtx<'_>) -> Flow {
        match self.phase {
            Phase::PreReq => self.request_call(req).await,
            _ => Flow::Continue,
        }
    }

    async fn access(&self, req: &mut RequestCtx<'_>) -> Flow {
        match self.phase {
            Phase::PostReq => self.request_call(req).await,
            _ => Flow::Continue,
        }
    }

    async fn upstream_response(&self, resp: &mut UpstreamResponseCtx<'_>) -> Flow {
        let call = call::response(resp);
        let answered = {
            let info = call::Info::new(
                resp.vars,
                resp.consumer_name,
                &mut *resp.request_body,
                Some(&mut *resp.body),
            );
            self.runner.response(&self.key, call, &info).await
        };
        match answered {
            Ok(reply) => {
                apply::response_reply(reply, resp);
                Flow::Continue
            }
            Err(e) => self.failed(&e),
        }
    }

    fn header_filter(&self, resp: &mut ResponseCtx<'_>) {
        apply::pending_response_headers(resp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configs_are_checked() {
        let ok = json!({"conf": [{"name": "say", "value": "{}"}], "allow_degradation": true});
        assert!(PRE_REQ.build(&ok).is_ok());
        for (bad, why) in [
            (
                json!({"conf": [{"name": "", "value": "x"}]}),
                "conf[0].name",
            ),
            (
                json!({"conf": [{"name": "a".repeat(129), "value": "x"}]}),
                "conf[0].name",
            ),
            (json!({"conf": [{"name": "a"}]}), "value"),
            (json!({"conf": [{"name": "a", "value": 1}]}), "value"),
            (json!({"conf": {}}), "conf"),
            (json!({"allow_degradation": "yes"}), "allow_degradation"),
            (json!({"other": 1}), "unknown field"),
        ] {
            let err = POST_REQ.build(&bad).err().expect("invalid");
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(check(&json!({})).is_ok(), "an empty conf list is allowed");
    }

    #[test]
    fn names_and_priorities() {
        let kinds = [PRE_REQ, POST_REQ, POST_RESP];
        let got: Vec<_> = kinds.iter().map(|k| (k.name(), k.priority())).collect();
        assert_eq!(
            got,
            [
                ("ext-plugin-pre-req", 12000),
                ("ext-plugin-post-req", -3000),
                ("ext-plugin-post-resp", -4000)
            ]
        );
    }

    #[test]
    fn named_runners_must_be_configured() {
        let plugins = |conf: Value| {
            json!({"ext-plugin-post-req": conf, "key-auth": {"runner": "nope"}})
                .as_object()
                .cloned()
                .expect("object")
        };
        let two = KnownRunners::Named(vec!["go".into(), "py".into()]);
        assert_eq!(two.check(&plugins(json!({"runner": "py"}))), Ok(()));
        assert_eq!(two.check(&plugins(json!({}))), Ok(()), "the default runner");
        assert_eq!(
            two.check(&plugins(json!({"runner": "java"}))),
            Err("failed to check the configuration of plugin ext-plugin-post-req err: runner \"java\" is not configured (configured: go, py)".to_owned())
        );
        let disabled = json!({"runner": "java", "_meta": {"disable": true}});
        assert_eq!(two.check(&plugins(disabled)), Ok(()));
        let none = KnownRunners::Named(Vec::new());
        assert_eq!(
            none.check(&plugins(json!({}))),
            Err("failed to check the configuration of plugin ext-plugin-post-req err: no external plugin runner is configured (`ext-plugin` in config.yaml)".to_owned())
        );
        assert_eq!(
            KnownRunners::Elsewhere.check(&plugins(json!({"runner": "java"}))),
            Ok(())
        );
        assert_eq!(
            KnownRunners::of(None, Role::ControlPlane),
            KnownRunners::Elsewhere
        );
        assert_eq!(
            KnownRunners::of(None, Role::Traditional),
            KnownRunners::Named(Vec::new())
        );
    }

    #[test]
    fn without_runners_the_data_plane_refuses() {
        let conf = json!({"conf": []});
        let err = PRE_REQ
            .build_with(&conf, &BuildContext::default())
            .err()
            .expect("no runners");
        assert!(err.contains("no external plugin runner"), "{err}");
    }
}
