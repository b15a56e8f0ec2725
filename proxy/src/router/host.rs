//! Route host patterns: exact names, leading-`*` wildcards, `*` alone, optionally with a port;
//! and [`split_port`], which splits both route patterns and the request's Host (as the server
//! normalises it) at their port.

/// Splits `authority` into the host and the text after its port colon (`[v6]:80` keeps the
/// brackets; `[v6]` has no port). Only syntax: neither part is checked.
pub fn split_port(authority: &str) -> (&str, Option<&str>) {
    let colon = match authority.rfind(']') {
        Some(close) => authority[close..].find(':').map(|i| close + i),
        None => authority.rfind(':'),
    };
    match colon {
        Some(i) => (&authority[..i], Some(&authority[i + 1..])),
        None => (authority, None),
    }
}

/// A lowercased route host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct HostPattern {
    pub(crate) kind: HostKind,
    /// The pattern names a port (`foo.com:8080`), so it is compared with the raw `Host` header.
    pub(crate) with_port: bool,
    /// The pattern as written, lowercased (reported by [`super::Match::host`]).
    pub(crate) text: Box<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum HostKind {
    /// `*`: any host.
    Any,
    /// `*<suffix>`: hosts that end with `suffix` and are longer than it.
    Suffix(Box<str>),
    Exact(Box<str>),
}

impl HostPattern {
    /// Parses a route host; the text is lowercased here.
    pub(crate) fn parse(host: &str) -> HostPattern {
        let host = host.trim().to_ascii_lowercase();
        let with_port = split_port(&host).1.is_some();
        let kind = if host == "*" {
            HostKind::Any
        } else if let Some(suffix) = host.strip_prefix('*') {
            HostKind::Suffix(suffix.into())
        } else {
            HostKind::Exact(host.as_str().into())
        };
        HostPattern {
            kind,
            with_port,
            text: host.into(),
        }
    }

    /// The pattern without its port, for indexing by the request's port-less host.
    pub(crate) fn without_port(&self) -> HostKind {
        if !self.with_port {
            return self.kind.clone();
        }
        match &self.kind {
            HostKind::Any => HostKind::Any,
            HostKind::Suffix(s) => HostKind::Suffix(split_port(s).0.into()),
            HostKind::Exact(s) => HostKind::Exact(split_port(s).0.into()),
        }
    }

    /// Whether the request matches: ported patterns look at `raw_host`, others at `host`.
    pub(crate) fn matches(&self, host: &str, raw_host: &str) -> bool {
        let subject = if self.with_port { raw_host } else { host };
        self.kind.matches(subject)
    }
}

impl HostKind {
    pub(crate) fn matches(&self, subject: &str) -> bool {
        match self {
            HostKind::Any => true,
            HostKind::Suffix(s) => subject.len() > s.len() && subject.ends_with(&**s),
            HostKind::Exact(s) => **s == *subject,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{split_port, HostKind, HostPattern};

    #[test]
    fn host_pattern_table() {
        // (pattern, host, raw_host, matches)
        let cases = [
            ("foo.com", "foo.com", "foo.com:8080", true),
            ("FOO.com", "foo.com", "foo.com", true),
            ("foo.com", "a.foo.com", "a.foo.com", false),
            ("*.foo.com", "a.foo.com", "a.foo.com", true),
            ("*.foo.com", "a.b.foo.com", "a.b.foo.com", true),
            ("*.foo.com", "foo.com", "foo.com", false),
            ("*.foo.com", ".foo.com", ".foo.com", false),
            ("*foo.com", "barfoo.com", "barfoo.com", true),
            ("*", "anything.org", "anything.org", true),
            ("foo.com:8080", "foo.com", "foo.com:8080", true),
            ("foo.com:8080", "foo.com", "foo.com:9090", false),
            ("foo.com:8080", "foo.com", "foo.com", false),
            ("*.foo.com:8080", "a.foo.com", "a.foo.com:8080", true),
            ("[::1]:8080", "[::1]", "[::1]:8080", true),
            ("[::1]", "[::1]", "[::1]:8080", true),
        ];
        for (pattern, host, raw, want) in cases {
            let p = HostPattern::parse(pattern);
            assert_eq!(p.matches(host, raw), want, "{pattern} vs {host} / {raw}");
        }
    }

    #[test]
    fn without_port_table() {
        let cases = [
            ("foo.com:8080", HostKind::Exact("foo.com".into())),
            ("*.foo.com:1", HostKind::Suffix(".foo.com".into())),
            ("[::1]:80", HostKind::Exact("[::1]".into())),
            ("[::1]", HostKind::Exact("[::1]".into())),
            ("*", HostKind::Any),
        ];
        for (pattern, want) in cases {
            assert_eq!(
                HostPattern::parse(pattern).without_port(),
                want,
                "{pattern}"
            );
        }
    }

    #[test]
    fn split_port_table() {
        let cases = [
            ("a.com:8080", ("a.com", Some("8080"))),
            ("a.com", ("a.com", None)),
            ("*.a.com:1", ("*.a.com", Some("1"))),
            ("[::1]:80", ("[::1]", Some("80"))),
            ("[::1]", ("[::1]", None)),
            ("a.com:", ("a.com", Some(""))),
            ("", ("", None)),
        ];
        for (raw, want) in cases {
            assert_eq!(split_port(raw), want, "{raw}");
        }
    }
}
