//! `traffic-split` (priority 966, access): sends a share of a route's requests to other upstreams.
//!
//! Config: `rules`, each with `match` (a list of `{vars: [...]}`; the rule holds when any of them
//! does; no list, or an empty one, always holds) and `weighted_upstreams` (default
//! `[{"weight": 1}]`), each `{upstream_id | upstream, weight}` (weight default 1, at least 0).
//! The first rule that holds picks one of its weighted upstreams by smooth weighted round robin
//! (per rule); an entry with only `weight` stands for the route's own upstream. No rule holding
//! leaves the route's upstream.
//!
//! The upstreams it names are declared to the gateway ([`Kind::upstreams`]): every
//! `weighted_upstreams` entry with an `upstream_id` (which wins) or an `upstream`, rule after
//! rule. The gateway builds them with the snapshot; a request only carries the index chosen
//! ([`plugin_api::upstream`]). As APISIX, the stored upstreams of the rules tried (every rule
//! up to the one that holds, or every rule when none does) must exist: a missing one fails the
//! request with 500.

use std::sync::{Arc, Mutex};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use model::expr::Expr;
use model::{Id, Resource, Upstream};
use plugin_api::upstream::{UpstreamRef, Upstreams};
use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, RequestCtx};

/// The kind.
pub struct TrafficSplit;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    /// Rules, tried in order.
    #[serde(default)]
    rules: Vec<RuleConf>,
}

#[derive(Deserialize, JsonSchema)]
struct RuleConf {
    /// The rule holds when any of these does (always when absent or empty).
    #[serde(rename = "match")]
    matches: Option<Vec<MatchConf>>,
    /// Where requests go, by weight.
    #[serde(default = "default_weighted")]
    weighted_upstreams: Vec<WeightedConf>,
}

#[derive(Deserialize, JsonSchema)]
struct MatchConf {
    /// A `vars` expression (lua-resty-expr).
    vars: Option<Value>,
}

#[derive(Deserialize, JsonSchema)]
struct WeightedConf {
    /// A stored upstream.
    upstream_id: Option<Id>,
    /// An inline upstream.
    upstream: Option<Value>,
    /// The share of requests (at least 0).
    #[serde(default = "default_weight")]
    weight: i64,
}

fn default_weighted() -> Vec<WeightedConf> {
    vec![WeightedConf {
        upstream_id: None,
        upstream: None,
        weight: 1,
    }]
}
fn default_weight() -> i64 {
    1
}

struct Rule {
    /// Any holds; empty: always.
    matches: Vec<Expr>,
    /// (declared upstream index or `None` for the route's upstream, weight > 0).
    upstreams: Vec<(Option<usize>, i64)>,
    /// How many declared upstreams this rule and the ones before name.
    named: usize,
    /// Smooth weighted round robin state, one current weight per upstream.
    current: Mutex<Vec<i64>>,
}

/// A configured instance (the checked config).
pub struct Instance {
    rules: Vec<Rule>,
    upstreams: Upstreams,
}

impl Kind for TrafficSplit {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "traffic-split";
    const PRIORITY: i32 = 966;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        let mut rules = Vec::with_capacity(conf.rules.len());
        let mut declared = Vec::new();
        for (r, rule) in conf.rules.into_iter().enumerate() {
            let mut matches = Vec::new();
            for single in rule.matches.into_iter().flatten() {
                let vars = single.vars.unwrap_or_else(|| Value::Array(Vec::new()));
                let expr = Expr::compile(&vars)
                    .map_err(|e| format!("failed to validate the 'vars' expression: {e}"))?;
                matches.push(expr);
            }
            let mut upstreams = Vec::new();
            for (w, entry) in rule.weighted_upstreams.into_iter().enumerate() {
                let at = format!("rules[{r}].weighted_upstreams[{w}]");
                if entry.weight < 0 {
                    return Err(format!(
                        "{at}.weight: expected {} to be at least 0",
                        entry.weight
                    ));
                }
                let named = if let Some(id) = entry.upstream_id {
                    Some(UpstreamRef::Id(id))
                } else if let Some(inline) = entry.upstream {
                    Resource::Upstream
                        .check(&inline, &model::NoPlugins)
                        .map_err(|errors| {
                            let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
                            format!("{at}.upstream: {}", all.join("; "))
                        })?;
                    let upstream = serde_json::from_value::<Upstream>(inline)
                        .map_err(|e| format!("{at}.upstream: {e}"))?;
                    Some(UpstreamRef::Inline(Box::new(upstream)))
                } else {
                    None
                };
                let index = named.map(|r| {
                    declared.push(r);
                    declared.len() - 1
                });
                if entry.weight > 0 {
                    upstreams.push((index, entry.weight));
                }
            }
            rules.push(Rule {
                matches,
                current: Mutex::new(vec![0; upstreams.len()]),
                upstreams,
                named: declared.len(),
            });
        }
        Ok(Instance {
            rules,
            upstreams: Upstreams::new(declared),
        })
    }

    fn upstreams(&self, checked: &Instance) -> Upstreams {
        checked.upstreams.clone()
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

impl Rule {
    /// The next upstream by smooth weighted round robin; `None` when it has none with weight.
    fn pick(&self) -> Option<Option<usize>> {
        let total: i64 = self.upstreams.iter().map(|(_, w)| w).sum();
        let mut current = self.current.lock().ok()?;
        let mut best: Option<usize> = None;
        for (i, (_, weight)) in self.upstreams.iter().enumerate() {
            current[i] += weight;
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let best = best?;
        current[best] -= total;
        Some(self.upstreams[best].0)
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::ACCESS
    }

    async fn access(&self, req: &mut RequestCtx<'_>) -> Flow {
        let rule = self
            .rules
            .iter()
            .find(|r| r.matches.is_empty() || r.matches.iter().any(|m| m.eval(req.vars)));
        // The upstreams of the rules tried must exist: every rule's when none holds.
        let required = rule.map_or(self.upstreams.refs().len(), |r| r.named);
        let index = rule.and_then(Rule::pick).flatten();
        req.choose_upstream(self.upstreams.choose(index).requiring(required));
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::access;
    use plugin_api::upstream::UpstreamOverride;
    use plugin_api::PluginKind;
    use serde_json::json;

    fn build(conf: &Value) -> Arc<dyn Plugin> {
        TrafficSplit.build(conf).expect("valid config")
    }

    /// The choice of `n` requests with `vars` (None: the route's upstream).
    async fn choices(plugin: &dyn Plugin, vars: &[(&str, &str)], n: usize) -> Vec<Option<usize>> {
        let mut out = Vec::new();
        for _ in 0..n {
            let mut state = http::Extensions::new();
            let (reply, _) = access(plugin, vars, &mut state).await;
            assert!(reply.is_none());
            let choice = state.get::<UpstreamOverride>().expect("a choice");
            out.push(choice.index());
        }
        out
    }

    #[test]
    fn configs_are_checked() {
        let ok = [
            json!({}),
            json!({"rules": []}),
            json!({"rules": [{}]}),
            json!({"rules": [{"match": [], "weighted_upstreams": [{"weight": 0}]}]}),
            json!({"rules": [{"match": [{"vars": [["arg_x", "==", "1"]]}, {}], "weighted_upstreams": [{"upstream_id": 1, "weight": 2}, {"upstream": {"nodes": {"127.0.0.1:1980": 1}}}, {"weight": 1}]}]}),
        ];
        for conf in ok {
            assert!(TrafficSplit.build(&conf).is_ok(), "{conf}");
        }
        for bad in [
            json!({"rules": {}}),
            json!({"rules": [{"match": [{"vars": "x"}]}]}),
            json!({"rules": [{"match": [{"vars": [["arg_x", "~~~", "1"]]}]}]}),
            json!({"rules": [{"weighted_upstreams": [{"weight": -1}]}]}),
            json!({"rules": [{"weighted_upstreams": [{"weight": "1"}]}]}),
            json!({"rules": [{"weighted_upstreams": [{"upstream": {"nodes": {"127.0.0.1:1980": 1}, "type": "nope"}}]}]}),
            json!({"rules": [{"weighted_upstreams": [{"upstream": {"bogus": 1}}]}]}),
            json!({"rules": [{"weighted_upstreams": [{"upstream_id": {"x": 1}}]}]}),
            json!({"other": 1}),
        ] {
            assert!(TrafficSplit.build(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn declared_upstreams_follow_the_entries() {
        let conf = json!({"rules": [
            {"weighted_upstreams": [{"upstream_id": "a"}, {"weight": 3}]},
            {"weighted_upstreams": [{"upstream": {"nodes": {"127.0.0.1:1": 1}}, "weight": 0}, {"upstream_id": 7, "upstream": {"nodes": {"127.0.0.1:2": 1}}}]}
        ]});
        let declared = TrafficSplit.upstreams_of(&conf);
        let refs = declared.refs();
        assert_eq!(refs.len(), 3);
        assert_eq!(refs[0], UpstreamRef::Id(Id("a".into())));
        assert!(matches!(&refs[1], UpstreamRef::Inline(_)));
        assert_eq!(refs[2], UpstreamRef::Id(Id("7".into())), "upstream_id wins");
        assert!(TrafficSplit.upstreams_of(&json!({"rules": 1})).is_empty());
        assert!(TrafficSplit.upstreams_of(&json!({})).is_empty());
    }

    #[tokio::test]
    async fn weighted_round_robin() {
        let p = build(
            &json!({"rules": [{"weighted_upstreams": [{"upstream_id": "a"}, {"upstream_id": "b"}]}]}),
        );
        assert_eq!(
            choices(&*p, &[], 4).await,
            vec![Some(0), Some(1), Some(0), Some(1)],
            "1:1 alternates"
        );
        let p = build(
            &json!({"rules": [{"weighted_upstreams": [{"upstream_id": "a", "weight": 3}, {"weight": 1}]}]}),
        );
        let got = choices(&*p, &[], 8).await;
        assert_eq!(got.iter().filter(|c| c.is_none()).count(), 2, "{got:?}");
        assert_eq!(got.iter().filter(|c| **c == Some(0)).count(), 6);
        assert_ne!(
            got[..4].to_vec(),
            vec![Some(0), Some(0), Some(0), None],
            "smooth: {got:?}"
        );
        // Weight 0 is never picked; only weight 0: the route's upstream.
        let p = build(
            &json!({"rules": [{"weighted_upstreams": [{"upstream_id": "a", "weight": 0}, {"upstream_id": "b"}]}]}),
        );
        assert_eq!(choices(&*p, &[], 3).await, vec![Some(1); 3]);
        let p =
            build(&json!({"rules": [{"weighted_upstreams": [{"upstream_id": "a", "weight": 0}]}]}));
        assert_eq!(choices(&*p, &[], 2).await, vec![None; 2]);
        // Default weighted_upstreams: the route's own.
        let p = build(&json!({"rules": [{}]}));
        assert_eq!(choices(&*p, &[], 1).await, vec![None]);
    }

    #[tokio::test]
    async fn the_first_matching_rule_chooses() {
        let p = build(&json!({"rules": [
            {"match": [{"vars": [["http_x_canary", "==", "1"]]}, {"vars": [["arg_beta", "==", "yes"]]}], "weighted_upstreams": [{"upstream_id": "canary"}]},
            {"match": [{"vars": [["http_x_region", "==", "eu"]]}], "weighted_upstreams": [{"upstream": {"nodes": {"127.0.0.1:1": 1}}}]}
        ]}));
        assert_eq!(
            choices(&*p, &[("http_x_canary", "1")], 1).await,
            vec![Some(0)]
        );
        assert_eq!(
            choices(&*p, &[("arg_beta", "yes")], 1).await,
            vec![Some(0)],
            "any match item"
        );
        assert_eq!(
            choices(&*p, &[("http_x_canary", "1"), ("http_x_region", "eu")], 1).await,
            vec![Some(0)],
            "the first rule wins"
        );
        assert_eq!(
            choices(&*p, &[("http_x_region", "eu")], 1).await,
            vec![Some(1)]
        );
        assert_eq!(choices(&*p, &[], 1).await, vec![None], "no rule holds");
    }

    #[tokio::test]
    async fn choices_name_the_declared_list_and_the_rules_tried() {
        let conf = json!({"rules": [
            {"match": [{"vars": [["arg_a", "==", "1"]]}], "weighted_upstreams": [{"upstream_id": "x"}, {"weight": 1}]},
            {"match": [{"vars": [["arg_b", "==", "1"]]}], "weighted_upstreams": [{"upstream_id": "y"}]}
        ]});
        let p = build(&conf);
        let key = TrafficSplit.upstreams_of(&conf).key();
        async fn choice(p: &dyn Plugin, vars: &[(&str, &str)]) -> UpstreamOverride {
            let mut state = http::Extensions::new();
            access(p, vars, &mut state).await;
            *state.get::<UpstreamOverride>().expect("a choice")
        }
        let first = choice(&*p, &[("arg_a", "1")]).await;
        assert_eq!(first.key(), key);
        assert_eq!((first.index(), first.required()), (Some(0), 1));
        let c = choice(&*p, &[("arg_a", "1")]).await;
        assert_eq!((c.index(), c.required()), (None, 1), "the route's own");
        let c = choice(&*p, &[("arg_b", "1")]).await;
        assert_eq!((c.index(), c.required()), (Some(1), 2));
        let c = choice(&*p, &[]).await;
        assert_eq!(
            (c.index(), c.required()),
            (None, 2),
            "no rule holds: every rule tried"
        );
    }
}
