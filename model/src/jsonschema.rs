//! A JSON Schema validator that answers as APISIX's does (lua-resty-jsonschema, the library
//! behind `core.schema.check`): the same keywords in the same order, the first failure only,
//! and the same words, so an Admin API client sees APISIX's `error_msg` byte for byte
//! (`property "uri" validation failed: wrong type: expected string, got number`).
//!
//! What follows from the library running on Lua tables decoded by cjson:
//! - types are Lua's in messages: `table` for objects and arrays, `userdata` for `null`;
//! - an empty `{}` or `[]` is both an object and an array;
//! - a property's `default` is written into the value while it is checked (so later keywords
//!   see it), which is why [`check`] works on a copy;
//! - numbers are printed as Lua prints them (`1`, `0.5`), strings in messages as Lua's `%q`.
//!
//! Object keys are visited in the map's order (Lua visits them in hash order, which no client
//! can rely on); with one failing field, as in APISIX's tests, the answer is the same.

use std::net::{Ipv4Addr, Ipv6Addr};

use regex::Regex;
use serde_json::{Map, Value};

/// Checks `value` against `schema`; the error is lua-resty-jsonschema's message for the first
/// failure.
///
/// # Errors
/// The message of the first failure.
pub fn check(schema: &Value, value: &Value) -> Result<(), String> {
    with_defaults(schema, value).map(drop)
}

/// Checks `value` as [`check`] does, and returns it with the defaults the check wrote (APISIX's
/// checks after the schema see them, e.g. an upstream's `hash_on: "vars"`).
///
/// # Errors
/// The message of the first failure.
pub fn with_defaults(schema: &Value, value: &Value) -> Result<Value, String> {
    let mut copy = value.clone();
    validate(schema, &mut copy)?;
    Ok(copy)
}

/// A schema generated from Rust types (schemars, draft-07) in the shape APISIX's hand-written
/// schemas have, so that [`check`] answers for it as APISIX does: `$ref`s to `definitions`
/// inlined, and `null` dropped from an optional field's types (`Option<T>` means "may be
/// absent", which is how APISIX's schemas say it).
#[must_use]
pub fn from_rust_types(schema: &Value) -> Value {
    let definitions = schema.get("definitions").cloned().unwrap_or(Value::Null);
    let mut shaped = schema.clone();
    if let Value::Object(root) = &mut shaped {
        for key in ["definitions", "$schema", "title"] {
            root.remove(key);
        }
    }
    reshape(&mut shaped, &definitions, 0);
    shaped
}

fn reshape(schema: &mut Value, definitions: &Value, depth: usize) {
    // Recursive types would inline forever; past this depth a part is left unchecked.
    const DEEPEST: usize = 32;
    let Value::Object(map) = schema else {
        return;
    };
    if depth > DEEPEST {
        map.clear();
        return;
    }
    if let Some(Value::String(target)) = map.remove("$ref") {
        let name = target.trim_start_matches("#/definitions/");
        if let Some(Value::Object(found)) = definitions.get(name) {
            for (k, v) in found {
                map.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    if let Some(Value::Array(types)) = map.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            map.insert("type".to_owned(), only);
        }
    }
    if let Some(Value::Array(any)) = map.get("anyOf") {
        let not_null: Vec<&Value> = any
            .iter()
            .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        if let [only] = not_null[..] {
            let only = only.clone();
            map.remove("anyOf");
            if let Value::Object(only) = only {
                for (k, v) in only {
                    map.entry(k).or_insert(v);
                }
            }
            // The merged keys may hold a `$ref` of their own.
            return reshape(schema, definitions, depth + 1);
        }
    }
    for (key, sub) in map.iter_mut() {
        match key.as_str() {
            "properties" | "patternProperties" | "definitions" => {
                if let Value::Object(props) = sub {
                    for prop in props.values_mut() {
                        reshape(prop, definitions, depth + 1);
                    }
                }
            }
            "enum" | "const" | "default" | "required" | "examples" => {}
            _ => match sub {
                Value::Array(items) => {
                    for item in items {
                        reshape(item, definitions, depth + 1);
                    }
                }
                Value::Object(_) => reshape(sub, definitions, depth + 1),
                _ => {}
            },
        }
    }
}

/// Checks `value` and writes the defaults of absent properties into it, as the Lua validator
/// does to the table it is given.
fn validate(schema: &Value, v: &mut Value) -> Result<(), String> {
    let schema = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => return Err("expect false always".to_owned()),
        Value::Object(s) => s,
        _ => return Ok(()),
    };
    check_type(schema, v)?;
    check_object(schema, v)?;
    if let Some(done) = check_array(schema, v)? {
        return done;
    }
    check_string(schema, v)?;
    check_number(schema, v)?;
    if let Some(Value::Array(values)) = schema.get("enum") {
        if !values.iter().any(|e| lua_eq(e, v)) {
            return Err("matches none of the enum values".to_owned());
        }
    }
    check_compound(schema, v)?;
    check_format(schema, v)?;
    if let Some(c) = schema.get("const") {
        if !lua_eq(c, v) {
            return Err("failed to check const value".to_owned());
        }
    }
    Ok(())
}

/// Lua's `type()` of a decoded JSON value.
fn lua_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "userdata",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) | Value::Object(_) => "table",
    }
}

/// The library's table kind: 1 for an empty table, 0 for a non-empty object, 2 for a
/// non-empty array.
fn table_kind(v: &Value) -> Option<u8> {
    match v {
        Value::Object(m) if m.is_empty() => Some(1),
        Value::Array(a) if a.is_empty() => Some(1),
        Value::Object(_) => Some(0),
        Value::Array(_) => Some(2),
        _ => None,
    }
}

fn is_object(v: &Value) -> bool {
    table_kind(v).is_some_and(|k| k <= 1)
}

fn is_array(v: &Value) -> bool {
    table_kind(v).is_some_and(|k| k >= 1)
}

fn is_type(v: &Value, ty: &str) -> bool {
    match ty {
        "object" => is_object(v),
        "array" => is_array(v),
        "table" => table_kind(v).is_some(),
        "integer" => v.as_f64().is_some_and(|n| n % 1.0 == 0.0),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

fn check_type(schema: &Map<String, Value>, v: &Value) -> Result<(), String> {
    match schema.get("type") {
        Some(Value::String(ty)) if !is_type(v, ty) => {
            Err(format!("wrong type: expected {ty}, got {}", lua_type(v)))
        }
        Some(Value::Array(types)) => {
            let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            if names.iter().any(|t| is_type(v, t)) {
                Ok(())
            } else {
                Err(format!(
                    "wrong type: expected one of {}, got {}",
                    names.join(", "),
                    lua_type(v)
                ))
            }
        }
        _ => Ok(()),
    }
}

/// A default the library writes into the value: numbers, strings, booleans and tables.
fn default_of(sub: &Value) -> Option<&Value> {
    sub.get("default").filter(|d| {
        matches!(
            d,
            Value::Number(_)
                | Value::String(_)
                | Value::Bool(_)
                | Value::Array(_)
                | Value::Object(_)
        )
    })
}

/// `properties`, `required`, `dependencies`, `patternProperties`, `additionalProperties`,
/// `minProperties`, `maxProperties`, in the library's order.
fn check_object(schema: &Map<String, Value>, v: &mut Value) -> Result<(), String> {
    const KEYWORDS: [&str; 7] = [
        "properties",
        "additionalProperties",
        "patternProperties",
        "minProperties",
        "maxProperties",
        "dependencies",
        "required",
    ];
    if !KEYWORDS.iter().any(|k| schema.contains_key(*k)) {
        return Ok(());
    }
    let empty = Map::new();
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let dependencies = schema
        .get("dependencies")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if is_object(v) {
        for (prop, sub) in properties {
            let present = v.get(prop.as_str()).is_some();
            if let Some(value) = v.get_mut(prop.as_str()) {
                validate(sub, value)
                    .map_err(|e| format!("property {} validation failed: {e}", lua_quote(prop)))?;
                if let Some(d) = dependencies.get(prop) {
                    check_dependency(prop, d, v)?;
                }
            } else if let Some(i) = required.iter().position(|r| r == prop) {
                required.remove(i);
                return Err(format!("property {} is required", lua_quote(prop)));
            }
            if !present {
                if let Some(default) = default_of(sub) {
                    if v.as_array().is_some_and(Vec::is_empty) {
                        *v = Value::Object(Map::new());
                    }
                    if let Value::Object(map) = v {
                        map.insert(prop.clone(), default.clone());
                    }
                }
            }
        }
        for prop in &required {
            if v.get(*prop).is_none() {
                return Err(format!("property {} is required", lua_quote(prop)));
            }
        }
        for (prop, d) in dependencies {
            if !properties.contains_key(prop) && v.get(prop.as_str()).is_some() {
                check_dependency(prop, d, v)?;
            }
        }
        check_additional(schema, properties, v)?;
    }
    if schema
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
        && table_kind(v) != Some(1)
    {
        return Err("the input data should be an empty table".to_owned());
    }
    Ok(())
}

/// One `dependencies` entry of a present property: a list of names or a schema.
fn check_dependency(prop: &str, d: &Value, v: &mut Value) -> Result<(), String> {
    match d {
        Value::Array(names) if !names.is_empty() => {
            for name in names.iter().filter_map(Value::as_str) {
                if v.get(name).is_none() {
                    return Err(format!(
                        "property {} is required when {} is set",
                        lua_quote(name),
                        lua_quote(prop)
                    ));
                }
            }
            Ok(())
        }
        schema => validate(schema, v).map_err(|e| {
            format!(
                "failed to validate dependent schema for {}: {e}",
                lua_quote(prop)
            )
        }),
    }
}

/// `patternProperties`, `additionalProperties`, `minProperties`, `maxProperties`.
fn check_additional(
    schema: &Map<String, Value>,
    properties: &Map<String, Value>,
    v: &mut Value,
) -> Result<(), String> {
    let additional = schema
        .get("additionalProperties")
        .filter(|a| **a != Value::Bool(true));
    let patterns = schema.get("patternProperties").and_then(Value::as_object);
    let Value::Object(map) = v else {
        // An empty array: nothing to walk.
        return min_max_properties(schema, 0);
    };
    let count = map.len();
    if patterns.is_some() || additional.is_some() {
        for (prop, value) in map.iter_mut() {
            let mut matched = false;
            for (pattern, sub) in patterns.into_iter().flatten() {
                if matches_pattern(pattern, prop) {
                    validate(sub, value).map_err(|e| {
                        format!(
                            "failed to validate {prop} (matching {}): {e}",
                            lua_quote(pattern)
                        )
                    })?;
                    matched = true;
                }
            }
            let Some(additional) = additional else {
                continue;
            };
            if properties.contains_key(prop) || matched {
                continue;
            }
            if additional.is_object() {
                validate(additional, value)
                    .map_err(|e| format!("failed to validate additional property {prop}: {e}"))?;
            } else {
                return Err(format!("additional properties forbidden, found {prop}"));
            }
        }
    }
    min_max_properties(schema, count)
}

fn min_max_properties(schema: &Map<String, Value>, count: usize) -> Result<(), String> {
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64) {
        if (count as u64) < min {
            return Err(format!("expect object to have at least {min} properties"));
        }
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64) {
        if (count as u64) > max {
            return Err(format!("expect object to have at most {max} properties"));
        }
    }
    Ok(())
}

/// `items`, `minItems`, `maxItems`, `uniqueItems`. `Some(result)` ends the whole check (the
/// library returns at once for `items: true` and `items: false`).
fn check_array(
    schema: &Map<String, Value>,
    v: &mut Value,
) -> Result<Option<Result<(), String>>, String> {
    let items = schema.get("items");
    if items.is_none()
        && !["minItems", "maxItems", "uniqueItems"]
            .iter()
            .any(|k| schema.contains_key(*k))
    {
        return Ok(None);
    }
    match items {
        Some(Value::Bool(true)) => return Ok(Some(Ok(()))),
        Some(Value::Bool(false)) => {
            return Ok(Some(if table_kind(v) == Some(1) {
                Ok(())
            } else {
                Err("expect false always".to_owned())
            }))
        }
        _ => {}
    }
    if !is_array(v) {
        return Ok(None);
    }
    // An empty object counts as an empty array.
    let length = v.as_array().map_or(0, Vec::len) as u64;
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
        if length < min {
            return Err(format!("expect array to have at least {min} items"));
        }
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
        if length > max {
            return Err(format!("expect array to have at most {max} items"));
        }
    }
    let Value::Array(list) = v else {
        return Ok(None);
    };
    match items {
        Some(Value::Array(tuple)) if !tuple.is_empty() => {
            for (i, (sub, item)) in tuple.iter().zip(list.iter_mut()).enumerate() {
                validate(sub, item)
                    .map_err(|e| format!("failed to validate item {}: {e}", i + 1))?;
            }
        }
        Some(sub @ Value::Object(_)) => {
            for (i, item) in list.iter_mut().enumerate() {
                validate(sub, item)
                    .map_err(|e| format!("failed to validate item {}: {e}", i + 1))?;
            }
        }
        _ => {}
    }
    if schema.get("uniqueItems") == Some(&Value::Bool(true)) {
        if let Some((a, b)) = first_duplicate(list) {
            return Err(format!(
                "expected unique items but items {a} and {b} are equal"
            ));
        }
    }
    Ok(None)
}

/// The library's `unique_item_in_array`: the first scalar repeated (its first index and the
/// repeat's, 1-based), else the first pair of equal tables.
fn first_duplicate(list: &[Value]) -> Option<(usize, usize)> {
    let mut tables = Vec::new();
    for (i, item) in list.iter().enumerate() {
        if table_kind(item).is_some() {
            tables.push(i);
            continue;
        }
        if let Some(first) = list[..i]
            .iter()
            .position(|earlier| table_kind(earlier).is_none() && lua_eq(earlier, item))
        {
            return Some((first + 1, i + 1));
        }
    }
    for (n, &i) in tables.iter().enumerate() {
        for &j in &tables[n + 1..] {
            if lua_eq(&list[i], &list[j]) {
                return Some((i + 1, j + 1));
            }
        }
    }
    None
}

fn check_string(schema: &Map<String, Value>, v: &Value) -> Result<(), String> {
    let Value::String(s) = v else { return Ok(()) };
    let length = s.chars().count();
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
        if (length as u64) < min {
            return Err(format!(
                "string too short, expected at least {min}, got {length}"
            ));
        }
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        if (length as u64) > max {
            return Err(format!(
                "string too long, expected at most {max}, got {length}"
            ));
        }
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        if !matches_pattern(pattern, s) {
            return Err(format!(
                "failed to match pattern {} with {}",
                lua_quote(pattern),
                lua_quote(s)
            ));
        }
    }
    Ok(())
}

/// A range keyword, when the number fails it, and the words of the message.
type RangeCheck = (&'static str, fn(f64, f64) -> bool, &'static str);

fn check_number(schema: &Map<String, Value>, v: &Value) -> Result<(), String> {
    let Some(n) = v.as_f64() else { return Ok(()) };
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    let checks: [RangeCheck; 4] = [
        ("minimum", |n, b| n < b, "at least"),
        ("exclusiveMinimum", |n, b| n <= b, "greater than"),
        ("maximum", |n, b| n > b, "at most"),
        ("exclusiveMaximum", |n, b| n >= b, "smaller than"),
    ];
    for (key, fails, words) in checks {
        if let Some(b) = bound(key) {
            if fails(n, b) {
                return Err(format!(
                    "expected {} to be {words} {}",
                    lua_number(n),
                    lua_number(b)
                ));
            }
        }
    }
    if let Some(m) = bound("multipleOf") {
        let quotient = n / m;
        let off = if m.fract() == 0.0 {
            n % m != 0.0
        } else {
            let rounded = (quotient + 0.5).floor();
            (quotient - rounded).abs() > 1e-12 * rounded.abs().max(1.0)
        };
        if off {
            return Err(format!(
                "expected {} to be a multiple of {}",
                lua_number(n),
                lua_number(m)
            ));
        }
    }
    Ok(())
}

/// `allOf`, `anyOf`, `oneOf`, `if`/`then`/`else`, `not`.
fn check_compound(schema: &Map<String, Value>, v: &mut Value) -> Result<(), String> {
    for (i, sub) in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        validate(sub, v).map_err(|e| format!("allOf {} failed: {e}", i + 1))?;
    }
    if let Some(Value::Array(any)) = schema.get("anyOf") {
        if !any.iter().any(|sub| validate(sub, v).is_ok()) {
            let requires: Vec<String> = any
                .iter()
                .filter_map(|sub| sub.get("required"))
                .map(Value::to_string)
                .collect();
            return Err(if requires.is_empty() {
                "object matches none of the required".to_owned()
            } else {
                format!(
                    "object matches none of the required: {}",
                    requires.join(" or ")
                )
            });
        }
    }
    if let Some(Value::Array(one)) = schema.get("oneOf") {
        let mut matched = None;
        for (i, sub) in one.iter().enumerate() {
            if validate(sub, v).is_ok() {
                if let Some(first) = matched {
                    return Err(format!(
                        "value should match only one schema, but matches both schemas {first} and {}",
                        i + 1
                    ));
                }
                matched = Some(i + 1);
            }
        }
        if matched.is_none() {
            return Err("value should match only one schema, but matches none".to_owned());
        }
    }
    if let Some(condition) = schema.get("if") {
        let matched = validate(condition, v).is_ok();
        let (branch, words) = if matched {
            ("then", "then clause did not match")
        } else {
            ("else", "else clause did not match")
        };
        if let Some(sub) = schema.get(branch) {
            if validate(sub, v).is_err() {
                return Err(words.to_owned());
            }
        }
    }
    if let Some(not) = schema.get("not") {
        if validate(not, v).is_ok() {
            return Err("value wasn't supposed to match schema".to_owned());
        }
    }
    Ok(())
}

/// `format`: the two APISIX's schemas use (checked by address parsing, as under OpenResty).
fn check_format(schema: &Map<String, Value>, v: &Value) -> Result<(), String> {
    let (Some(format), Value::String(s)) = (schema.get("format").and_then(Value::as_str), v) else {
        return Ok(());
    };
    let valid = match format {
        "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => {
            let bare = s
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .unwrap_or(s);
            bare.parse::<Ipv6Addr>().is_ok()
        }
        _ => true,
    };
    if valid {
        Ok(())
    } else {
        Err(format!("expect valid {format} format but got: {s}"))
    }
}

/// PCRE's unanchored search, as `ngx.re.find`; a pattern that does not compile matches nothing.
fn matches_pattern(pattern: &str, s: &str) -> bool {
    Regex::new(pattern).is_ok_and(|re| re.is_match(s))
}

/// Lua's `==` on decoded JSON (numbers by value), deep for tables (`lib.deepeq`).
fn lua_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| lua_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| lua_eq(p, q)))
        }
        // An empty object and an empty array are the same empty Lua table.
        (Value::Array(x), Value::Object(y)) | (Value::Object(y), Value::Array(x)) => {
            x.is_empty() && y.is_empty()
        }
        _ => a == b,
    }
}

/// A number as Lua's `tostring` prints it (`%.14g`): integers without a fraction.
pub fn lua_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        // Checked above: integral and in range, so the cast is exact.
        #[allow(clippy::cast_possible_truncation)]
        let i = n as i64;
        i.to_string()
    } else {
        n.to_string()
    }
}

/// A string as Lua's `string.format("%q", s)` writes it.
fn lua_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    out.push_str(&format!("\\{:03}", c as u32));
                } else {
                    out.push_str(&format!("\\{}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Messages from lua-resty-jsonschema as APISIX's t/admin tests show them.
    #[test]
    fn messages_are_the_librarys() {
        let schema = json!({
            "type": "object",
            "properties": {
                "uri": {"type": "string", "minLength": 1},
                "uris": {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": true},
                "methods": {"type": "array", "items": {"type": "string", "enum": ["GET", "PURGE"]}},
                "id": {"anyOf": [
                    {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[a-zA-Z0-9-_.]+$"},
                    {"type": "integer", "minimum": 1}
                ]},
                "retries": {"type": "integer", "minimum": 0},
                "labels": {"type": "object", "patternProperties": {".*": {"type": "string"}}},
                "timeout": {"type": "object", "properties": {"connect": {"type": "number", "exclusiveMinimum": 0}}},
                "status": {"type": "integer", "enum": [1, 0], "default": 1}
            },
            "anyOf": [{"required": ["uri"]}, {"required": ["uris"]}],
            "additionalProperties": false
        });
        let cases = [
            (json!({"uri": 1}), "property \"uri\" validation failed: wrong type: expected string, got number"),
            (json!({"uri": ""}), "property \"uri\" validation failed: string too short, expected at least 1, got 0"),
            (json!({"uris": []}), "property \"uris\" validation failed: expect array to have at least 1 items"),
            (json!({"uris": ["/a", "/a"]}), "property \"uris\" validation failed: expected unique items but items 1 and 2 are equal"),
            (json!({"uris": "/a"}), "property \"uris\" validation failed: wrong type: expected array, got string"),
            (json!({"uri": "/", "methods": ["FETCH"]}), "property \"methods\" validation failed: failed to validate item 1: matches none of the enum values"),
            (json!({"uri": "/", "id": -1}), "property \"id\" validation failed: object matches none of the required"),
            (json!({"uri": "/", "retries": -1}), "property \"retries\" validation failed: expected -1 to be at least 0"),
            (json!({"uri": "/", "labels": {"env": ["a"]}}), "property \"labels\" validation failed: failed to validate env (matching \".*\"): wrong type: expected string, got table"),
            (json!({"uri": "/", "timeout": {"connect": 0}}), "property \"timeout\" validation failed: property \"connect\" validation failed: expected 0 to be greater than 0"),
            (json!({"uri": "/", "status": 3}), "property \"status\" validation failed: matches none of the enum values"),
            (json!({"uri": "/", "uri2": 1}), "additional properties forbidden, found uri2"),
            (json!({"methods": ["GET"]}), "object matches none of the required: [\"uri\"] or [\"uris\"]"),
            (json!({"uri": null}), "property \"uri\" validation failed: wrong type: expected string, got userdata"),
            (json!([1]), "wrong type: expected object, got table"),
        ];
        for (value, message) in cases {
            assert_eq!(check(&schema, &value), Err(message.to_owned()), "{value}");
        }
        assert_eq!(
            check(&schema, &json!({"uri": "/", "methods": ["PURGE"], "id": 1})),
            Ok(())
        );
    }

    #[test]
    fn one_of_and_patterns() {
        let one = json!({"oneOf": [{"required": ["a"]}, {"required": ["b"]}]});
        assert_eq!(
            check(&one, &json!({})),
            Err("value should match only one schema, but matches none".to_owned())
        );
        assert_eq!(
            check(&one, &json!({"a": 1, "b": 2})),
            Err("value should match only one schema, but matches both schemas 1 and 2".to_owned())
        );
        let pattern = json!({"type": "string", "pattern": "^[a-zA-Z0-9-_]+$"});
        assert_eq!(
            check(&pattern, &json!("$#^@")),
            Err("failed to match pattern \"^[a-zA-Z0-9-_]+$\" with \"$#^@\"".to_owned())
        );
        // Lua's %q escapes quotes and backslashes.
        assert_eq!(lua_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(lua_number(0.5), "0.5");
        assert_eq!(lua_number(-1.0), "-1");
    }

    #[test]
    fn defaults_are_seen_by_later_keywords() {
        // The default of `hash_on` makes the dependent check pass, as in the Lua library.
        let schema = json!({
            "properties": {"hash_on": {"type": "string", "default": "vars"}},
            "allOf": [{"required": ["hash_on"]}]
        });
        assert_eq!(check(&schema, &json!({})), Ok(()));
    }
}
