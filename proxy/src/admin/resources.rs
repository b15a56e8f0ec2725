//! The resource endpoints: create, replace, patch, read, list and delete, with APISIX's ids,
//! envelopes, status codes and messages (APISIX's v3 Admin API; see docs/admin-api.md).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::list::ListQuery;
use super::redact::{redact, Audience};
use super::references;
use super::{error, not_found, patch, unavailable, Admin, Call};
use crate::listener::{json, json_value, FullResponse};
use crate::store::Entry;
use model::{is_valid_id, is_valid_id_value, is_valid_username, jsonschema, Resource};
use plugin_api::registry::Registry;
use plugin_api::PluginKind;

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
pub(super) async fn dispatch(admin: &Admin, call: &Call) -> FullResponse {
    let segments: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        [] => not_found(),
        ["plugins", rest @ ..] => plugins(&admin.plugins, call, rest),
        ["schema", rest @ ..] => schema(&admin.plugins, call, rest),
        ["configs", "validate"] if call.method == Method::POST => validate_config(admin, call),
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
            // A write needs the consumer; so does a listing (APISIX: its key is not found).
            let listing = call.method == Method::GET && rest.is_empty();
            if call.method == Method::PUT || listing {
                match admin.store.get(&format!("consumers/{username}")).await {
                    Ok(Some(_)) => {}
                    Ok(None) if listing => return key_not_found(),
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

async fn on_collection(admin: &Admin, call: &Call, c: &Collection, rest: &[&str]) -> FullResponse {
    // APISIX checks `ttl` before anything of the resource (its method, its id).
    let ttl = match ttl(call) {
        Ok(t) => t,
        Err(r) => return r,
    };
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
        return not_found();
    }
    match call.method {
        Method::GET => match id {
            Some(id) => get_one(admin, c, id, call.audience).await,
            None => get_list(admin, call, c).await,
        },
        Method::PUT => put(admin, call, c, id, ttl).await,
        Method::POST => post(admin, call, c, id, ttl).await,
        Method::PATCH => patch(admin, call, c, id, sub_path, ttl).await,
        Method::DELETE => delete(admin, call, c, id).await,
        _ => not_found(),
    }
}

fn full_key(admin: &Admin, key: &str) -> String {
    format!("{}/{key}", admin.store.prefix())
}

/// APISIX's answer to an invalid id (its `id_schema`, plus `.` and `..` here).
const INVALID_ID: &str =
    "invalid configuration: property \"id\" validation failed: object matches none of the required";

fn key_not_found() -> FullResponse {
    json(StatusCode::NOT_FOUND, r#"{"message":"Key not found"}"#)
}

/// The value of an entry as the Admin API shows it to `audience` (see [`redact`]).
fn shown(c: &Collection, entry: &Entry, audience: Audience) -> Value {
    let mut value: Value = serde_json::from_slice(&entry.value).unwrap_or(Value::Null);
    redact(c.resource, &mut value, audience);
    value
}

fn item(admin: &Admin, c: &Collection, entry: &Entry, audience: Audience) -> Value {
    json!({
        "key": full_key(admin, &entry.key),
        "value": shown(c, entry, audience),
        "createdIndex": entry.create_revision,
        "modifiedIndex": entry.mod_revision,
    })
}

async fn get_one(admin: &Admin, c: &Collection, id: &str, audience: Audience) -> FullResponse {
    match admin.store.get(&c.key(id)).await {
        Ok(Some(entry)) => json_value(StatusCode::OK, &item(admin, c, &entry, audience)),
        Ok(None) => key_not_found(),
        Err(e) => unavailable(&e),
    }
}

async fn get_list(admin: &Admin, call: &Call, c: &Collection) -> FullResponse {
    let query = match ListQuery::parse(&call.args) {
        Ok(q) => q,
        // APISIX answers a bad page size with the bare message.
        Err(message) if message.starts_with("page_size") => {
            return json(StatusCode::BAD_REQUEST, message)
        }
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
    let list: Vec<Value> = page
        .iter()
        .map(|(e, _)| item(admin, c, e, call.audience))
        .collect();
    json_value(StatusCode::OK, &json!({ "list": list, "total": total }))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The JSON object of a body, or APISIX's error.
fn body_object(call: &Call) -> Result<Map<String, Value>, FullResponse> {
    if call.body.iter().all(u8::is_ascii_whitespace) {
        let message = if call.method == Method::PATCH {
            "missing new configuration"
        } else {
            "missing configurations"
        };
        return Err(error(StatusCode::BAD_REQUEST, message));
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

fn ttl(call: &Call) -> Result<Option<Duration>, FullResponse> {
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
) -> Result<(), FullResponse> {
    check_value(admin, c.resource, &Value::Object(value.clone()))
        .map_err(|message| error(StatusCode::BAD_REQUEST, &message))?;
    references::check_write(admin, c.resource, &c.key(id), id, value).await
}

/// The checks of a write that need no other object: APISIX's (schema and rules), this
/// gateway's, then the plugin runners'. The error is the answer's `error_msg`.
fn check_value(admin: &Admin, resource: Resource, value: &Value) -> Result<(), String> {
    resource.check_as_apisix(value, &admin.plugins)?;
    if let Err(problems) = resource.check(value, &admin.plugins) {
        let text = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(format!("invalid configuration: {text}"));
    }
    match value.get("plugins") {
        Some(Value::Object(plugins)) => admin.runners.check(plugins),
        _ => Ok(()),
    }
}

async fn put(
    admin: &Admin,
    call: &Call,
    c: &Collection,
    id: Option<&str>,
    ttl: Option<Duration>,
) -> FullResponse {
    let mut value = match body_object(call) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let noun = c.resource.noun();
    let field = c.id_field();
    let in_body = field.and_then(|f| body_id(&value, f));
    // The id as APISIX stores it: the path's (text), else the body's as written, so that
    // `"id": 1` stays the number 1.
    let stored = match (id, field) {
        (Some(url), _) => Value::String(url.to_owned()),
        (None, Some(f)) => value.get(f).cloned().unwrap_or(Value::Null),
        (None, None) => Value::Null,
    };
    let id = match (id, in_body) {
        (Some(url), Some(body)) if url != body => {
            let message = if c.resource == Resource::Consumer {
                "wrong username".to_owned()
            } else {
                format!("wrong {noun} id")
            };
            return error(StatusCode::BAD_REQUEST, &message);
        }
        // APISIX has no id to check for a consumer, even with one in the path: the body's
        // `username` is required by its schema, which says what is missing.
        (_, None) if c.resource == Resource::Consumer => {
            let message = c
                .resource
                .check_as_apisix(&Value::Object(value), &admin.plugins)
                .err()
                .unwrap_or_else(|| format!("missing {noun} id"));
            return error(StatusCode::BAD_REQUEST, &message);
        }
        (Some(url), _) => url.to_owned(),
        (None, Some(body)) if c.resource != Resource::PluginMetadata => body,
        (None, _) if c.resource == Resource::PluginMetadata => {
            return error(StatusCode::BAD_REQUEST, "missing plugin name")
        }
        _ => return error(StatusCode::BAD_REQUEST, &format!("missing {noun} id")),
    };
    // The body's id as written: its text may look valid when its JSON is not (`-1`, `1.5`).
    let checks_id = !matches!(c.resource, Resource::Consumer | Resource::PluginMetadata);
    if checks_id && value.get("id").is_some_and(|v| !is_valid_id_value(v)) {
        return error(StatusCode::BAD_REQUEST, INVALID_ID);
    }
    if let Some(field) = forbidden_times(&value) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("the property is forbidden:  {field}"),
        );
    }
    if c.resource == Resource::PluginMetadata && admin.plugins.kind(&id).is_none() {
        return error(StatusCode::BAD_REQUEST, "invalid plugin name");
    }
    store_item(admin, call, c, (id, stored), &mut value, None, ttl).await
}

async fn post(
    admin: &Admin,
    call: &Call,
    c: &Collection,
    path_id: Option<&str>,
    ttl: Option<Duration>,
) -> FullResponse {
    let mut value = match body_object(call) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if path_id.is_some() || value.contains_key("id") {
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
    let stored = Value::String(id.clone());
    store_item(admin, call, c, (id, stored), &mut value, None, ttl).await
}

/// Validates and writes a complete item; `id` is its key's id and the id as stored in the value
/// (an integer when the client sent one); `expected` is the entry a PATCH read.
async fn store_item(
    admin: &Admin,
    call: &Call,
    c: &Collection,
    (id, stored): (String, Value),
    value: &mut Map<String, Value>,
    expected: Option<&Entry>,
    ttl: Option<Duration>,
) -> FullResponse {
    if c.resource != Resource::Consumer
        && !is_valid_id(&id)
        && c.resource != Resource::PluginMetadata
    {
        return error(StatusCode::BAD_REQUEST, INVALID_ID);
    }
    if let Some(field) = c.id_field() {
        value.insert(field.to_owned(), stored);
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
    // A PATCH keeps the time stamps its merged value holds (APISIX stores what it is given);
    // a PUT or POST cannot hold them (forbidden above) and keeps the stored creation time.
    let created = value
        .get("create_time")
        .and_then(Value::as_i64)
        .or_else(|| {
            previous
                .as_ref()
                .and_then(|p| serde_json::from_slice::<Value>(&p.value).ok())
                .and_then(|v| v.get("create_time").and_then(Value::as_i64))
        })
        .unwrap_or(now);
    if !value.contains_key("update_time") {
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
        &json!({ "key": full_key(admin, &written.entry.key), "value": shown(c, &written.entry, call.audience) }),
    )
}

async fn patch(
    admin: &Admin,
    call: &Call,
    c: &Collection,
    id: Option<&str>,
    sub_path: &[&str],
    ttl: Option<Duration>,
) -> FullResponse {
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
        Ok(None) => return key_not_found(),
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
        let stamped = changes.contains_key("update_time");
        patch::merge(&mut value, changes);
        if !stamped {
            value.remove("update_time");
        }
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
        value.remove("update_time");
    }
    let stored = Value::String(id.to_owned());
    store_item(
        admin,
        call,
        c,
        (id.to_owned(), stored),
        &mut value,
        Some(&entry),
        ttl,
    )
    .await
}

async fn delete(admin: &Admin, call: &Call, c: &Collection, id: Option<&str>) -> FullResponse {
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
        Ok(None) => key_not_found(),
        Err(e) => unavailable(&e),
    }
}

/// `/plugins/list`, `/plugins/{name}`, `/plugins?all=true`, `PUT /plugins/reload`, each with
/// APISIX's `?subsystem=http|stream` (this gateway has no stream plugins).
fn plugins(registry: &Registry, call: &Call, rest: &[&str]) -> FullResponse {
    let subsystem = call.arg("subsystem").unwrap_or("http");
    let http = subsystem == "http";
    match rest {
        ["reload"] if call.method == Method::PUT => json(StatusCode::OK, "done"),
        ["reload"] => error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!(
                "please use PUT method to reload the plugins, {} method is not allowed.",
                call.method
            ),
        ),
        _ if call.method != Method::GET => not_found(),
        // APISIX answers this one with a bare string.
        ["list"] if !matches!(subsystem, "http" | "stream") => {
            json(StatusCode::BAD_REQUEST, "invalid subsystem passed")
        }
        ["list"] => {
            let names: Vec<&str> = registry
                .all()
                .iter()
                .filter(|_| http)
                .map(|k| k.name())
                .collect();
            json_value(StatusCode::OK, &json!(names))
        }
        _ if !matches!(subsystem, "http" | "stream") => error(
            StatusCode::BAD_REQUEST,
            &format!("unsupported subsystem: {subsystem}"),
        ),
        _ if call.arg("all") == Some("true") => {
            let all: Map<String, Value> = registry.all()
                .iter()
                .filter(|_| http)
                .map(|k| {
                    let mut about = json!({"priority": k.priority(), "schema": plugin_schema(k.as_ref()), "version": 0.1});
                    // As APISIX, a plugin that reads metadata shows its schema.
                    if let Some(metadata) = k.metadata_schema() {
                        about["metadata_schema"] = metadata;
                    }
                    (k.name().to_owned(), about)
                })
                .collect();
            json_value(StatusCode::OK, &Value::Object(all))
        }
        [name] if http && call.arg("schema_type") == Some("consumer") => {
            match registry.kind(name) {
                Some(kind) => kind.consumer_schema().map_or_else(
                    || error(StatusCode::BAD_REQUEST, "not found schema"),
                    |schema| json_value(StatusCode::OK, &schema),
                ),
                None => error(StatusCode::NOT_FOUND, "plugin not found in subsystem http"),
            }
        }
        [name] if http => plugin_schema_reply(registry, name),
        [] | [_] => error(
            StatusCode::NOT_FOUND,
            &format!("plugin not found in subsystem {subsystem}"),
        ),
        _ => not_found(),
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
                        "priority": {"type": "integer", "description": "priority of plugins by customized order"},
                        "filter": {"type": "array", "description": "filter determines whether the plugin needs to be executed at runtime"},
                        "error_response": {"oneOf": [{"type": "string"}, {"type": "object"}]}
                    }
                }),
            );
        }
    }
    schema
}

fn plugin_schema_reply(registry: &Registry, name: &str) -> FullResponse {
    match registry.kind(name) {
        Some(kind) => json_value(StatusCode::OK, &plugin_schema(kind.as_ref())),
        None => error(StatusCode::NOT_FOUND, "plugin not found in subsystem http"),
    }
}

/// `GET /schema/{name}`, `GET /schema/plugins/{name}`, `POST /schema/validate/{resource}`.
fn schema(registry: &Registry, call: &Call, rest: &[&str]) -> FullResponse {
    match (call.method.clone(), rest) {
        // `?schema_type=consumer`: an authentication plugin's consumer schema.
        (Method::GET, ["plugins", name]) if call.arg("schema_type") == Some("consumer") => {
            match registry.kind(name).and_then(|k| k.consumer_schema()) {
                Some(consumer) => json_value(StatusCode::OK, &consumer),
                None => plugin_schema_reply(registry, name),
            }
        }
        (Method::GET, ["plugins", name]) => plugin_schema_reply(registry, name),
        (Method::GET, [name]) => match Resource::ALL.iter().find(|r| r.schema_name() == *name) {
            // APISIX's schema, as APISIX serves it, where the resource has one.
            Some(r) => match r.apisix_schema() {
                Some(schema) => json_value(StatusCode::OK, schema),
                None => json_value(StatusCode::OK, &r.schema()),
            },
            None => error(
                StatusCode::BAD_REQUEST,
                &format!("not found schema: {name}"),
            ),
        },
        (Method::POST, ["validate", segment]) => {
            let Some(resource) = Resource::from_segment(segment) else {
                return error(
                    StatusCode::NOT_FOUND,
                    &format!("Unsupported resource type: {segment}"),
                );
            };
            let value: Value = match serde_json::from_slice(&call.body) {
                Ok(v) => v,
                Err(e) => {
                    return json_value(
                        StatusCode::BAD_REQUEST,
                        &json!({
                            "error_msg": format!("invalid request body: {e}"),
                            "req_body": String::from_utf8_lossy(&call.body),
                        }),
                    )
                }
            };
            // APISIX checks the schema only; this gateway's own rules come after it.
            let apisix = resource
                .apisix_schema()
                .map_or(Ok(()), |schema| jsonschema::check(schema, &value));
            if let Err(message) = apisix {
                return error(StatusCode::BAD_REQUEST, &message);
            }
            match resource.check(&value, registry) {
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
        _ => not_found(),
    }
}

/// `POST /configs/validate`: every item of a declarative config (JSON) checked as the Admin API checks a write, without its references, as
/// APISIX does: 200 `{}` when all pass, else 400 listing each failing item (`resource_type`,
/// `resource_id`, `index`, `error`) and each repeated id.
fn validate_config(admin: &Admin, call: &Call) -> FullResponse {
    let invalid_body = |why: &str| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("invalid request body: {why}"),
        )
    };
    if call.body.is_empty() {
        return invalid_body("empty request body");
    }
    let config = match serde_json::from_slice(&call.body) {
        Ok(Value::Object(config)) => config,
        Ok(_) => return invalid_body("expected an object"),
        Err(why) => return invalid_body(&why.to_string()),
    };
    let mut errors = Vec::new();
    for resource in Resource::ALL {
        if resource == Resource::Credential {
            // Credentials come among the consumers, by their `.../credentials/...` id.
            continue;
        }
        let key = resource.segment();
        let version_key = format!("{key}_conf_version");
        if let Some(version) = config.get(&version_key).filter(|v| !v.is_number()) {
            errors.push(json!({
                "resource_type": key,
                "error": format!("{version_key} must be a number, got {}", lua_type(version)),
            }));
        }
        let Some(Value::Array(items)) = config.get(key) else {
            continue;
        };
        let mut seen = std::collections::HashSet::new();
        for (index, item) in items.iter().enumerate() {
            let id = item.get("id").filter(|v| !v.is_null());
            let resource_id = id
                .or_else(|| item.get("username"))
                .cloned()
                .unwrap_or_else(|| json!(""));
            let is_credential = resource == Resource::Consumer
                && id
                    .and_then(Value::as_str)
                    .is_some_and(|id| id.contains("/credentials/"));
            let checked_as = if is_credential {
                Resource::Credential
            } else {
                resource
            };
            let mut fail = |message: String| {
                errors.push(json!({
                    "resource_type": key,
                    "resource_id": resource_id.clone(),
                    "index": index,
                    "error": message,
                }));
            };
            if let Err(message) = check_value(admin, checked_as, item) {
                fail(message);
            }
            let (identifier, kind) = match (resource, id) {
                (Resource::Consumer, None) => (item.get("username"), "username"),
                (Resource::Consumer, Some(_)) => (id, "credential id"),
                _ => (id, "id"),
            };
            let Some(identifier) = identifier else {
                continue;
            };
            let text = identifier
                .as_str()
                .map_or_else(|| identifier.to_string(), str::to_owned);
            if !seen.insert(text.clone()) {
                fail(format!("found duplicate {kind} {text} in {key}"));
            }
        }
    }
    if errors.is_empty() {
        json(StatusCode::OK, "{}")
    } else {
        json_value(
            StatusCode::BAD_REQUEST,
            &json!({"error_msg": "Configuration validation failed", "errors": errors}),
        )
    }
}

/// The name Lua gives a JSON value's type, for APISIX's messages.
fn lua_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "nil",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) | Value::Object(_) => "table",
    }
}
