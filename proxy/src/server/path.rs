//! Path normalisation before routing, as nginx builds `$uri`.
//!
//! The router and the mTLS `skip_mtls_uri_regex` check match the normalised path and the upstream
//! receives that same path (re-encoded),
//! so a route cannot be reached, or dodged, by spelling a path differently:
//! 1. percent-escapes are decoded (`%41` → `A`, `%2F` → `/`, `%2e` → `.`); an invalid escape or a
//!    decoded NUL byte is a 400;
//! 2. runs of `/` merge into one (`//a///b` → `/a/b`);
//! 3. `.` segments are dropped and `..` removes the segment before it; `..` above the root is a 400;
//! 4. a trailing `/` is kept; the result must be UTF-8 (else 400).
//!
//! A path that needs none of this (no `%`, `//` or `/.`) is used as is, without copying.

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("the path must start with `/`")]
    NotAbsolute,
    /// `%` not followed by two hex digits.
    #[error("invalid percent-escape in the path")]
    BadEscape,
    /// A decoded NUL byte.
    #[error("NUL byte in the path")]
    Nul,
    /// `..` above the root.
    #[error("the path goes above the root")]
    AboveRoot,
    /// The decoded path is not UTF-8.
    #[error("the decoded path is not UTF-8")]
    NotUtf8,
    /// With servlet normalisation, a segment with `;` parameters that is a dot segment (also
    /// `%2e`), or empty but not the last one.
    #[error("a dot or empty path segment has `;` parameters")]
    SegmentParameters,
}

/// Normalises a raw request path (without the query).
///
/// # Errors
/// See [`PathError`].
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if !raw.contains('%') && !raw.contains("//") && !raw.contains("/.") {
        return Ok(Cow::Borrowed(raw));
    }
    let decoded = decode(raw.as_bytes())?;
    let mut out: Vec<u8> = Vec::with_capacity(decoded.len());
    let segments: Vec<&[u8]> = decoded.split(|b| *b == b'/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            b"" | b"." => {}
            b".." => {
                if out.is_empty() {
                    return Err(PathError::AboveRoot);
                }
                let cut = out.iter().rposition(|b| *b == b'/').unwrap_or(0);
                out.truncate(cut);
            }
            s => {
                out.push(b'/');
                out.extend_from_slice(s);
            }
        }
        let ends_dir = i == last && matches!(*seg, b"" | b"." | b"..");
        if ends_dir && !out.ends_with(b"/") {
            out.push(b'/');
        }
    }
    if out.is_empty() {
        out.push(b'/');
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| PathError::NotUtf8)
}

/// The normalised path as a Java servlet container reads it (`apisix.normalize_uri_like_servlet`):
/// each segment loses its `;` parameters (`/a;x=1/b;y` is `/a/b`). `None` when there is no `;`.
///
/// # Errors
/// [`PathError::SegmentParameters`] for a segment with parameters that is `.`, `..`, a still
/// encoded dot (`%2e`, `%2e%2e`, from a doubly encoded request), or empty and not the last one
/// (`/;/a`): such paths would reach a servlet as something else than what was routed.
pub fn like_servlet(path: &str) -> Result<Option<String>, PathError> {
    if !path.contains(';') {
        return Ok(None);
    }
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len() - 1;
    let mut out = Vec::with_capacity(segments.len());
    for (i, segment) in segments.into_iter().enumerate() {
        let Some((kept, _)) = segment.split_once(';') else {
            out.push(segment);
            continue;
        };
        let dot = matches!(kept, "." | "..")
            || kept.eq_ignore_ascii_case("%2e")
            || kept.eq_ignore_ascii_case("%2e%2e");
        if dot || (kept.is_empty() && i < last) {
            return Err(PathError::SegmentParameters);
        }
        out.push(kept);
    }
    Ok(Some(out.join("/")))
}

/// The path the router matches with `apisix.match_uri_encoded_slash`: `raw` (the path as sent)
/// decoded except its encoded slashes, which stay as `%2F` (upper case, whatever the client
/// wrote), so that `/v1/a%2Fb/list` matches `/v1/:id/list` with `id` = `a%2Fb`. Only when
/// decoding `raw` alone gives `normalized` (no dot segment was resolved, no slashes were
/// merged), so that the result differs from `normalized` in nothing but the shown `%2F`;
/// `None` otherwise, and when `raw` has no encoded slash.
pub fn keep_encoded_slash(raw: &str, normalized: &str) -> Option<String> {
    let lower = raw.to_ascii_lowercase();
    if !lower.contains("%2f") || decode(raw.as_bytes()).ok()? != normalized.as_bytes() {
        return None;
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(|b| *b == b'%') {
        out.extend_from_slice(&decode(&rest[..at]).ok()?);
        let escape = rest.get(at..at + 3)?;
        if escape.eq_ignore_ascii_case(b"%2f") {
            out.extend_from_slice(b"%2F");
        } else {
            out.extend_from_slice(&decode(escape).ok()?);
        }
        rest = &rest[at + 3..];
    }
    out.extend_from_slice(rest);
    String::from_utf8(out).ok()
}

fn decode(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hi = raw.get(i + 1).copied().and_then(hex);
            let lo = raw.get(i + 2).copied().and_then(hex);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathError::BadEscape);
            };
            let byte = hi << 4 | lo;
            if byte == 0 {
                return Err(PathError::Nul);
            }
            out.push(byte);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("/", Ok("/")),
            ("/a/b", Ok("/a/b")),
            ("/a/b/", Ok("/a/b/")),
            ("//a///b", Ok("/a/b")),
            ("/a/./b", Ok("/a/b")),
            ("/a/b/..", Ok("/a/")),
            ("/a/b/../c", Ok("/a/c")),
            ("/a/.", Ok("/a/")),
            ("/%61dmin", Ok("/admin")),
            ("/public/..%2Fadmin", Ok("/admin")),
            ("/public/%2e%2e/admin", Ok("/admin")),
            ("/public%2F..%2F..%2Fadmin", Err(PathError::AboveRoot)),
            ("/a%2Fb", Ok("/a/b")),
            ("/caf%C3%A9", Ok("/café")),
            ("/..", Err(PathError::AboveRoot)),
            ("/a/../..", Err(PathError::AboveRoot)),
            ("/a%zz", Err(PathError::BadEscape)),
            ("/a%4", Err(PathError::BadEscape)),
            ("/a%00b", Err(PathError::Nul)),
            ("/a%FF", Err(PathError::NotUtf8)),
            ("a/b", Err(PathError::NotAbsolute)),
            ("/.hidden", Ok("/.hidden")),
            ("/a/..b", Ok("/a/..b")),
        ];
        for (raw, want) in cases {
            let got = normalize(raw);
            assert_eq!(got.as_deref().map_err(|e| *e), *want, "normalize({raw:?})");
        }
    }

    #[test]
    fn encoded_slashes_kept_only_when_nothing_but_decoding_happened() {
        let keep = |raw: &str| {
            let normalized = normalize(raw).expect("valid");
            keep_encoded_slash(raw, &normalized)
        };
        assert_eq!(keep("/v1/te%2Fst/x").as_deref(), Some("/v1/te%2Fst/x"));
        assert_eq!(keep("/v1/te%2fst/x").as_deref(), Some("/v1/te%2Fst/x"));
        assert_eq!(keep("/a%41%2Fb").as_deref(), Some("/aA%2Fb"));
        assert_eq!(keep("/a%2F%2F/"), None, "decoded slashes merged");
        assert_eq!(keep("/caf%C3%A9%2F").as_deref(), Some("/café%2F"));
        assert_eq!(keep("/v1/test/x"), None, "no encoded slash");
        assert_eq!(keep("/x%2Fy/../.."), None, "dot segments resolved");
        assert_eq!(keep("/a%2Fb/%2e%2e/%2e%2e"), None);
        assert_eq!(keep("/a//b%2F"), None, "slashes merged");
    }

    #[test]
    fn servlet_paths_lose_their_parameters() {
        let servlet = |p: &str| like_servlet(p).map(|o| o.unwrap_or_else(|| p.to_owned()));
        assert_eq!(servlet("/hello"), Ok("/hello".to_owned()));
        assert_eq!(servlet("/hello;world"), Ok("/hello".to_owned()));
        assert_eq!(
            servlet("/hello;a=b/world;a/;"),
            Ok("/hello/world/".to_owned())
        );
        assert_eq!(servlet("/a;x/"), Ok("/a/".to_owned()));
        for bad in ["/;/a", "/.;", "/..;", "/b/;/c", "/%2E;", "/%2e%2E;x/y"] {
            assert_eq!(servlet(bad), Err(PathError::SegmentParameters), "{bad}");
        }
    }

    #[test]
    fn untouched_paths_are_borrowed() {
        assert!(matches!(normalize("/a/b.c/d"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize("/a//b"), Ok(Cow::Owned(_))));
    }
}
