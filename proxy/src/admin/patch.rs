//! PATCH as APISIX does it: a deep merge of objects where arrays are replaced whole and `null`
//! deletes the key, or, with a sub-path (`PATCH /routes/1/upstream/nodes`), the value at that path
//! replaced by the body.

use serde_json::{Map, Value};

/// Merges `patch` into `target`.
pub fn merge(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(&key);
            }
            Value::Object(inner) => match target.get_mut(&key) {
                Some(Value::Object(existing)) => merge(existing, inner),
                _ => {
                    let mut fresh = Map::new();
                    merge(&mut fresh, inner);
                    target.insert(key, Value::Object(fresh));
                }
            },
            other => {
                target.insert(key, other);
            }
        }
    }
}

/// Replaces the value at `path` (segments) in `target`, creating intermediate objects.
///
/// # Errors
/// The path goes through something that is not an object.
pub fn set_path(target: &mut Map<String, Value>, path: &[&str], value: Value) -> Result<(), ()> {
    let Some((last, parents)) = path.split_last() else {
        return Err(());
    };
    let mut node = target;
    for segment in parents {
        let next = node
            .entry((*segment).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        node = match next {
            Value::Object(map) => map,
            _ => return Err(()),
        };
    }
    node.insert((*last).to_owned(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn merge_rules() {
        let mut target = object(json!({
            "uri": "/a",
            "methods": ["GET", "POST"],
            "upstream": {"type": "roundrobin", "nodes": {"127.0.0.1:1980": 1, "127.0.0.1:1981": 1}}
        }));
        merge(
            &mut target,
            object(json!({
                "methods": ["PUT"],
                "upstream": {"nodes": {"127.0.0.1:1980": null, "127.0.0.1:1982": 2}},
                "desc": "x",
                "labels": {"a": null}
            })),
        );
        assert_eq!(
            Value::Object(target),
            json!({
                "uri": "/a",
                "methods": ["PUT"],
                "upstream": {"type": "roundrobin", "nodes": {"127.0.0.1:1981": 1, "127.0.0.1:1982": 2}},
                "desc": "x",
                "labels": {}
            })
        );
    }

    #[test]
    fn sub_paths() {
        let mut target = object(json!({"uri": "/a", "upstream": {"nodes": {"a:1": 1}}}));
        set_path(&mut target, &["upstream", "nodes"], json!({"b:2": 1})).expect("set");
        set_path(&mut target, &["plugins", "x"], json!({})).expect("set");
        assert_eq!(
            Value::Object(target.clone()),
            json!({"uri": "/a", "upstream": {"nodes": {"b:2": 1}}, "plugins": {"x": {}}})
        );
        assert!(set_path(&mut target, &["uri", "deeper"], json!(1)).is_err());
    }
}
