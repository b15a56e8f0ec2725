//! Where a chash key comes from (APISIX `hash_on` + `key`).
//!
//! Every source is a request variable: `header` reads `http_<name>` and `cookie` reads
//! `cookie_<name>`, the names nginx gives them; `vars_combinations` expands a template of `$var` and
//! `${var}` references.

use crate::expr::Vars;
use crate::template::{Syntax, Template};

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
    /// `hash_on: vars_combinations`: a template such as `$request_uri$remote_addr` or `${host}-x`,
    /// parsed once ([`HashOn::combination`]).
    VarsCombinations(Template),
}

impl HashOn {
    /// `hash_on: vars_combinations` with the template `key`.
    pub fn combination(key: &str) -> HashOn {
        HashOn::VarsCombinations(Template::parse(key, Syntax::Plain))
    }

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
                let key = template.render(vars);
                (!key.is_empty()).then_some(key)
            }
        }
    }
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
                HashOn::combination("$request_uri$remote_addr"),
                Some("/a/b?x=110.1.2.3"),
            ),
            (HashOn::combination("${host}-x"), Some("example.com-x")),
            (
                HashOn::combination("$host-$nope-$uri"),
                Some("example.com--/a/b"),
            ),
            (
                HashOn::combination("cost $ 5 ${} ${host"),
                Some("cost $ 5 ${} ${host"),
            ),
            (HashOn::combination("a$"), Some("a$")),
            (HashOn::combination("$nope${nope}"), None),
            (HashOn::combination("plain"), Some("plain")),
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
