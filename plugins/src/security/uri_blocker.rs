//! `uri-blocker` (priority 2900, rewrite): refuse requests whose URI matches a rule.
//!
//! Config: `block_rules` (required, at least one, unique regexes of 1-4096 characters),
//! `rejected_code` (default 403, at least 200), `rejected_msg` (optional, at least one character),
//! `case_insensitive` (default false). As APISIX, the rules are matched anywhere in the
//! normalised path followed by the query (so `/./admin` is `/admin`). A blocked request gets
//! `rejected_code` with `{"error_msg": rejected_msg}` and a new line when a message is set, else
//! an empty body.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use regex::{Regex, RegexBuilder};
use schemars::JsonSchema;
use serde::Deserialize;

use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, Reply, RequestCtx};

/// The kind.
pub struct UriBlocker;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    #[schemars(length(min = 1), inner(length(min = 1, max = 4096)), extend("uniqueItems" = true))]
    block_rules: Vec<String>,
    #[serde(default = "default_code")]
    #[schemars(range(min = 200))]
    rejected_code: u16,
    #[schemars(length(min = 1))]
    rejected_msg: Option<String>,
    #[serde(default)]
    case_insensitive: bool,
}

fn default_code() -> u16 {
    403
}

/// A configured instance (the checked config).
pub struct Instance {
    /// The rules joined into one alternation.
    rules: Regex,
    reply: Reply,
}

/// Compiles the rules as APISIX does: one alternation, `(?i)` when case-insensitive.
fn compile(rules: &[String], case_insensitive: bool) -> Result<Regex, String> {
    if rules.is_empty() {
        return Err("block_rules must not be empty".to_owned());
    }
    for (i, rule) in rules.iter().enumerate() {
        if rule.is_empty() || rule.chars().count() > 4096 {
            return Err(format!("block_rules[{i}] must be 1-4096 characters"));
        }
        if rules[..i].contains(rule) {
            return Err(format!("block_rules[{i}] `{rule}` is listed twice"));
        }
        Regex::new(rule).map_err(|e| pcre_message(rule, &e))?;
    }
    let joined = rules
        .iter()
        .map(|r| format!("(?:{r})"))
        .collect::<Vec<_>>()
        .join("|");
    RegexBuilder::new(&joined)
        .case_insensitive(case_insensitive)
        .build()
        .map_err(|e| format!("block_rules cannot be compiled together: {e}"))
}

/// The error as APISIX reports a rule PCRE cannot compile, for the mistakes both engines name
/// alike; other mistakes keep the regex engine's own words.
fn pcre_message(rule: &str, err: &regex::Error) -> String {
    let text = err.to_string();
    let pcre = if text.contains("unclosed group") {
        "missing )"
    } else if text.contains("unopened group") {
        "unmatched parentheses"
    } else if text.contains("unclosed character class") {
        "missing terminating ] for character class"
    } else {
        return format!("pcre_compile() failed: {text} in \"{rule}\"");
    };
    format!("pcre_compile() failed: {pcre} in \"{rule}\"")
}

impl Kind for UriBlocker {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "uri-blocker";
    const PRIORITY: i32 = 2900;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        let rules = compile(&conf.block_rules, conf.case_insensitive)?;
        let status = StatusCode::from_u16(conf.rejected_code)
            .ok()
            .filter(|_| conf.rejected_code >= 200)
            .ok_or_else(|| {
                format!(
                    "rejected_code must be an HTTP status of at least 200, got {}",
                    conf.rejected_code
                )
            })?;
        let body = match &conf.rejected_msg {
            Some(msg) if msg.is_empty() => {
                return Err("rejected_msg must not be empty".to_owned());
            }
            Some(msg) => Bytes::from(format!("{}\n", serde_json::json!({ "error_msg": msg }))),
            None => Bytes::new(),
        };
        Ok(Instance {
            rules,
            reply: Reply {
                status,
                headers: HeaderMap::new(),
                body,
            },
        })
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

impl Instance {
    fn blocks(&self, request_uri: &str) -> bool {
        self.rules.is_match(request_uri)
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::REWRITE
    }

    async fn rewrite(&self, req: &mut RequestCtx<'_>) -> Flow {
        // As APISIX: the normalised path with the query, so `/./x` cannot pass for `/x`.
        let mut uri = req.vars.get("uri").unwrap_or_default().into_owned();
        if let Some(args) = req.vars.get("args") {
            uri.push('?');
            uri.push_str(&args);
        }
        if self.blocks(&uri) {
            Flow::Respond(self.reply.clone())
        } else {
            Flow::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::parse_conf;
    use plugin_api::testing::Fake;
    use plugin_api::PluginKind;
    use serde_json::json;
    use serde_json::Value;

    fn instance(conf: Value) -> Instance {
        let conf: Conf = parse_conf(&conf).expect("valid");
        Instance {
            rules: compile(&conf.block_rules, conf.case_insensitive).expect("rules"),
            reply: Reply::message(StatusCode::FORBIDDEN, "unused"),
        }
    }

    #[test]
    fn rules_match_the_uri_with_its_query() {
        let i = instance(json!({"block_rules": ["^/admin", "root\\.exe", "token=[0-9]+"]}));
        assert!(i.blocks("/admin/x"));
        assert!(i.blocks("/a/root.exe"));
        assert!(i.blocks("/search?token=42"), "the query is part of the URI");
        assert!(
            !i.blocks("/public/admin"),
            "anchors hold inside the alternation"
        );
        assert!(!i.blocks("/a/rootXexe"));
        assert!(!i.blocks("/ADMIN"), "case-sensitive by default");
    }

    #[test]
    fn case_insensitive() {
        let i = instance(json!({"block_rules": ["^/admin"], "case_insensitive": true}));
        assert!(i.blocks("/ADMIN"));
        assert!(i.blocks("/Admin/x"));
    }

    #[tokio::test]
    async fn replies() {
        let uri = [("uri", "/admin"), ("args", "x=1")];
        let plain = UriBlocker
            .build(&json!({"block_rules": ["^/admin"]}))
            .expect("valid");
        let reply = Fake::new(&uri).rewrite(&*plain).await.expect("blocked");
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "403 by default");
        assert!(reply.body.is_empty(), "no body without rejected_msg");
        assert!(Fake::new(&[("uri", "/ok")])
            .rewrite(&*plain)
            .await
            .is_none());

        let custom = UriBlocker
            .build(&json!({"block_rules": ["x=1"], "rejected_code": 410, "rejected_msg": "gone"}))
            .expect("valid");
        let reply = Fake::new(&uri).rewrite(&*custom).await.expect("blocked");
        assert_eq!(reply.status, StatusCode::GONE);
        assert_eq!(
            serde_json::from_slice::<Value>(&reply.body).expect("json"),
            json!({"error_msg": "gone"})
        );
    }

    #[test]
    fn configs_are_checked() {
        assert!(UriBlocker
            .build(&json!({"block_rules": ["a"], "rejected_code": 410, "rejected_msg": "gone", "case_insensitive": true}))
            .is_ok());
        for bad in [
            json!({}),
            json!({"block_rules": []}),
            json!({"block_rules": [""]}),
            json!({"block_rules": ["a", "a"]}),
            json!({"block_rules": ["(unclosed"]}),
            json!({"block_rules": "a"}),
            json!({"block_rules": ["a"], "rejected_code": 199}),
            json!({"block_rules": ["a"], "rejected_code": 1000}),
            json!({"block_rules": ["a"], "rejected_msg": ""}),
            json!({"block_rules": ["a"], "case_insensitive": "yes"}),
            json!({"block_rules": ["a"], "extra": 1}),
        ] {
            assert!(UriBlocker.build(&bad).is_err(), "{bad}");
        }
    }
}
