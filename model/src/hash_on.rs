//! Where a chash key comes from (APISIX `hash_on` + `key`).
//!
//! Every source is a request variable: `header` reads `http_<name>` and `cookie` reads
//! `cookie_<name>`, the names nginx gives them; `vars_combinations` expands a template of `$var` and
//! `${var}` references.

use crate::expr::Vars;

/// Where the chash key comes from (APISIX `hash_on` + `key`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashOn {
    /// `hash_on: vars`: the variable named by `key` (e.g. `remote_addr`, `arg_id`).
    Vars(String),
    /// `hash_on: header`: the request header named by `key`.
    Header(String),
    /// `hash_on: cookie`: the cookie named by `key`.
    Cookie(String),
    /// `hash_on: consumer`: the authenticated consumer's name.
    Consumer,
    /// `hash_on: vars_combinations`: a template such as `$request_uri$remote_addr` or `${host}-x`.
    VarsCombinations(String),
}

impl HashOn {
    /// The hash key for this request, or `None` (the balancer then falls back to a round-robin pick).
    ///
    /// `Vars` reads the variable itself, `Header` reads `http_<name>` (lower-cased, `-` → `_`),
    /// `Cookie` reads `cookie_<name>` and `Consumer` reads `consumer_name`. `VarsCombinations`
    /// replaces each `$name` or `${name}` (`name` made of ASCII letters, digits and `_`) by the
    /// variable's value, missing ones by nothing; a `$` not followed by a name is kept literally, and
    /// a template that expands to the empty string gives `None`.
    pub fn key(&self, vars: &dyn Vars) -> Option<String> {
        match self {
            HashOn::Vars(name) => vars.get(name).map(|v| v.into_owned()),
            HashOn::Header(name) => {
                let var: String = "http_"
                    .chars()
                    .chain(name.chars().map(|c| match c {
                        '-' => '_',
                        c => c.to_ascii_lowercase(),
                    }))
                    .collect();
                vars.get(&var).map(|v| v.into_owned())
            }
            HashOn::Cookie(name) => vars.get(&format!("cookie_{name}")).map(|v| v.into_owned()),
            HashOn::Consumer => vars.get("consumer_name").map(|v| v.into_owned()),
            HashOn::VarsCombinations(template) => {
                let key = expand(template, vars);
                (!key.is_empty()).then_some(key)
            }
        }
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Expands `$name` and `${name}` in `template`.
fn expand(template: &str, vars: &dyn Vars) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) if braced[..end].bytes().all(is_name_byte) && end > 0 => {
                    (&braced[..end], &braced[end + 1..])
                }
                _ => ("", after),
            }
        } else {
            let end = after
                .bytes()
                .position(|b| !is_name_byte(b))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() {
            out.push('$');
        } else if let Some(v) = vars.get(name) {
            out.push_str(&v);
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("uri", "/a/b"),
            ("request_uri", "/a/b?x=1"),
            ("remote_addr", "10.1.2.3"),
            ("host", "example.com"),
            ("http_x_user_id", "u42"),
            ("cookie_sid", "s-1"),
            ("consumer_name", "jack"),
            ("arg_id", "7"),
        ])
    }

    #[test]
    fn key_table() {
        let v = vars();
        let cases: Vec<(HashOn, Option<&str>)> = vec![
            (HashOn::Vars("uri".into()), Some("/a/b")),
            (HashOn::Vars("arg_id".into()), Some("7")),
            (HashOn::Vars("arg_missing".into()), None),
            (HashOn::Header("X-User-Id".into()), Some("u42")),
            (HashOn::Header("x_user_id".into()), Some("u42")),
            (HashOn::Header("X-Other".into()), None),
            (HashOn::Cookie("sid".into()), Some("s-1")),
            (HashOn::Cookie("SID".into()), None),
            (HashOn::Consumer, Some("jack")),
            (
                HashOn::VarsCombinations("$request_uri$remote_addr".into()),
                Some("/a/b?x=110.1.2.3"),
            ),
            (
                HashOn::VarsCombinations("${host}-x".into()),
                Some("example.com-x"),
            ),
            (
                HashOn::VarsCombinations("$host-$nope-$uri".into()),
                Some("example.com--/a/b"),
            ),
            (
                HashOn::VarsCombinations("cost $ 5 ${} ${host".into()),
                Some("cost $ 5 ${} ${host"),
            ),
            (HashOn::VarsCombinations("a$".into()), Some("a$")),
            (HashOn::VarsCombinations("$nope${nope}".into()), None),
            (HashOn::VarsCombinations("plain".into()), Some("plain")),
        ];
        for (on, want) in cases {
            assert_eq!(on.key(&v).as_deref(), want, "{on:?}");
        }
    }

    #[test]
    fn consumer_absent() {
        let v: HashMap<&str, &str> = HashMap::new();
        assert_eq!(HashOn::Consumer.key(&v), None);
    }
}
