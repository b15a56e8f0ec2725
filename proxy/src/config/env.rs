//! `${{VAR}}` and `${{VAR:=default}}` substitution in config text, as APISIX does before parsing.

use std::sync::LazyLock;

use regex::{Captures, Regex};

static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| {
    // The pattern is a literal that is known to compile.
    #[allow(clippy::unwrap_used)]
    Regex::new(r"\$\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::=\s*([^}]*?)\s*)?\}\}").unwrap()
});

/// Replaces every placeholder with the environment value or its default.
///
/// # Errors
/// The name of a variable that is unset and has no default.
pub fn substitute(text: &str) -> Result<String, String> {
    if !text.contains("${{") {
        return Ok(text.to_owned());
    }
    let mut missing = None;
    let out = PLACEHOLDER.replace_all(text, |c: &Captures<'_>| {
        let name = &c[1];
        match (std::env::var(name), c.get(2)) {
            (Ok(v), _) => v,
            (Err(_), Some(default)) => default.as_str().to_owned(),
            (Err(_), None) => {
                missing.get_or_insert_with(|| name.to_owned());
                String::new()
            }
        }
    });
    match missing {
        Some(name) => Err(format!(
            "environment variable `{name}` is not set and has no default"
        )),
        None => Ok(out.into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_without_default_is_an_error() {
        let e = substitute("port: ${{FERROGATE_SURELY_UNSET_VAR}}").expect_err("unset");
        assert!(e.contains("FERROGATE_SURELY_UNSET_VAR"));
        assert_eq!(substitute("a: b").as_deref(), Ok("a: b"));
    }
}
