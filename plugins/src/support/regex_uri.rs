//! `regex_uri` replacement templates (`$N`, `${N}` capture groups, `$$` a `$`), parsed when a
//! config is checked and applied to the first match of the regex (as `ngx.re.sub`).

/// A part of a `regex_uri` template.
#[derive(Debug, PartialEq)]
pub(crate) enum Part {
    /// Text copied as is.
    Text(String),
    /// The text of a capture group (0: the whole match).
    Group(usize),
}

/// Parses a `regex_uri` template: `$N`, `${N}`, `$$`; any other `$` is an error.
pub(crate) fn parse_template(template: &str, groups: usize) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = template.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '$' {
            text.push(c);
            continue;
        }
        let rest = &template[i + 1..];
        let (digits, skip) = if rest.starts_with('$') {
            text.push('$');
            chars.next();
            continue;
        } else if let Some(braced) = rest.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in `{template}`"))?;
            (&braced[..end], end + 2)
        } else {
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            (&rest[..end], end)
        };
        let group: usize = digits
            .parse()
            .map_err(|_| format!("`$` must be followed by a group number in `{template}`"))?;
        if group > groups {
            return Err(format!(
                "`${group}` in `{template}` but the regex has {groups} groups"
            ));
        }
        if !text.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut text)));
        }
        parts.push(Part::Group(group));
        for _ in 0..skip {
            chars.next();
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

/// `subject` with the match `caps` of a regex in it replaced by the template `parts` (as
/// `ngx.re.sub`: the first match only).
pub(crate) fn substitute(subject: &str, caps: &regex::Captures<'_>, parts: &[Part]) -> String {
    let whole = caps.get(0).map_or(0..0, |m| m.range());
    let mut out = String::with_capacity(subject.len());
    out.push_str(&subject[..whole.start]);
    for part in parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Group(g) => out.push_str(caps.get(*g).map_or("", |m| m.as_str())),
        }
    }
    out.push_str(&subject[whole.end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_parsed() {
        assert_eq!(
            parse_template("/x/$1-${2}a$$", 2).expect("valid"),
            vec![
                Part::Text("/x/".into()),
                Part::Group(1),
                Part::Text("-".into()),
                Part::Group(2),
                Part::Text("a$".into()),
            ]
        );
        assert!(parse_template("$3", 2).is_err());
        assert!(parse_template("$name", 2).is_err());
        assert!(parse_template("${1", 2).is_err());
    }
}
