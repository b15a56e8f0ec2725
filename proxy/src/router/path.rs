//! URI patterns: parsing a route's `uri` into an index key plus what remains to check, and
//! checking it against a request path without allocating.

/// Where a pattern is stored and how the rest of the path is checked.
#[derive(Debug, Clone)]
pub(crate) struct PathPattern {
    /// `true`: `key` is the whole path (hash map). `false`: `key` is a prefix (radix tree).
    pub(crate) exact: bool,
    /// The literal text before the first wildcard or parameter.
    pub(crate) key: Box<str>,
    /// What the text after `key` must match; empty for exact patterns and a trailing `*`
    /// without capture.
    tail: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Literal(Box<str>),
    /// `:name`: one non-empty segment (`[^/]+`).
    Param(Box<str>),
    /// `*` / `*name`: any text including `/`, possibly empty; `None` when not captured.
    Star(Option<Box<str>>),
}

/// The name under which a bare `*` is captured when parameters are enabled.
pub(crate) const BARE_STAR_NAME: &str = "ext";

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl PathPattern {
    /// Parses `pattern`. With `params`, `:name` and `*name` are parameters (a name is a run of
    /// `[A-Za-z0-9_]`; a `:` not followed by a name is literal; a bare `*` is captured as
    /// [`BARE_STAR_NAME`]); without, `:` is literal and `*` matches anything uncaptured.
    pub(crate) fn parse(pattern: &str, params: bool) -> PathPattern {
        let bytes = pattern.as_bytes();
        let mut tokens = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            // Name bytes are ASCII, so after an ASCII `*` or `:` this slice is on char
            // boundaries; it is only used in those two cases.
            let name_len = if b == b'*' || b == b':' {
                bytes[i + 1..]
                    .iter()
                    .take_while(|b| is_name_byte(**b))
                    .count()
            } else {
                0
            };
            let name = pattern.get(i + 1..i + 1 + name_len).unwrap_or("");
            if b == b'*' {
                flush(&mut literal, &mut tokens);
                if params {
                    let name = if name.is_empty() {
                        BARE_STAR_NAME
                    } else {
                        name
                    };
                    tokens.push(Token::Star(Some(name.into())));
                    i += 1 + name_len;
                } else {
                    tokens.push(Token::Star(None));
                    i += 1;
                }
            } else if b == b':' && params && name_len > 0 {
                flush(&mut literal, &mut tokens);
                tokens.push(Token::Param(name.into()));
                i += 1 + name_len;
            } else {
                // Advance by whole characters so slicing stays on char boundaries.
                let ch_len = pattern[i..].chars().next().map_or(1, char::len_utf8);
                literal.push_str(&pattern[i..i + ch_len]);
                i += ch_len;
            }
        }
        flush(&mut literal, &mut tokens);

        let key: Box<str> = match tokens.first() {
            Some(Token::Literal(l)) => l.clone(),
            _ => "".into(),
        };
        let has_key_token = matches!(tokens.first(), Some(Token::Literal(_)));
        let mut tail = if has_key_token {
            tokens.split_off(1)
        } else {
            tokens
        };
        if tail.is_empty() {
            return PathPattern {
                exact: true,
                key,
                tail,
            };
        }
        // A trailing uncaptured `*` alone is a plain prefix: nothing left to check.
        if tail == [Token::Star(None)] {
            tail.clear();
        }
        PathPattern {
            exact: false,
            key,
            tail,
        }
    }

    /// Checks the part of `path` after the key (the caller found the key by exact or prefix
    /// lookup). Captures are appended to `params`; on failure `params` is left as it was.
    pub(crate) fn matches_tail<'r, 'p>(
        &'r self,
        path: &'p str,
        params: &mut Vec<(&'r str, &'p str)>,
    ) -> bool {
        if self.tail.is_empty() {
            return true;
        }
        // The key is a prefix of the path (it came from the index), so this slice is valid.
        let rest = path.get(self.key.len()..).unwrap_or("");
        let mark = params.len();
        let ok = match_tokens(&self.tail, rest, params);
        if !ok {
            params.truncate(mark);
        }
        ok
    }
}

fn flush(literal: &mut String, tokens: &mut Vec<Token>) {
    if !literal.is_empty() {
        tokens.push(Token::Literal(std::mem::take(literal).into_boxed_str()));
    }
}

/// Backtracking match of the whole of `s`; parameters and stars are greedy. Patterns come from
/// configuration and hold few wildcards, so the backtracking stays small.
fn match_tokens<'r, 'p>(
    tokens: &'r [Token],
    s: &'p str,
    params: &mut Vec<(&'r str, &'p str)>,
) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return s.is_empty();
    };
    match first {
        Token::Literal(lit) => s
            .strip_prefix(&**lit)
            .is_some_and(|after| match_tokens(rest, after, params)),
        Token::Param(name) => {
            let seg_end = s.find('/').unwrap_or(s.len());
            try_splits(rest, s, (1..=seg_end).rev(), Some(name), params)
        }
        Token::Star(name) => {
            if rest.is_empty() {
                if let Some(name) = name {
                    params.push((name, s));
                }
                return true;
            }
            try_splits(rest, s, (0..=s.len()).rev(), name.as_deref(), params)
        }
    }
}

fn try_splits<'r, 'p>(
    rest: &'r [Token],
    s: &'p str,
    ends: impl Iterator<Item = usize>,
    name: Option<&'r str>,
    params: &mut Vec<(&'r str, &'p str)>,
) -> bool {
    let mark = params.len();
    for end in ends {
        if !s.is_char_boundary(end) {
            continue;
        }
        if let Some(name) = name {
            params.push((name, &s[..end]));
        }
        if match_tokens(rest, &s[end..], params) {
            return true;
        }
        params.truncate(mark);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::PathPattern;

    #[test]
    fn parse_and_match_table() {
        // (pattern, params on, path, expected match, expected captures)
        type Case = (
            &'static str,
            bool,
            &'static str,
            bool,
            &'static [(&'static str, &'static str)],
        );
        let cases: &[Case] = &[
            ("/a/*/c", false, "/a/b/c", true, &[]),
            ("/a/*/c", false, "/a/b/x/c", true, &[]),
            ("/a/*/c", false, "/a/b/d", false, &[]),
            ("/a/*/c", false, "/a//c", true, &[]),
            ("/a/:id", false, "/a/:id", true, &[]),
            ("/user/:u", true, "/user/john", true, &[("u", "john")]),
            ("/user/:u", true, "/user/", false, &[]),
            ("/user/:u", true, "/user/john/x", false, &[]),
            (
                "/user/:u/post/:p",
                true,
                "/user/a/post/9",
                true,
                &[("u", "a"), ("p", "9")],
            ),
            (
                "/f/:name.json",
                true,
                "/f/a.b.json",
                true,
                &[("name", "a.b")],
            ),
            ("/f/:name.json", true, "/f/.json", false, &[]),
            (
                "/files/*path",
                true,
                "/files/a/b/c",
                true,
                &[("path", "a/b/c")],
            ),
            ("/files/*path", true, "/files/", true, &[("path", "")]),
            ("/files/*", true, "/files/x/y", true, &[("ext", "x/y")]),
            ("/x/*a/end", true, "/x/1/2/end", true, &[("a", "1/2")]),
            ("/x/*a/end", true, "/x/1/2/nope", false, &[]),
            ("/é/:v", true, "/é/ü", true, &[("v", "ü")]),
            ("/a:/b", true, "/a:/b", true, &[]),
        ];
        for (pattern, params, path, want, caps) in cases {
            let p = PathPattern::parse(pattern, *params);
            assert!(path.starts_with(&*p.key), "{pattern}: key {:?}", p.key);
            let mut got = Vec::new();
            let ok = if p.exact {
                *path == &*p.key
            } else {
                p.matches_tail(path, &mut got)
            };
            assert_eq!(ok, *want, "{pattern} vs {path}");
            assert_eq!(got, caps.to_vec(), "{pattern} vs {path}");
        }
    }

    #[test]
    fn keys_table() {
        // (pattern, params on, exact, key)
        let cases = [
            ("/foo", false, true, "/foo"),
            ("/foo*", false, false, "/foo"),
            ("/foo/*", false, false, "/foo/"),
            ("/a/*/c", false, false, "/a/"),
            ("/u/:id", false, true, "/u/:id"),
            ("/u/:id", true, false, "/u/"),
            ("*", false, false, ""),
            (":id", true, false, ""),
        ];
        for (pattern, params, exact, key) in cases {
            let p = PathPattern::parse(pattern, params);
            assert_eq!((p.exact, &*p.key), (exact, key), "{pattern}");
        }
    }
}
