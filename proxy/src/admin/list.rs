//! Listing as APISIX v3: filters `name=<regex>`, `label=<key>`, `uri=<regex>` (a route's `uri` or
//! any of its `uris`) and `filter=<k=v&...>` (exact `service_id` / `upstream_id`), all AND-ed;
//! paging with `page` and `page_size` (10-500), applied only when both are given, sorted by
//! creation revision. `total` counts what matched before paging.

use regex::Regex;
use serde_json::Value;

use crate::store::Entry;

/// Parsed list arguments.
#[derive(Default)]
pub struct ListQuery {
    page: Option<(usize, usize)>,
    name: Option<Regex>,
    label: Option<String>,
    uri: Option<Regex>,
    filter: Vec<(String, String)>,
}

impl ListQuery {
    /// Parses the query arguments.
    ///
    /// # Errors
    /// APISIX's message for a bad page size, or a message naming a bad regex.
    pub fn parse(args: &[(String, String)]) -> Result<ListQuery, String> {
        let get = |name: &str| {
            args.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let regex = |name: &str| -> Result<Option<Regex>, String> {
            get(name)
                .map(|r| Regex::new(r).map_err(|e| format!("invalid {name} regex: {e}")))
                .transpose()
        };
        let page = match (get("page"), get("page_size")) {
            (Some(page), Some(size)) => {
                let size: usize = size
                    .parse()
                    .ok()
                    .filter(|s| (10..=500).contains(s))
                    .ok_or("page_size must be between 10 and 500")?;
                let page: usize = page.parse().ok().filter(|p| *p >= 1).unwrap_or(1);
                Some((page, size))
            }
            _ => None,
        };
        let filter = get("filter")
            .map(|f| {
                form_urlencoded::parse(f.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .filter(|(k, _)| k == "service_id" || k == "upstream_id")
                    .collect()
            })
            .unwrap_or_default();
        Ok(ListQuery {
            page,
            name: regex("name")?,
            label: get("label").map(str::to_owned),
            uri: regex("uri")?,
            filter,
        })
    }

    fn matches(&self, value: &Value) -> bool {
        let text = |field: &str| value.get(field).and_then(Value::as_str);
        if let Some(re) = &self.name {
            if !text("name").is_some_and(|n| re.is_match(n)) {
                return false;
            }
        }
        if let Some(label) = &self.label {
            if value.get("labels").and_then(|l| l.get(label)).is_none() {
                return false;
            }
        }
        if let Some(re) = &self.uri {
            let uris = value.get("uris").and_then(Value::as_array);
            let any = text("uri").is_some_and(|u| re.is_match(u))
                || uris
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .any(|u| re.is_match(u));
            if !any {
                return false;
            }
        }
        self.filter.iter().all(|(k, v)| match value.get(k) {
            Some(Value::String(s)) => s == v,
            Some(Value::Number(n)) => n.to_string() == *v,
            _ => false,
        })
    }

    /// The matching entries (with their parsed values), paged; and the total before paging.
    pub fn apply(&self, entries: Vec<(Entry, Value)>) -> (Vec<(Entry, Value)>, usize) {
        let mut matched: Vec<_> = entries
            .into_iter()
            .filter(|(_, v)| self.matches(v))
            .collect();
        let total = matched.len();
        if let Some((page, size)) = self.page {
            matched.sort_by_key(|(e, _)| e.create_revision);
            matched = matched
                .into_iter()
                .skip((page - 1).saturating_mul(size))
                .take(size)
                .collect();
        }
        (matched, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::json;

    fn args(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn entries(n: i64) -> Vec<(Entry, Value)> {
        (1..=n)
            .map(|i| {
                let value = json!({
                    "uri": format!("/r{i}"),
                    "name": if i % 2 == 0 { "even" } else { "odd" },
                    "labels": if i == 3 { json!({"env": "prod"}) } else { json!({}) },
                    "service_id": if i <= 2 { "s1" } else { "s2" },
                });
                // Created in reverse key order, to see paging sort by creation.
                let entry = Entry {
                    key: format!("routes/{i}"),
                    value: Bytes::new(),
                    create_revision: 100 - i,
                    mod_revision: 100 - i,
                };
                (entry, value)
            })
            .collect()
    }

    #[test]
    fn filters() {
        let q = ListQuery::parse(&args(&[("name", "^ev")])).expect("query");
        assert_eq!(q.apply(entries(5)).1, 2);
        let q = ListQuery::parse(&args(&[("label", "env")])).expect("query");
        assert_eq!(q.apply(entries(5)).0[0].0.key, "routes/3");
        let q = ListQuery::parse(&args(&[("uri", "r[45]$"), ("filter", "service_id=s2")]))
            .expect("query");
        assert_eq!(q.apply(entries(5)).1, 2);
        let q = ListQuery::parse(&args(&[("filter", "service_id=s1&unknown=x")])).expect("query");
        assert_eq!(q.apply(entries(5)).1, 2);
    }

    #[test]
    fn paging() {
        assert_eq!(
            ListQuery::parse(&args(&[("page", "1"), ("page_size", "5")]))
                .err()
                .as_deref(),
            Some("page_size must be between 10 and 500")
        );
        let q = ListQuery::parse(&args(&[("page", "2"), ("page_size", "10")])).expect("query");
        let (page, total) = q.apply(entries(25));
        assert_eq!(total, 25);
        assert_eq!(page.len(), 10);
        // Sorted by creation: routes/25 was created first.
        assert_eq!(page[0].0.key, "routes/15");
        let q = ListQuery::parse(&args(&[("page_size", "10")])).expect("query");
        assert_eq!(
            q.apply(entries(25)).0.len(),
            25,
            "paging needs both arguments"
        );
    }
}
