//! Text with `$name` / `${name}` references to request variables, parsed once (when a
//! configuration is checked) and rendered per request without scanning the text again.

use crate::expr::Vars;

/// The rules a [`Template`] is read with; the callers of the gateway differ on escapes, on the
/// characters of a name and on defaults, so each states its rules explicitly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// `$name` and `${name}` (names of ASCII letters, digits and `_`); a backslash has no
    /// meaning, so `\$x` is a backslash followed by the value of `x` (upstream `hash_on`).
    Plain,
    /// As [`Syntax::Plain`], but a `$` right after a backslash is text, the backslash kept:
    /// `\$x` renders as `\$x` (the plugins' `$var` fields such as redirect's `uri`).
    KeepEscape,
    /// APISIX's `core.utils.resolve_var`: escapes as [`Syntax::KeepEscape`], a bare name may
    /// also hold `.`, and braces hold any trimmed name with an optional default,
    /// `${name ?? default}` (limit keys and counts).
    ResolveVar,
}

/// One part of a parsed [`Template`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// Text copied as is.
    Text(String),
    /// A variable reference; `default` is used when the variable is not set.
    Var {
        name: String,
        default: Option<String>,
    },
}

/// A parsed template: text and variable references. A variable that is not set (and has no
/// default) renders as nothing; a `$` not followed by a name is text.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text` with the rules of `syntax`. Parsing cannot fail: anything that is not a
    /// reference is text.
    #[must_use]
    pub fn parse(text: &str, syntax: Syntax) -> Self {
        let bare_name = |c: char| {
            c.is_ascii_alphanumeric() || c == '_' || (syntax == Syntax::ResolveVar && c == '.')
        };
        let mut template = Template::default();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            let after = &rest[at + 1..];
            // `rest` always starts after a `$` or a reference, so a backslash before this `$` is
            // within `rest`.
            if at > 0 && rest.as_bytes()[at - 1] == b'\\' && syntax != Syntax::Plain {
                template.push_text(&rest[..=at]);
                rest = after;
                continue;
            }
            template.push_text(&rest[..at]);
            let (name, default, next) = match after.strip_prefix('{') {
                Some(braced) => match braced.find('}') {
                    Some(end) => {
                        let inner = &braced[..end];
                        let (name, default) = if syntax == Syntax::ResolveVar {
                            match inner.trim().split_once("??") {
                                Some((name, default)) => (name.trim(), Some(default.trim())),
                                None => (inner.trim(), None),
                            }
                        } else if inner.chars().all(bare_name) {
                            (inner, None)
                        } else {
                            ("", None)
                        };
                        if name.is_empty() && default.is_none() {
                            ("", None, after)
                        } else {
                            (name, default, &braced[end + 1..])
                        }
                    }
                    None => ("", None, after),
                },
                None => {
                    let end = after.find(|c: char| !bare_name(c)).unwrap_or(after.len());
                    (&after[..end], None, &after[end..])
                }
            };
            if name.is_empty() && default.is_none() {
                template.push_text("$");
            } else {
                template.parts.push(Part::Var {
                    name: name.to_owned(),
                    default: default.map(str::to_owned),
                });
            }
            rest = next;
        }
        template.push_text(rest);
        template
    }

    fn push_text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        match self.parts.last_mut() {
            Some(Part::Text(last)) => last.push_str(text),
            _ => self.parts.push(Part::Text(text.to_owned())),
        }
    }

    /// Whether the template refers to any variable (if not, it always renders the same text).
    #[must_use]
    pub fn has_vars(&self) -> bool {
        self.parts
            .iter()
            .any(|part| matches!(part, Part::Var { .. }))
    }

    /// The names of the variables the template refers to, in order (a name may repeat).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Var { name, .. } => Some(name.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Renders the template with `vars`.
    #[must_use]
    pub fn render(&self, vars: &dyn Vars) -> String {
        let mut out = String::new();
        self.render_into(vars, &mut out);
        out
    }

    /// Appends the rendered template to `out` and returns how many references gave a value (a
    /// set variable or a default).
    pub fn render_into(&self, vars: &dyn Vars, out: &mut String) -> usize {
        let mut resolved = 0;
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var { name, default } => {
                    if let Some(value) = vars.get(name) {
                        out.push_str(&value);
                        resolved += 1;
                    } else if let Some(default) = default {
                        out.push_str(default);
                        resolved += 1;
                    }
                }
            }
        }
        resolved
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("uri", "/a/b"),
            ("host", "example.com"),
            ("http_x", "7"),
            ("a.b", "dotted"),
            ("empty", ""),
        ])
    }

    fn render(text: &str, syntax: Syntax) -> (String, usize) {
        let mut out = String::new();
        let resolved = Template::parse(text, syntax).render_into(&vars(), &mut out);
        (out, resolved)
    }

    fn plain(text: &str) -> String {
        render(text, Syntax::Plain).0
    }

    fn keep(text: &str) -> String {
        render(text, Syntax::KeepEscape).0
    }

    #[test]
    fn names_and_braces() {
        for syntax in [Syntax::Plain, Syntax::KeepEscape, Syntax::ResolveVar] {
            assert_eq!(render("$uri", syntax), ("/a/b".into(), 1));
            assert_eq!(
                render("${host}-x$uri", syntax),
                ("example.com-x/a/b".into(), 2)
            );
            assert_eq!(render("${uri}x", syntax), ("/a/bx".into(), 1));
            assert_eq!(render("$urix", syntax), (String::new(), 0));
            assert_eq!(render("no vars", syntax), ("no vars".into(), 0));
            assert_eq!(render("", syntax), (String::new(), 0));
        }
    }

    #[test]
    fn a_dollar_without_a_name_is_text() {
        for syntax in [Syntax::Plain, Syntax::KeepEscape, Syntax::ResolveVar] {
            assert_eq!(render("$", syntax).0, "$");
            assert_eq!(render("a$-b", syntax).0, "a$-b");
            assert_eq!(render("$$uri", syntax).0, "$/a/b");
            assert_eq!(render("${}", syntax).0, "${}");
            assert_eq!(render("${uri", syntax).0, "${uri");
            assert_eq!(render("x$", syntax).0, "x$");
        }
        // Only `resolve_var` reads any text between braces as a name.
        assert_eq!(plain("${a-b}$uri"), "${a-b}/a/b");
        assert_eq!(keep("${ uri }"), "${ uri }");
        assert_eq!(render("${ uri }", Syntax::ResolveVar).0, "/a/b");
    }

    #[test]
    fn missing_and_empty_variables_render_nothing() {
        assert_eq!(plain("[$nope]"), "[]");
        assert_eq!(keep("[${nope}]"), "[]");
        assert_eq!(
            render("$nope$empty", Syntax::ResolveVar),
            (String::new(), 1)
        );
        assert!(Template::parse("$nope", Syntax::Plain).has_vars());
        let template = Template::parse("$a${b}$a", Syntax::Plain);
        let names: Vec<&str> = template.names().collect();
        assert_eq!(names, ["a", "b", "a"]);
        assert!(!Template::parse("a$-b\\$c", Syntax::KeepEscape).has_vars());
    }

    #[test]
    fn escapes() {
        assert_eq!(plain("\\$uri"), "\\/a/b");
        assert_eq!(keep("\\$uri"), "\\$uri");
        assert_eq!(keep("\\${uri}$uri"), "\\${uri}/a/b");
        assert_eq!(keep("$\\$uri"), "$\\$uri");
        assert_eq!(keep("\\$$uri"), "\\$/a/b");
        assert_eq!(render("\\$uri", Syntax::ResolveVar), ("\\$uri".into(), 0));
    }

    #[test]
    fn resolve_var_names_and_defaults() {
        let resolve = |text| render(text, Syntax::ResolveVar);
        assert_eq!(resolve("$a.b"), ("dotted".into(), 1));
        assert_eq!(plain("$a.b"), ".b");
        assert_eq!(resolve("${http_x ?? 5}"), ("7".into(), 1));
        assert_eq!(resolve("${ http_y ?? 5 }"), ("5".into(), 1));
        assert_eq!(resolve("${http_y??}"), (String::new(), 1));
        assert_eq!(resolve("${ ?? 5}"), ("5".into(), 1));
        assert_eq!(resolve("${http_y}"), (String::new(), 0));
        assert_eq!(resolve("${  }"), ("${  }".into(), 0));
        // Other syntaxes have no defaults: the braces are text.
        assert_eq!(keep("${http_y ?? 5}"), "${http_y ?? 5}");
    }
}
