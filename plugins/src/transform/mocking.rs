//! `mocking` (priority 10900, access): answer with a made-up response, never calling upstream.
//!
//! Config: `delay` (whole seconds before answering, default 0), `response_status` (default 200),
//! `content_type` (default `application/json;charset=utf8`; the part before `;` must be one of
//! `application/json`, `application/xml`, `text/plain`, `text/html`, `text/xml`),
//! `response_example` (the body; `$var` / `${var}` replaced by request variables),
//! `response_schema` (a JSON schema object; a body is generated from it when there is no
//! `response_example`), `with_mock_header` (default true), `response_headers` (a map of headers
//! set on the response, `$var` in values replaced as in the body). At least one of
//! `response_example` / `response_schema` is required.
//!
//! Generation follows APISIX: for each of `properties`, a `string` is its `example` or 1-10
//! random lowercase letters, a `number` its `example` or a random number below 10000, an
//! `integer` its `example` (floored) or 1-10000, a `boolean` its `example` or random, an
//! `object` is generated from its own `properties`, an `array` has 1-3 items generated from
//! `items` (left out without `items`). Ferrogate generates JSON only, so a `response_schema`
//! with an XML or HTML `content_type` is refused (APISIX renders XML for the XML types).
//!
//! Differences from APISIX: the mock header is `x-mock-by: Ferrogate` (APISIX sends
//! `APISIX/<version>`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use rand::Rng;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use model::template::{Syntax, Template};
use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, Reply, RequestCtx};

/// The kind.
pub struct Mocking;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    #[serde(default)]
    delay: u64,
    #[serde(default = "default_status")]
    response_status: u16,
    #[serde(default = "default_content_type")]
    content_type: String,
    response_example: Option<String>,
    response_schema: Option<Map<String, Value>>,
    #[serde(default = "plugin_api::schema::yes")]
    with_mock_header: bool,
    response_headers: Option<BTreeMap<String, String>>,
}

fn default_status() -> u16 {
    200
}
fn default_content_type() -> String {
    "application/json;charset=utf8".to_owned()
}

const CONTENT_TYPES: [&str; 5] = [
    "application/xml",
    "application/json",
    "text/plain",
    "text/html",
    "text/xml",
];

/// The value of `x-mock-by`.
const MOCK_BY: &str = "Ferrogate";

enum Body {
    /// A template with request variables.
    Example(Template),
    /// A JSON schema to generate from.
    Schema(Map<String, Value>),
}

/// A configured instance (the checked config).
pub struct Instance {
    delay: Duration,
    status: StatusCode,
    headers: HeaderMap,
    /// `response_headers`, their values templates with request variables.
    extra_headers: Vec<(HeaderName, Template)>,
    body: Body,
}

/// Checks that every property of `schema` (at `path`) has a type the generator knows.
fn check_schema(schema: &Map<String, Value>, path: &str) -> Result<(), String> {
    let Some(props) = schema.get("properties") else {
        return Ok(());
    };
    let props = props
        .as_object()
        .ok_or_else(|| format!("response_schema: {path}properties must be an object"))?;
    for (name, prop) in props {
        let at = format!("{path}properties.{name}");
        check_property(prop, &at)?;
    }
    Ok(())
}

fn check_property(prop: &Value, at: &str) -> Result<(), String> {
    let obj = prop
        .as_object()
        .ok_or_else(|| format!("response_schema: {at} must be an object"))?;
    let typ = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("response_schema: {at} needs a string `type`"))?;
    match typ.to_ascii_lowercase().as_str() {
        "string" | "number" | "integer" | "boolean" => Ok(()),
        "object" => check_schema(obj, &format!("{at}.")),
        "array" => match obj.get("items") {
            Some(items) => check_property(items, &format!("{at}.items")),
            None => Ok(()),
        },
        other => Err(format!(
            "response_schema: {at} has type `{other}`; the generator knows string, number, integer, boolean, object and array"
        )),
    }
}

impl Kind for Mocking {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "mocking";
    const PRIORITY: i32 = 10900;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        let status = StatusCode::from_u16(conf.response_status)
            .map_err(|_| format!("invalid response_status {}", conf.response_status))?;
        let media = conf
            .content_type
            .split_once(';')
            .map_or(conf.content_type.as_str(), |(media, _)| media);
        if !CONTENT_TYPES.contains(&media) {
            return Err(format!(
                "unsupported content type `{}`: use one of {}",
                conf.content_type,
                CONTENT_TYPES.join(", ")
            ));
        }
        let mut headers = HeaderMap::new();
        let content_type = HeaderValue::from_str(&conf.content_type).map_err(|_| {
            format!(
                "content_type `{}` is not a valid header value",
                conf.content_type
            )
        })?;
        headers.insert(CONTENT_TYPE, content_type);
        if conf.with_mock_header {
            headers.insert("x-mock-by", HeaderValue::from_static(MOCK_BY));
        }
        let mut extra_headers = Vec::new();
        for (name, value) in conf.response_headers.unwrap_or_default() {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("response_headers: invalid header name `{name}`"))?;
            HeaderValue::from_str(&value)
                .map_err(|_| format!("response_headers: invalid value for `{name}`"))?;
            extra_headers.push((header, Template::parse(&value, Syntax::KeepEscape)));
        }
        let body = match (conf.response_example, conf.response_schema) {
            (Some(example), _) => Body::Example(Template::parse(&example, Syntax::KeepEscape)),
            (None, Some(schema)) => {
                if !matches!(media, "application/json" | "text/plain") {
                    return Err(format!(
                        "response_schema generates JSON only; content_type `{}` needs a response_example",
                        conf.content_type
                    ));
                }
                check_schema(&schema, "")?;
                Body::Schema(schema)
            }
            (None, None) => {
                return Err("one of response_example or response_schema is required".to_owned())
            }
        };
        Ok(Instance {
            delay: Duration::from_secs(conf.delay),
            status,
            headers,
            extra_headers,
            body,
        })
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

fn gen_object(schema: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    if let Some(Value::Object(props)) = schema.get("properties") {
        for (name, prop) in props {
            if let Some(v) = gen_value(prop) {
                out.insert(name.clone(), v);
            }
        }
    }
    Value::Object(out)
}

fn gen_value(prop: &Value) -> Option<Value> {
    let obj = prop.as_object()?;
    let typ = obj.get("type")?.as_str()?.to_ascii_lowercase();
    let example = obj.get("example");
    let mut rng = rand::rng();
    match typ.as_str() {
        "string" => Some(match example {
            Some(Value::String(s)) => Value::String(s.clone()),
            _ => {
                let n = rng.random_range(1..=10);
                Value::String(
                    (0..n)
                        .map(|_| char::from(rng.random_range(b'a'..=b'z')))
                        .collect(),
                )
            }
        }),
        "number" => Some(match example {
            Some(Value::Number(n)) => Value::Number(n.clone()),
            _ => serde_json::Number::from_f64(rng.random::<f64>() * 10000.0)
                .map_or(Value::Null, Value::Number),
        }),
        "integer" => Some(match example.and_then(Value::as_f64) {
            // A floored f64 below 2^63 converts exactly.
            Some(n) => Value::from(n.floor() as i64),
            None => Value::from(rng.random_range(1..=10000)),
        }),
        "boolean" => Some(match example {
            Some(Value::Bool(b)) => Value::Bool(*b),
            _ => Value::Bool(rng.random()),
        }),
        "object" => Some(gen_object(obj)),
        "array" => {
            let items = obj.get("items")?;
            let n = rng.random_range(1..=3);
            Some(Value::Array(
                (0..n).filter_map(|_| gen_value(items)).collect(),
            ))
        }
        _ => None,
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::ACCESS
    }

    async fn access(&self, req: &mut RequestCtx<'_>) -> Flow {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let body = match &self.body {
            Body::Example(template) => template.render(req.vars),
            Body::Schema(schema) => gen_object(schema).to_string(),
        };
        let mut headers = self.headers.clone();
        for (name, template) in &self.extra_headers {
            // A variable holding bytes a header cannot carry leaves the header out.
            if let Ok(value) = HeaderValue::from_str(&template.render(req.vars)) {
                headers.insert(name.clone(), value);
            }
        }
        Flow::Respond(Reply {
            status: self.status,
            headers,
            body: Bytes::from(body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::{header, Fake};
    use plugin_api::PluginKind;
    use serde_json::json;

    async fn run(conf: Value, vars: &[(&'static str, &'static str)]) -> Reply {
        let plugin = Mocking.build(&conf).expect("valid");
        Fake::new(vars).access(&*plugin).await.expect("answered")
    }

    #[tokio::test]
    async fn example_and_defaults() {
        let reply = run(json!({"response_example": "{\"a\":1}"}), &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "{\"a\":1}");
        assert_eq!(
            header(&reply.headers, "content-type"),
            Some("application/json;charset=utf8")
        );
        assert_eq!(header(&reply.headers, "x-mock-by"), Some("Ferrogate"));
    }

    #[tokio::test]
    async fn every_field() {
        let start = std::time::Instant::now();
        let reply = run(
            json!({"delay": 1, "response_status": 201, "content_type": "text/plain", "response_example": "hi $arg_name${x}", "with_mock_header": false, "response_headers": {"X-A": "b", "Content-Type": "text/html"}}),
            &[("arg_name", "jo")],
        )
        .await;
        assert!(start.elapsed() >= Duration::from_secs(1), "delayed");
        assert_eq!(reply.status, StatusCode::CREATED);
        assert_eq!(reply.body, "hi jo");
        assert!(reply.headers.get("x-mock-by").is_none());
        assert_eq!(header(&reply.headers, "x-a"), Some("b"));
        assert_eq!(
            header(&reply.headers, "content-type"),
            Some("text/html"),
            "response_headers win"
        );
    }

    #[tokio::test]
    async fn generated_from_the_schema() {
        let schema = json!({"type": "object", "properties": {
            "name": {"type": "string"},
            "fixed": {"type": "string", "example": "x"},
            "n": {"type": "Number", "example": 2.5},
            "i": {"type": "integer"},
            "ie": {"type": "integer", "example": 7.9},
            "b": {"type": "boolean", "example": true},
            "obj": {"type": "object", "properties": {"c": {"type": "integer", "example": 1}}},
            "list": {"type": "array", "items": {"type": "string", "example": "e"}},
            "nothing": {"type": "array"}
        }});
        let reply = run(json!({"response_schema": schema}), &[]).await;
        let got: Value = serde_json::from_slice(&reply.body).expect("json");
        let name = got["name"].as_str().expect("name");
        assert!((1..=10).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase()));
        assert_eq!(got["fixed"], "x");
        assert_eq!(got["n"], 2.5);
        assert!((1..=10000).contains(&got["i"].as_i64().expect("i")));
        assert_eq!(got["ie"], 7);
        assert_eq!(got["b"], true);
        assert_eq!(got["obj"], json!({"c": 1}));
        let list = got["list"].as_array().expect("list");
        assert!((1..=3).contains(&list.len()) && list.iter().all(|e| e == "e"));
        assert!(
            got.get("nothing").is_none(),
            "an array without items is left out"
        );

        let reply = run(
            json!({"response_schema": {"properties": {"a": {"type": "boolean", "example": false}}}, "response_example": "wins"}),
            &[],
        )
        .await;
        assert_eq!(reply.body, "wins", "the example wins over the schema");
    }

    #[test]
    fn configs_are_checked() {
        for good in [
            json!({"response_example": ""}),
            json!({"response_schema": {}}),
            json!({"response_example": "<a/>", "content_type": "application/xml"}),
            json!({"response_example": "x", "content_type": "text/plain; charset=utf-8", "response_status": 599, "delay": 0}),
            json!({"response_schema": {"properties": {"a": {"type": "string"}}}, "content_type": "text/plain"}),
        ] {
            assert!(Mocking.build(&good).is_ok(), "{good}");
        }
        for bad in [
            json!({}),
            json!({"response_example": 1}),
            json!({"response_schema": []}),
            json!({"response_example": "x", "content_type": "image/png"}),
            json!({"response_example": "x", "response_status": 0}),
            json!({"response_example": "x", "delay": -1}),
            json!({"response_example": "x", "delay": 0.5}),
            json!({"response_example": "x", "with_mock_header": "no"}),
            json!({"response_example": "x", "response_headers": {"bad name": "v"}}),
            json!({"response_example": "x", "response_headers": {"X-A": 1}}),
            json!({"response_schema": {"properties": {"a": {"type": "string"}}}, "content_type": "application/xml"}),
            json!({"response_schema": {"properties": {"a": {}}}}),
            json!({"response_schema": {"properties": {"a": {"type": "null"}}}}),
            json!({"response_schema": {"properties": {"a": {"type": "array", "items": {"type": "date"}}}}}),
            json!({"response_schema": {"properties": []}}),
            json!({"response_example": "x", "extra": 1}),
        ] {
            assert!(Mocking.build(&bad).is_err(), "{bad}");
        }
    }
}
