//! Paths in the form sent upstream: what a plugin that rewrites the request path uses.

use std::borrow::Cow;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

/// Characters escaped when a normalised path is sent upstream.
const PATH_ESCAPE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// The normalised path in the form sent upstream (escaped where a URI requires it).
pub fn encode(path: &str) -> Cow<'_, str> {
    utf8_percent_encode(path, PATH_ESCAPE).into()
}

/// A path given as bytes (a plugin runner's rewrite), escaped as [`encode`] does; bytes that are
/// not ASCII are escaped too, so `?` and `#` cannot start a query or fragment.
pub fn encode_bytes(path: &[u8]) -> String {
    percent_encoding::percent_encode(path, PATH_ESCAPE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_escapes_what_a_uri_cannot_hold() {
        assert_eq!(encode("/a b/ü?#%"), "/a%20b/%C3%BC%3F%23%25");
        assert_eq!(encode("/plain/path-1_2.~"), "/plain/path-1_2.~");
    }
}
