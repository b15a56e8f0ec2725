//! The resource endpoints: create, replace, patch, read, list and delete, with APISIX's ids,
//! envelopes, status codes and messages (`../shared/docs/apisix-reference.md` §1.2-§1.8).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::list::ListQuery;
use super::listener::{json, json_value, Reply};
use super::references;
use super::{error, patch, unavailable, Admin, Call};
use crate::model::{is_valid_id, Resource};
use crate::plugins::{registry, PluginKind};
use crate::store::{declarative, Entry, Format};

/// Where a collection lives and what it allows.
struct Collection {
    resource: Resource,
    /// Key prefix of its items (`routes`, `consumers/jack/credentials`).
    base: String,
}

impl Collection {
    fn key(&self, id: &str) -> String {
        format!("{}/{id}", self.base)
    }

    /// The methods APISIX routes for this resource.
    fn allows(&self, method: &Method) -> bool {
        use Resource::*;
        match self.resource {
            Route | Service | Upstream | Ssl => true,
            ConsumerGroup | GlobalRule | PluginConfig => *method != Method::POST,
            Consumer | Credential | PluginMetadata => {
                !matches!(*method, Method::POST | Method::PATCH)
            }
        }
    }

    /// The field holding the id inside the value.
    fn id_field(&self) -> Option<&'static str> {
        match self.resource {
            Resource::Consumer => Some("username"),
            // The plugin's name (checked against the built-in plugins).
            _ => Some("id"),
        }
    }
}

/// Routes a call to its endpoint.
pub(super) async fn dispatch(admin: &Admin, call: &Call) -> Reply {
    let segments: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        [] => json(StatusCode::NOT_FOUND, r#"{"error_msg":"404 Not Found"}"#),
        ["plugins", rest @ ..] => plugins(call, rest),
        ["schema", rest @ ..] => schema(call, rest),
        ["configs", "validate"] if call.method == Method::POST => validate_config(&call.body),
        ["stream_routes", ..] => error(
            StatusCode::BAD_REQUEST,
            "stream mode is disabled, can not add stream routes",
        ),
        ["consumers", username, "credentials", rest @ ..] => {
            let collection = Collection {
                resource: Resource::Credential,
                base: format!("consumers/{username}/credentials"),
            };
            if !is_valid_username(username) {
                return error(StatusCode::BAD_REQUEST, "invalid consumer username");
            }
            if call.method == Method::PUT {
                match admin.store.get(&format!("consumers/{username}")).await {
                    Ok(Some(_)) => {}
                    Ok(None) => return error(StatusCode::NOT_FOUND, "consumer not found"),
                    Err(e) => return unavailable(&e),
                }
            }
            on_collection(admin, call, &collection, rest).await
        }
        [segment, rest @ ..] => match Resource::from_segment(segment) {
            Some(resource) if resource != Resource::Credential => {
                let collection = Collection {
                    resource,
                    base: resource.segment().to_owned(),
                };
                on_collection(admin, call, &collection, rest).await
            }
            _ => error(
                StatusCode::NOT_FOUND,
                &format!("Unsupported resource type: {segment}"),
            ),
        },
    }
}

fn is_valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

async fn on_collection(admin: &Admin, call: &Call, c: &Collection, rest: &[&str]) -> Reply {
    if !c.allows(&call.method) {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!(
                "not supported `{}` method for {}",
                call.method,
                c.resource.noun()
            ),
        );
    }
    let id = rest.first().copied();
    let sub_path = rest.get(1..).unwrap_or_default();
    if !sub_path.is_empty() && call.method != Method::PATCH {
        return json(StatusCode::NOT_FOUND, r#"{"error_msg":"404 Not Found"}"#);
    }
    match call.method {
        Method::GET => match id {
            Some(id) => get_one(admin, c, id).await,
            None => get_list(admin, call, c).await,
        },
        Method::PUT => put(admin, call, c, id).await,
        Method::POST => post(admin, call, c).await,
        Method::PATCH => patch(admin, call, c, id, sub_path).await,
        Method::DELETE => delete(admin, call, c, id).await,
        _ => json(StatusCode::NOT_FOUND, r#"{"error_msg":"404 Not Found"}"#),
    }
}

fn full_key(admin: &Admin, key: &str) -> String {
    format!("{}/{key}", admin.store.prefix())
}

fn not_found() -> Reply {
    json(StatusCode::NOT_FOUND, r#"{"message":"Key not found"}"#)
}

/// The value of an entry as the Admin API shows it (SSL private keys never leave).
fn shown(c: &Collection, entry: &Entry) -> Value {
    let mut value: Value = serde_json::from_slice(&entry.value).unwrap_or(Value::Null);
    if c.resource == Resource::Ssl {
        if let Value::Object(map) = &mut value {
            map.remove("key");
            map.remove("keys");
        }
    }
    value
}

fn item(admin: &Admin, c: &Collection, entry: &Entry) -> Value {
    json!({
        "key": full_key(admin, &entry.key),
        "value": shown(c, entry),
        "createdIndex": entry.create_revision,
        "modifiedIndex": entry.mod_revision,
    })
}

async fn get_one(admin: &Admin, c: &Collection, id: &str) -> Reply {
    match admin.store.get(&c.key(id)).await {
        Ok(Some(entry)) => json_value(StatusCode::OK, &item(admin, c, &entry)),
        Ok(None) => not_found(),
        Err(e) => unavailable(&e),
    }
}

async fn get_list(admin: &Admin, call: &Call, c: &Collection) -> Reply {
    let query = match ListQuery::parse(&call.args) {
        Ok(q) => q,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let listing = match admin.store.list(&format!("{}/", c.base)).await {
        Ok(l) => l,
        Err(e) => return unavailable(&e),
    };
    let prefix_len = c.base.len() + 1;
    let entries = listing
        .entries
        .into_iter()
        // Only direct children: a consumer's credentials live under its key.
        .filter(|e| !e.key[prefix_len..].contains('/'))
        .map(|e| {
            let v = serde_json::from_slice(&e.value).unwrap_or(Value::Null);
            (e, v)
        })
        .collect();
    let (page, total) = query.apply(entries);
    let list: Vec<Value> = page.iter().map(|(e, _)| item(admin, c, e)).collect();
    json_value(StatusCode::OK, &json!({ "list": list, "total": total }))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The JSON object of a body, or APISIX's error.
fn body_object(call: &Call) -> Result<Map<String, Value>, Reply> {
    if call.body.iter().all(u8::is_ascii_whitespace) {
        return Err(error(StatusCode::BAD_REQUEST, "missing new configuration"));
    }
    match serde_json::from_slice::<Value>(&call.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "invalid configuration: the body must be a JSON object",
        )),
        Err(e) => Err(json_value(
            StatusCode::BAD_REQUEST,
            &json!({
                "error_msg": format!("invalid request body: {e}"),
                "req_body": String::from_utf8_lossy(&call.body),
            }),
        )),
    }
}

fn ttl(call: &Call) -> Result<Option<Duration>, Reply> {
    match call.arg("ttl") {
        None => Ok(None),
        Some(t) => t
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .map(|s| Some(Duration::from_secs(s)))
            .ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "invalid argument ttl: should be a number",
                )
            }),
    }
}

/// The id in a body as text (integer ids are kept as their decimal text).
fn body_id(value: &Map<String, Value>, field: &str) -> Option<String> {
    match value.get(field)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// Server-managed fields a client may not set on create or replace.
fn forbidden_times(value: &Map<String, Value>) -> Option<&'static str> {
    let nested = ["upstream", "plugins"]
        .iter()
        .filter_map(|k| value.get(*k).and_then(Value::as_object));
    for map in std::iter::once(value).chain(nested) {
        for field in ["create_time", "update_time"] {
            if map.contains_key(field) {
                return Some(field);
            }
        }
    }
    None
}

/// Validates a value for `c` (schema, rules, references). The value must be complete.
async fn validate(
    admin: &Admin,
    c: &Collection,
    id: &str,
    value: &Map<String, Value>,
) -> Result<(), Reply> {
    let as_value = Value::Object(value.clone());
    if let Err(problems) = c.resource.check(&as_value) {
        let text = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(error(
            StatusCode::BAD_REQUEST,
            &format!("invalid configuration: {text}"),
        ));
    }
    references::check_write(admin, c.resource, &c.key(id), id, value).await
}

async fn put(admin: &Admin, call: &Call, c: &Collection, id: Option<&str>) -> Reply {
    let mut value = match body_object(call) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let noun = c.resource.noun();
    let field = c.id_field();
    let in_body = field.and_then(|f| body_id(&value, f));
    let id = match (id, in_body) {
        (Some(url), Some(body)) if url != body => {
            let message = if c.resource == Resource::Consumer {
                "wrong username".to_owned()
            } else {
                format!("wrong {noun} id")
            };
            return error(StatusCode::BAD_REQUEST, &message);
        }
        (Some(url), _) => url.to_owned(),
        (None, Some(body)) if c.resource != Resource::PluginMetadata => body,
        _ => return error(StatusCode::BAD_REQUEST, &format!("missing {noun} id")),
    };
    if let Some(field) = forbidden_times(&value) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("the property is forbidden:  {field}"),
        );
    }
    store_item(admin, call, c, id, &mut value, None).await
}

async fn post(admin: &Admin, call: &Call, c: &Collection) -> Reply {
    let mut value = match body_object(call) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if value.contains_key("id") {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("wrong {} id, do not need it", c.resource.noun()),
        );
    }
    if let Some(field) = forbidden_times(&value) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("the property is forbidden:  {field}"),
        );
    }
    let id = match admin.store.next_id().await {
        Ok(n) => format!("{n:020}"),
        Err(e) => return unavailable(&e),
    };
    store_item(admin, call, c, id, &mut value, None).await
}

/// Validates and writes a complete item; `expected` is the mod revision a PATCH read.
async fn store_item(
    admin: &Admin,
    call: &Call,
    c: &Collection,
    id: String,
    value: &mut Map<String, Value>,
    expected: Option<&Entry>,
) -> Reply {
    if c.resource != Resource::Consumer
        && !is_valid_id(&id)
        && c.resource != Resource::PluginMetadata
    {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("invalid configuration: id: invalid id `{id}`: expected 1-64 characters of [a-zA-Z0-9-_.]"),
        );
    }
    let ttl = match ttl(call) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Some(field) = c.id_field() {
        value.insert(field.to_owned(), Value::String(id.clone()));
    }
    let key = c.key(&id);
    let previous = match expected {
        Some(entry) => Some(entry.clone()),
        None => match admin.store.get(&key).await {
            Ok(p) => p,
            Err(e) => return unavailable(&e),
        },
    };
    let now = now();
    let created = previous
        .as_ref()
        .and_then(|p| serde_json::from_slice::<Value>(&p.value).ok())
        .and_then(|v| v.get("create_time").and_then(Value::as_i64))
        .unwrap_or(now);
    if expected.is_none() || !value.contains_key("update_time") {
        value.insert("update_time".to_owned(), json!(now));
    }
    value.insert("create_time".to_owned(), json!(created));
    if let Err(reply) = validate(admin, c, &id, value).await {
        return reply;
    }
    let bytes = Bytes::from(Value::Object(value.clone()).to_string());
    let written = match expected {
        Some(entry) => match admin
            .store
            .compare_and_swap(&key, entry.mod_revision, bytes, ttl)
            .await
        {
            Ok(Some(w)) => w,
            Ok(None) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "value changed before overwritten",
                )
            }
            Err(e) => return unavailable(&e),
        },
        None => match admin.store.put(&key, bytes, ttl).await {
            Ok(w) => w,
            Err(e) => return unavailable(&e),
        },
    };
    let status = if written.previous.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    json_value(
        status,
        &json!({ "key": full_key(admin, &written.entry.key), "value": shown(c, &written.entry) }),
    )
}

async fn patch(
    admin: &Admin,
    call: &Call,
    c: &Collection,
    id: Option<&str>,
    sub_path: &[&str],
) -> Reply {
    let Some(id) = id else {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("missing {} id", c.resource.noun()),
        );
    };
    if call.body.iter().all(u8::is_ascii_whitespace) {
        return error(StatusCode::BAD_REQUEST, "missing new configuration");
    }
    let key = c.key(id);
    let entry = match admin.store.get(&key).await {
        Ok(Some(e)) => e,
        Ok(None) => return not_found(),
        Err(e) => return unavailable(&e),
    };
    let mut value = match serde_json::from_slice::<Value>(&entry.value) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    if sub_path.is_empty() {
        let changes = match body_object(call) {
            Ok(v) => v,
            Err(r) => return r,
        };
        patch::merge(&mut value, changes);
    } else {
        let new = match serde_json::from_slice::<Value>(&call.body) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid request body: {e}"),
                )
            }
        };
        if patch::set_path(&mut value, sub_path, new).is_err() {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid sub-path: /{}", sub_path.join("/")),
            );
        }
    }
    store_item(admin, call, c, id.to_owned(), &mut value, Some(&entry)).await
}

async fn delete(admin: &Admin, call: &Call, c: &Collection, id: Option<&str>) -> Reply {
    let Some(id) = id else {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("missing {} id", c.resource.noun()),
        );
    };
    if call.arg("force") != Some("true") {
        if let Err(reply) = references::check_delete(admin, c.resource, id).await {
            return reply;
        }
    }
    let key = c.key(id);
    match admin.store.delete(&key).await {
        Ok(Some(_)) => json_value(
            StatusCode::OK,
            &json!({ "deleted": "1", "key": full_key(admin, &key) }),
        ),
        Ok(None) => not_found(),
        Err(e) => unavailable(&e),
    }
}

/// `/plugins/list`, `/plugins/{name}`, `/plugins?all=true`, `PUT /plugins/reload`.
fn plugins(call: &Call, rest: &[&str]) -> Reply {
    match rest {
        ["reload"] if call.method == Method::PUT => json(StatusCode::OK, "done"),
        ["reload"] => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "please use PUT method to reload the plugins, GET method is not allowed",
        ),
        _ if call.method != Method::GET => {
            json(StatusCode::NOT_FOUND, r#"{"error_msg":"404 Not Found"}"#)
        }
        ["list"] => {
            let names: Vec<&str> = registry::all().iter().map(|k| k.name()).collect();
            json_value(StatusCode::OK, &json!(names))
        }
        [] => {
            let all: Map<String, Value> = registry::all()
                .iter()
                .map(|k| {
                    let about = json!({"priority": k.priority(), "schema": plugin_schema(*k), "version": 0.1});
                    (k.name().to_owned(), about)
                })
                .collect();
            json_value(StatusCode::OK, &Value::Object(all))
        }
        [name] => plugin_schema_reply(name),
        _ => json(StatusCode::NOT_FOUND, r#"{"error_msg":"404 Not Found"}"#),
    }
}

/// A plugin's config schema with APISIX's injected `_meta` property.
fn plugin_schema(kind: &dyn PluginKind) -> Value {
    let mut schema = kind.schema();
    if let Value::Object(map) = &mut schema {
        map.insert(
            "$comment".to_owned(),
            json!("this is a mark for our injected plugin schema"),
        );
        if let Some(Value::Object(props)) = map.get_mut("properties") {
            props.insert(
                "_meta".to_owned(),
                json!({
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "disable": {"type": "boolean"},
                        "priority": {"type": "integer"},
                        "filter": {"type": "array"},
                        "error_response": {"oneOf": [{"type": "string"}, {"type": "object"}]}
                    }
                }),
            );
        }
    }
    schema
}

fn plugin_schema_reply(name: &str) -> Reply {
    match registry::kind(name) {
        Some(kind) => json_value(StatusCode::OK, &plugin_schema(kind)),
        None => error(StatusCode::NOT_FOUND, "plugin not found in subsystem http"),
    }
}

/// `GET /schema/{name}`, `GET /schema/plugins/{name}`, `POST /schema/validate/{resource}`.
fn schema(call: &Call, rest: &[&str]) -> Reply {
    match (call.method.clone(), rest) {
        (Method::GET, ["plugins", name]) => plugin_schema_reply(name),
        (Method::GET, [name]) => match Resource::ALL.iter().find(|r| r.schema_name() == *name) {
            Some(r) => json_value(StatusCode::OK, &r.schema()),
            None => error(
                StatusCode::BAD_REQUEST,
                &format!("not found schema: {name}"),
            ),
        },
        (Method::POST, ["validate", segment]) => {
            let Some(resource) = Resource::from_segment(segment) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("not found schema: {segment}"),
                );
            };
            let value: Value = match serde_json::from_slice(&call.body) {
                Ok(v) => v,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("invalid request body: {e}"),
                    )
                }
            };
            match resource.check(&value) {
                Ok(()) => json(StatusCode::OK, ""),
                Err(problems) => error(
                    StatusCode::BAD_REQUEST,
                    &problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            }
        }
        _ => json(StatusCode::NOT_FOUND, r#"{"error_msg":"404 Not Found"}"#),
    }
}

/// `POST /configs/validate`: a whole declarative config (JSON), checked as the standalone file
/// would be; 200 when every item is valid, else 400 listing every problem.
fn validate_config(body: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(body);
    match declarative::parse(&text, Format::Json) {
        Ok(loaded) if loaded.rejected.is_empty() => json(StatusCode::OK, ""),
        Ok(loaded) => json_value(
            StatusCode::BAD_REQUEST,
            &json!({
                "error_msg": "Configuration validation failed",
                "errors": loaded.rejected.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
        ),
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            &format!("invalid configuration: {e}"),
        ),
    }
}
