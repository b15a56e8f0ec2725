//! `post_arg.<path>` variables: a value found in the request body (a JSON document, or the
//! fields of a form) by the path after `post_arg.`.
//!
//! A path is checked when the rule is compiled, with the JSONPath grammar APISIX checks it with
//! (the path read as `$.<path>`):
//! - `.name` (letters, digits and `_`, not starting with a digit), `.0` (an index or a key
//!   written with digits), `.*` (every child); `..` before any of these, or before a bracket,
//!   looks at every depth;
//! - `[*]`, `[0]`, `['key']` / `["key"]` (`\'` / `\"` inside stand for the quote), unions
//!   `[0,'a',2]` and slices `[start:end:step]` (each part optional; a negative bound counts
//!   from the end).
//!
//! Filters (`[?(...)]`) and script subscripts (`[(...)]`) are not supported: a path with one is
//! refused like any other path the grammar does not read. A refused path is reported as
//! `invalid expression "$.<path>" near "<the part not understood>"`.
//!
//! A path without `[`, `*` or `..` names object members one after another (`model.name`): its
//! value is the member reached, if every step is an object. Any other path is a query that
//! collects every value it reaches, children of arrays and objects alike; its value is the list
//! of them (as a JSON array, so that `has` looks into it), or none when nothing is reached.
//!
//! A value that is not text reads as its JSON text: `5`, `true`, `null`, `{"a":1}`.

use std::borrow::Cow;

use serde_json::Value;

use super::ExprError;

/// A compiled `post_arg.<path>`.
#[derive(Debug, Clone)]
pub struct BodyPath(Lookup);

#[derive(Debug, Clone)]
enum Lookup {
    /// Object members, one after another.
    Members(Vec<Box<str>>),
    /// A JSONPath query.
    Query(Vec<Step>),
}

/// One step of a query: what it selects among the children of the current values (or, with
/// `descend`, among the children of the current values and of all their descendants).
#[derive(Debug, Clone)]
struct Step {
    descend: bool,
    select: Select,
}

#[derive(Debug, Clone)]
enum Select {
    /// Every child.
    All,
    /// The children with one of these keys (array children have their index as key).
    Union(Vec<Item>),
}

#[derive(Debug, Clone)]
enum Item {
    /// A key as written (`name`, `'name'`, `0`): compared as text with the child's key.
    Key(Box<str>),
    Slice(Slice),
}

/// `[start:end:step]`, with the bounds as written (resolved against the container's size).
#[derive(Debug, Clone)]
struct Slice {
    start: Option<i64>,
    end: Option<i64>,
    step: i64,
}

impl BodyPath {
    /// Compiles the path written after `post_arg.`.
    ///
    /// # Errors
    /// [`ExprError::InvalidPath`] when the JSONPath grammar does not read `$.<path>` to its end.
    pub fn parse(path: &str) -> Result<BodyPath, ExprError> {
        let full = format!("$.{path}");
        let mut parser = Parser {
            text: &full,
            pos: 0,
        };
        let steps = parser.path();
        if parser.pos != full.len() {
            return Err(ExprError::InvalidPath {
                rest: full[parser.pos..].to_owned(),
                path: full,
            });
        }
        let query = path.contains(['[', '*']) || path.contains("..");
        Ok(BodyPath(if query {
            Lookup::Query(steps)
        } else {
            Lookup::Members(
                path.split('.')
                    .filter(|p| !p.is_empty())
                    .map(Into::into)
                    .collect(),
            )
        }))
    }

    /// The value the path reaches in `body`, as text (see the module docs).
    pub fn resolve<'b>(&self, body: &'b Value) -> Option<Cow<'b, str>> {
        match &self.0 {
            Lookup::Members(names) => {
                let mut current = body;
                for name in names {
                    current = current.as_object()?.get(&**name)?;
                }
                Some(text(current))
            }
            Lookup::Query(steps) => {
                let found = query(steps, body);
                if found.is_empty() {
                    return None;
                }
                let items: Vec<String> = found.iter().map(|v| v.to_string()).collect();
                Some(Cow::Owned(format!("[{}]", items.join(","))))
            }
        }
    }
}

/// A value as the comparisons read it: text as is, anything else as its JSON text.
fn text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

/// The values the steps reach from `root`, in document order.
fn query<'v>(steps: &[Step], root: &'v Value) -> Vec<&'v Value> {
    let mut current = vec![root];
    for step in steps {
        let mut next = Vec::new();
        for value in current {
            if step.descend {
                let mut stack = vec![value];
                while let Some(v) = stack.pop() {
                    step.select.children(v, &mut next);
                    // Children pushed in reverse so that they are visited in document order.
                    let start = stack.len();
                    stack.extend(children(v).map(|(_, c)| c));
                    stack[start..].reverse();
                }
            } else {
                step.select.children(value, &mut next);
            }
        }
        current = next;
    }
    current
}

/// The children of a value with their keys (an array's indexes from 0).
fn children(value: &Value) -> Box<dyn Iterator<Item = (Cow<'_, str>, &Value)> + '_> {
    match value {
        Value::Object(map) => Box::new(map.iter().map(|(k, v)| (Cow::Borrowed(k.as_str()), v))),
        Value::Array(list) => Box::new(
            list.iter()
                .enumerate()
                .map(|(i, v)| (Cow::Owned(i.to_string()), v)),
        ),
        _ => Box::new(std::iter::empty()),
    }
}

impl Select {
    /// Adds the children of `value` this selects to `out`.
    fn children<'v>(&self, value: &'v Value, out: &mut Vec<&'v Value>) {
        let size = match value {
            Value::Object(map) => map.len(),
            Value::Array(list) => list.len(),
            _ => return,
        };
        for (key, child) in children(value) {
            let selected = match self {
                Select::All => true,
                Select::Union(items) => items.iter().any(|item| item.selects(&key, size)),
            };
            if selected {
                out.push(child);
            }
        }
    }
}

impl Item {
    fn selects(&self, key: &str, size: usize) -> bool {
        match self {
            Item::Key(k) => **k == *key,
            Item::Slice(slice) => key
                .parse::<i64>()
                // Only a key written as the index itself ("1", not "01" or "+1").
                .is_ok_and(|i| i.to_string() == key && slice.contains(i, size)),
        }
    }
}

impl Slice {
    /// Whether index `i` is one of the slice's over a container of `size` children.
    fn contains(&self, i: i64, size: usize) -> bool {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        let start = match self.start {
            Some(s) if s < 0 => size.saturating_add(s),
            Some(s) => s,
            None => 0,
        };
        // An open end reaches past the last index; a negative one counts from the end.
        let last = match self.end {
            Some(e) if e < 0 => size.saturating_add(e).saturating_sub(1),
            Some(e) => e.saturating_sub(1),
            None => size,
        };
        match self.step {
            0 => false,
            step if step > 0 => i >= start && i <= last && (i - start) % step == 0,
            step => i <= start && i >= last && (start - i) % step == 0,
        }
    }
}

/// A reader of the JSONPath grammar (an ordered-choice grammar: each rule either reads its
/// input and moves on, or reads nothing).
struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    /// Reads `s` if the input goes on with it.
    fn eat(&mut self, s: &str) -> bool {
        let found = self.rest().starts_with(s);
        if found {
            self.pos += s.len();
        }
        found
    }

    fn spaces(&mut self) {
        let skipped = self.rest().len() - self.rest().trim_start_matches([' ', '\t', '\n']).len();
        self.pos += skipped;
    }

    /// Runs `rule`; when it fails, the input is left where it was.
    fn attempt<T>(&mut self, rule: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let start = self.pos;
        let found = rule(self);
        if found.is_none() {
            self.pos = start;
        }
        found
    }

    /// The whole path from `$`: as many steps as read (the caller checks that all was read).
    fn path(&mut self) -> Vec<Step> {
        let mut steps = Vec::new();
        self.spaces();
        if !self.eat("$") {
            return steps;
        }
        let first = self.attempt(|p| {
            let descend = p.dots()?;
            let select = p.child_name()?;
            Some(Step { descend, select })
        });
        let first = first.or_else(|| {
            self.attempt(|p| {
                p.subscript().map(|select| Step {
                    descend: false,
                    select,
                })
            })
        });
        steps.extend(first);
        while let Some(step) = self.attempt(Self::step) {
            steps.push(step);
        }
        self.spaces();
        steps
    }

    /// `..` (true) or `.` (false).
    fn dots(&mut self) -> Option<bool> {
        if self.eat("..") {
            Some(true)
        } else {
            self.eat(".").then_some(false)
        }
    }

    /// A step after the first: `.name`, `..name`, `..[...]` or `[...]`.
    fn step(&mut self) -> Option<Step> {
        if let Some(step) = self.attempt(|p| {
            let descend = p.dots()?;
            let select = p.child_name()?;
            Some(Step { descend, select })
        }) {
            return Some(step);
        }
        if let Some(select) = self.attempt(|p| {
            p.eat("..").then_some(())?;
            p.subscript()
        }) {
            return Some(Step {
                descend: true,
                select,
            });
        }
        self.subscript().map(|select| Step {
            descend: false,
            select,
        })
    }

    /// After a dot: an index, a name or `*`.
    fn child_name(&mut self) -> Option<Select> {
        if let Some(index) = self.index() {
            return Some(Select::Union(vec![Item::Key(index.into())]));
        }
        if let Some(name) = self.name() {
            return Some(Select::Union(vec![Item::Key(name.into())]));
        }
        self.eat("*").then_some(Select::All)
    }

    /// An optionally signed integer as written, then spaces.
    fn index(&mut self) -> Option<String> {
        let rest = self.rest();
        let sign = usize::from(rest.starts_with(['+', '-']));
        let digits = rest[sign..].bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let index = rest[..sign + digits].to_owned();
        self.pos += sign + digits;
        self.spaces();
        Some(index)
    }

    /// A name (`[A-Za-z_][A-Za-z0-9_]*`), then spaces.
    fn name(&mut self) -> Option<String> {
        let rest = self.rest();
        if !rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            return None;
        }
        let len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        let name = rest[..len].to_owned();
        self.pos += len;
        self.spaces();
        Some(name)
    }

    /// `[*]`, or `[` a union of keys, indexes and slices `]`.
    fn subscript(&mut self) -> Option<Select> {
        self.attempt(|p| {
            p.eat("[").then_some(())?;
            let select = if p.eat("*") {
                Select::All
            } else {
                let mut items = vec![p.union_item()?];
                while let Some(item) = p.attempt(|p| {
                    p.eat(",").then_some(())?;
                    p.spaces();
                    p.union_item()
                }) {
                    items.push(item);
                }
                Select::Union(items)
            };
            p.eat("]").then_some(select)
        })
    }

    /// One member of a union: a slice, a quoted key or an index.
    fn union_item(&mut self) -> Option<Item> {
        if let Some(slice) = self.attempt(Self::slice) {
            return Some(Item::Slice(slice));
        }
        if let Some(key) = self.quoted() {
            return Some(Item::Key(key.into()));
        }
        self.index().map(|i| Item::Key(i.into()))
    }

    /// `start:end:step`, each part optional but the first colon.
    fn slice(&mut self) -> Option<Slice> {
        let number = |text: Option<String>| text.and_then(|t| t.parse::<i64>().ok());
        let start = number(self.index());
        self.eat(":").then_some(())?;
        self.spaces();
        let end = number(self.index());
        let step = match self.attempt(|p| {
            p.eat(":").then_some(())?;
            p.spaces();
            p.index()
        }) {
            Some(text) => text.parse::<i64>().ok()?,
            None => 1,
        };
        Some(Slice { start, end, step })
    }

    /// A key in single or double quotes (a backslash keeps the next character inside), then
    /// spaces; `\'` (or `\"`) reads as the quote.
    fn quoted(&mut self) -> Option<String> {
        let quote = self
            .rest()
            .chars()
            .next()
            .filter(|c| *c == '\'' || *c == '"')?;
        let body = &self.rest()[1..];
        let mut chars = body.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => {
                    chars.next()?;
                }
                (i, c) if c == quote => break i,
                _ => {}
            }
        };
        let escaped = format!("\\{quote}");
        let key = body[..end].replace(&escaped, &quote.to_string());
        self.pos += 1 + end + 1;
        self.spaces();
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn get(path: &str, body: &Value) -> Option<String> {
        BodyPath::parse(path)
            .expect("path")
            .resolve(body)
            .map(Cow::into_owned)
    }

    fn refused(path: &str) -> String {
        BodyPath::parse(path).expect_err(path).to_string()
    }

    #[test]
    fn member_paths() {
        let body = json!({"model": {"name": "deepseek", "n": 5, "ok": true, "none": null},
                          "list": ["a"], "a b": 1});
        assert_eq!(get("model.name", &body).as_deref(), Some("deepseek"));
        assert_eq!(get("model.n", &body).as_deref(), Some("5"));
        assert_eq!(get("model.ok", &body).as_deref(), Some("true"));
        assert_eq!(get("model.none", &body).as_deref(), Some("null"));
        assert_eq!(
            get("model", &body).as_deref(),
            Some(r#"{"n":5,"name":"deepseek","none":null,"ok":true}"#)
        );
        assert_eq!(get("model.name.x", &body), None, "text has no members");
        assert_eq!(
            get("list.0", &body),
            None,
            "arrays are not walked by member"
        );
        assert_eq!(get("missing", &body), None);
        assert_eq!(get("model", &json!("text")), None);
    }

    #[test]
    fn queries() {
        let body = json!({"model": "deepseek", "messages": [
            {"role": "system", "content": [{"type": "text"}, {"type": "image_url"}]},
            {"role": "user", "content": "plain"}
        ]});
        assert_eq!(
            get("messages[*].content[*].type", &body).as_deref(),
            Some(r#"["text","image_url"]"#)
        );
        assert_eq!(
            get("messages[0].role", &body).as_deref(),
            Some(r#"["system"]"#)
        );
        assert_eq!(
            get("messages[-1:].role", &body).as_deref(),
            Some(r#"["user"]"#)
        );
        assert_eq!(
            get("messages[0,1].role", &body).as_deref(),
            Some(r#"["system","user"]"#)
        );
        assert_eq!(get("messages[5].role", &body), None, "nothing reached");
        assert_eq!(
            get("messages..type", &body).as_deref(),
            Some(r#"["text","image_url"]"#)
        );
        assert_eq!(get(".model", &body).as_deref(), Some("deepseek"), "members");
        assert_eq!(
            get("messages[1]['role']", &body).as_deref(),
            Some(r#"["user"]"#)
        );
        assert_eq!(
            get("messages.*.role", &body).as_deref(),
            Some(r#"["system","user"]"#)
        );
        let list = json!({"l": [0, 1, 2, 3, 4, 5]});
        assert_eq!(get("l[1:5:2]", &list).as_deref(), Some("[1,3]"));
        assert_eq!(get("l[:-4]", &list).as_deref(), Some("[0,1]"));
        assert_eq!(get("l[::0]", &list), None, "a zero step takes nothing");
        assert_eq!(
            get("l[4:1:-2]", &list).as_deref(),
            Some("[0,2,4]"),
            "down to 0"
        );
    }

    #[test]
    fn refused_paths() {
        assert_eq!(
            refused("messages[.content[*].type"),
            r#"invalid expression "$.messages[.content[*].type" near "[.content[*].type""#
        );
        assert_eq!(refused(""), r#"invalid expression "$." near ".""#);
        assert_eq!(
            refused("model-name"),
            r#"invalid expression "$.model-name" near "-name""#
        );
        assert_eq!(
            refused("a[?(@.b)]"),
            r#"invalid expression "$.a[?(@.b)]" near "[?(@.b)]""#
        );
        assert!(BodyPath::parse("a .b").is_ok(), "spaces after a name");
        assert!(BodyPath::parse("['a']").is_err(), "a dot needs a name");
        assert!(BodyPath::parse(r#"a['x\'y', "z"]"#).is_ok());
    }
}
