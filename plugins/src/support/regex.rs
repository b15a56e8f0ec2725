//! Regexes written for APISIX, where `ngx.re` runs them with PCRE, compiled for the `regex`
//! crate: the one place plugins compile such a regex when its matches are replaced.
//!
//! The two engines read one thing differently: outside multi-line mode, PCRE's `$` matches at
//! the end of the subject and also before a newline that ends it; the `regex` crate's only at
//! the very end. Each unescaped `$` outside a character class is therefore compiled as
//! `(\n)?\z`; when such a group took the final newline, the match is cut before it, so the
//! newline stays in the subject as PCRE leaves it. The added groups are hidden: the template's
//! `$1`, `$2`... name the groups as written. (One PCRE match this does not give: a `$` that the
//! pattern follows with the final newline itself, as in `a$\n`.) With the `m` option, or a
//! pattern that sets it inline, `$` is left alone: both engines then match before every newline
//! and at the end.

use super::regex_uri::Part;
use ::regex::bytes::{Captures, Regex, RegexBuilder};

/// A compiled APISIX regex.
#[derive(Debug)]
pub(crate) struct PcreRegex {
    regex: Regex,
    /// For each group of the pattern as written (0: the whole match), its group in `regex`.
    groups: Vec<usize>,
    /// The groups standing for a `$`.
    ends: Vec<usize>,
}

/// The options of `ngx.re` that change how a pattern reads (others are accepted and ignored by
/// the caller).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Options {
    /// `i`: case-insensitive.
    pub case_insensitive: bool,
    /// `m`: `^` and `$` at every line.
    pub multi_line: bool,
    /// `s`: `.` matches a newline.
    pub dot_all: bool,
    /// `x`: whitespace and `#` comments are ignored.
    pub extended: bool,
}

impl PcreRegex {
    /// Compiles `pattern` as PCRE reads it with `options`.
    ///
    /// # Errors
    /// The `regex` crate's error for a pattern it cannot compile.
    pub(crate) fn new(pattern: &str, options: Options) -> Result<PcreRegex, ::regex::Error> {
        let build = |text: &str| {
            RegexBuilder::new(text)
                .case_insensitive(options.case_insensitive)
                .multi_line(options.multi_line)
                .dot_matches_new_line(options.dot_all)
                .ignore_whitespace(options.extended)
                .build()
        };
        if !options.multi_line {
            if let Some(t) = translate(pattern, options.extended) {
                // A pattern read otherwise than counted here is compiled as written.
                if let Ok(regex) = build(&t.pattern) {
                    if regex.captures_len() == t.groups.len() + t.ends.len() {
                        return Ok(PcreRegex {
                            regex,
                            groups: t.groups,
                            ends: t.ends,
                        });
                    }
                }
            }
        }
        let regex = build(pattern)?;
        Ok(PcreRegex {
            groups: (0..regex.captures_len()).collect(),
            regex,
            ends: Vec::new(),
        })
    }

    /// How many groups the pattern has as written (the whole match not counted).
    pub(crate) fn groups(&self) -> usize {
        self.groups.len() - 1
    }

    /// `subject` with its first `limit` matches (0: all) replaced by `template`, or `None` when
    /// nothing matches.
    pub(crate) fn replacen(
        &self,
        subject: &[u8],
        limit: usize,
        template: &[Part],
    ) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut copied = 0;
        let mut replaced = 0;
        for caps in self.regex.captures_iter(subject) {
            if limit > 0 && replaced == limit {
                break;
            }
            let Some(whole) = caps.get(0) else { continue };
            out.extend_from_slice(&subject[copied..whole.start()]);
            for part in template {
                match part {
                    Part::Text(text) => out.extend_from_slice(text.as_bytes()),
                    Part::Group(g) => {
                        if let Some(m) = self.group(&caps, *g) {
                            out.extend_from_slice(m);
                        }
                    }
                }
            }
            copied = self.end(&caps).unwrap_or(whole.end());
            replaced += 1;
        }
        if replaced == 0 {
            return None;
        }
        out.extend_from_slice(&subject[copied..]);
        Some(out)
    }

    /// The text of group `g` as written (0: the whole match, without a final newline a `$`
    /// took).
    fn group<'h>(&self, caps: &Captures<'h>, g: usize) -> Option<&'h [u8]> {
        let m = caps.get(*self.groups.get(g)?)?;
        let end = if g == 0 {
            self.end(caps).unwrap_or(m.end())
        } else {
            m.end()
        };
        Some(&m.as_bytes()[..end - m.start()])
    }

    /// Where the match ends as PCRE sees it, when a `$` took the final newline.
    fn end(&self, caps: &Captures<'_>) -> Option<usize> {
        self.ends
            .iter()
            .find_map(|&g| caps.get(g))
            .map(|m| m.start())
    }
}

/// A pattern with its `$`s made PCRE's.
struct Translated {
    pattern: String,
    /// For each group as written (0 first), its index in `pattern`.
    groups: Vec<usize>,
    /// The groups added for `$`.
    ends: Vec<usize>,
}

/// `pattern` with each `$` outside classes (and comments, in extended mode) as `(\n)?\z`, or
/// `None` when the pattern sets multi-line mode itself or has no such `$`.
fn translate(pattern: &str, extended: bool) -> Option<Translated> {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut groups = vec![0];
    let mut ends = Vec::new();
    let mut count = 0;
    let mut extended = extended;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            '[' => {
                out.push(c);
                copy_class(&mut chars, &mut out);
            }
            '#' if extended => {
                out.push(c);
                for next in chars.by_ref() {
                    out.push(next);
                    if next == '\n' {
                        break;
                    }
                }
            }
            '(' => {
                out.push(c);
                if chars.peek() != Some(&'?') {
                    count += 1;
                    groups.push(count);
                    continue;
                }
                out.push('?');
                chars.next();
                // `(?P<name>` and `(?<name>` capture; `(?flags)` may turn multi-line on.
                let mut head = String::new();
                while let Some(&next) = chars.peek() {
                    if matches!(next, ':' | ')' | '<' | '>' | '=' | '!' | 'P') || head.len() > 16 {
                        break;
                    }
                    head.push(next);
                    chars.next();
                }
                out.push_str(&head);
                let on = head.split('-').next().unwrap_or_default();
                if on.contains('m') {
                    return None;
                }
                extended |= on.contains('x');
                let named = match chars.peek() {
                    Some('P') => true,
                    Some('<') => {
                        let mut ahead = chars.clone();
                        ahead.next();
                        !matches!(ahead.peek(), Some('=' | '!'))
                    }
                    _ => false,
                };
                if named && head.is_empty() {
                    count += 1;
                    groups.push(count);
                }
            }
            '$' => {
                count += 1;
                ends.push(count);
                out.push_str(r"(\n)?\z");
            }
            _ => out.push(c),
        }
    }
    (!ends.is_empty()).then_some(Translated {
        pattern: out,
        groups,
        ends,
    })
}

/// Copies a character class after its `[` up to and with its closing `]` (a `]` first in the
/// class is a member; `[:name:]` and nested classes are read whole).
fn copy_class(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    let mut depth = 1;
    let mut first = true;
    while let Some(c) = chars.next() {
        out.push(c);
        match c {
            '^' if first => continue,
            ']' if first => {}
            '\\' => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            '[' => {
                if chars.peek() == Some(&':') {
                    for next in chars.by_ref() {
                        out.push(next);
                        if next == ']' {
                            break;
                        }
                    }
                } else {
                    depth += 1;
                }
            }
            ']' => {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
            _ => {}
        }
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::regex_uri::parse_template;

    fn replace(pattern: &str, options: Options, subject: &str, limit: usize, with: &str) -> String {
        let re = PcreRegex::new(pattern, options).expect("compiles");
        let template = parse_template(with, re.groups()).expect("template");
        match re.replacen(subject.as_bytes(), limit, &template) {
            Some(out) => String::from_utf8(out).expect("utf-8"),
            None => subject.to_owned(),
        }
    }

    #[test]
    fn dollar_matches_before_a_final_newline() {
        let none = Options::default();
        // response-rewrite2.t TEST 14: the newline stays after the replaced word.
        assert_eq!(
            replace(r"\w\S+$", none, "hello world\n", 0, "*"),
            "hello *\n"
        );
        assert_eq!(replace(r"\w\S+$", none, "hello world", 0, "*"), "hello *");
        assert_eq!(
            replace(r"d$", none, "d\nd\n", 0, "X"),
            "d\nX\n",
            "only the last line"
        );
        assert_eq!(
            replace(r"d$", none, "d\n\n", 0, "X"),
            "d\n\n",
            "not two from the end"
        );
        // `$0` is the match without the newline; groups keep the numbers written.
        assert_eq!(
            replace(r"(o)(\w+)$", none, "bar fox\n", 0, "[$0|$2$1]"),
            "bar f[ox|xo]\n"
        );
        assert_eq!(replace(r"a$|(b)", none, "ba\n", 0, "<$1>"), "<b><>\n");
        // Escaped, in a class, in multi-line mode: as written.
        assert_eq!(replace(r"\$", none, "a$\n", 0, "D"), "aD\n");
        assert_eq!(replace(r"[$]", none, "a$\n", 0, "D"), "aD\n");
        assert_eq!(replace(r"[]$]x", none, "$x\n", 0, "D"), "D\n");
        let multi = Options {
            multi_line: true,
            ..Options::default()
        };
        assert_eq!(replace(r"d$", multi, "d\nd\n", 0, "X"), "X\nX\n");
        assert_eq!(replace(r"(?m)d$", none, "d\nd\n", 0, "X"), "X\nX\n");
        // Named groups and inline flags count as written.
        assert_eq!(
            replace(r"(?i)(?P<w>O+)$", none, "foo\n", 1, "${1}!"),
            "foo!\n"
        );
        assert_eq!(replace(r"(?<w>o+)(?:x|$)", none, "foo\n", 1, "0"), "f0\n");
        // Extended mode: a `$` in a comment is no anchor.
        let extended = Options {
            extended: true,
            ..Options::default()
        };
        assert_eq!(replace("o # end$\n$", extended, "oo\n", 0, "0"), "o0\n");
        // Nothing matches: none.
        let re = PcreRegex::new("z$", none).expect("compiles");
        assert!(re.replacen(b"abc\n", 0, &[]).is_none());
    }

    #[test]
    fn limits_and_errors() {
        let none = Options::default();
        assert_eq!(replace("o", none, "foo", 1, "0"), "f0o");
        assert_eq!(replace("o", none, "foo", 0, "0"), "f00");
        assert!(PcreRegex::new("(", none).is_err());
        assert!(PcreRegex::new("a$(", none).is_err());
    }
}
