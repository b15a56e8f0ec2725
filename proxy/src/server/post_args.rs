//! The request body as route `vars` read it, before routing: the fields of a form body
//! (`post_arg_<name>`) and the body as a document (`post_arg.<path>`, see
//! [`model::expr::BodyPath`]).
//!
//! As APISIX: `post_arg_<name>` reads `application/x-www-form-urlencoded` bodies only (a repeated
//! field gives its first value); `post_arg.<path>` reads a body whose content type contains
//! `application/json` (a body that is not valid JSON has no values), else
//! `application/x-www-form-urlencoded` (an object of the fields; a repeated field is the list of
//! its values), else `multipart/form-data` (an object of the parts' names and texts; a repeated
//! name gives its last part). Other content types have none.
//!
//! The body is read only when the route found depends on it: routing first runs without it
//! ([`Probe`]), and the body is read (then routing runs again) only when a candidate route that
//! passed every other check evaluated one of these variables.

use std::borrow::Cow;
use std::cell::Cell;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;
use model::expr::Vars;
use serde_json::{Map, Value};

use crate::upstream::body::BodySlot;

/// What the routes' `vars` read from a request body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyVars {
    /// Some route reads `post_arg_<name>`.
    pub fields: bool,
    /// Some route reads `post_arg.<path>`.
    pub paths: bool,
}

/// The body's values, kept in the request's extensions.
#[derive(Debug, Clone, Default)]
pub struct PostArgs {
    /// The form fields, decoded, in order.
    fields: Vec<(String, String)>,
    /// The body as a document.
    body: Option<Value>,
}

/// The kinds of body `post_arg.<path>` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Json,
    Form,
    Multipart,
}

/// What reading one request's body gives, of what the routes read: decided by its head.
#[derive(Debug)]
pub struct Plan<'p> {
    content_type: &'p str,
    /// The form fields are read (`post_arg_<name>`).
    fields: bool,
    /// The body is read as this kind of document (`post_arg.<path>`).
    kind: Option<Kind>,
    limit: usize,
}

impl<'p> Plan<'p> {
    /// What the body of the request `parts` heads has for `wanted`, when its content type has
    /// values and its `Content-Length` is at most `limit`; `None` when nothing (a longer body
    /// or one without a length is not read).
    pub fn new(parts: &'p Parts, limit: usize, wanted: BodyVars) -> Option<Plan<'p>> {
        let content_type = parts.headers.get(CONTENT_TYPE)?.to_str().ok()?;
        let fields = wanted.fields && content_type.starts_with(FORM);
        let kind = if !wanted.paths {
            None
        } else if content_type.contains("application/json") {
            Some(Kind::Json)
        } else if content_type.contains(FORM) {
            Some(Kind::Form)
        } else if content_type.contains("multipart/form-data") {
            Some(Kind::Multipart)
        } else {
            None
        };
        if !fields && kind.is_none() {
            return None;
        }
        let length: usize = parts
            .headers
            .get(CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (length <= limit).then_some(Plan {
            content_type,
            fields,
            kind,
            limit,
        })
    }

    /// Reads the body, which then goes upstream from memory. One that fails to arrive has no
    /// values (the failure stays recorded in `body`).
    pub async fn read(self, body: &mut BodySlot) -> Option<PostArgs> {
        let bytes = body.read(self.limit).await.ok()?;
        let pairs = || form_urlencoded::parse(&bytes).into_owned();
        let fields = if self.fields {
            pairs().collect()
        } else {
            Vec::new()
        };
        let body = match self.kind {
            None => None,
            Some(Kind::Json) => serde_json::from_slice(&bytes).ok(),
            Some(Kind::Form) => Some(form_object(pairs())),
            Some(Kind::Multipart) => multipart_object(self.content_type, &bytes).await,
        };
        Some(PostArgs { fields, body })
    }
}

impl PostArgs {
    /// The fields of a form body (tests).
    #[cfg(test)]
    pub fn form(body: &[u8]) -> PostArgs {
        let fields = form_urlencoded::parse(body).into_owned().collect();
        PostArgs { fields, body: None }
    }

    /// The first value of form field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as a document, when its content type has one.
    pub fn body(&self) -> Option<&Value> {
        self.body.as_ref()
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

/// The request's variables without a body, noting whether a body variable (`post_arg_*`,
/// `post_arg.*`) was asked for: routing with them tells whether the body decides the route.
pub struct Probe<'a> {
    inner: &'a dyn Vars,
    asked: Cell<bool>,
}

impl<'a> Probe<'a> {
    /// Answers as `inner`, but for the body variables, which are missing.
    pub fn new(inner: &'a dyn Vars) -> Probe<'a> {
        Probe {
            inner,
            asked: Cell::new(false),
        }
    }

    /// Whether a body variable was asked for.
    pub fn asked(&self) -> bool {
        self.asked.get()
    }
}

impl Vars for Probe<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        if name.starts_with("post_arg_") {
            self.asked.set(true);
            return None;
        }
        self.inner.get(name)
    }

    fn post_body(&self) -> Option<&Value> {
        self.asked.set(true);
        None
    }
}

/// A form's fields as an object: a field given once is its text, a repeated one the list of
/// its texts.
fn form_object(pairs: impl Iterator<Item = (String, String)>) -> Value {
    let mut object = Map::new();
    for (name, value) in pairs {
        match object.get_mut(&name) {
            None => {
                object.insert(name, Value::String(value));
            }
            Some(Value::Array(list)) => list.push(Value::String(value)),
            Some(first) => {
                let first = first.take();
                object.insert(name, Value::Array(vec![first, Value::String(value)]));
            }
        }
    }
    Value::Object(object)
}

/// A multipart body's parts as an object of their names and texts (the last part of a name
/// wins; parts without a name are left out). A body the parser refuses has none.
///
/// A body without any CRLF, its lines ended by LF alone (which APISIX's lenient parser reads),
/// is parsed with CRLF line ends, and its texts keep their LFs.
async fn multipart_object(content_type: &str, bytes: &[u8]) -> Option<Value> {
    let boundary = multer::parse_boundary(content_type).ok()?;
    let bare_lf = !bytes.windows(2).any(|w| w == b"\r\n");
    let crlf;
    let bytes = if bare_lf {
        crlf = String::from_utf8_lossy(bytes).replace('\n', "\r\n");
        crlf.as_bytes()
    } else {
        bytes
    };
    let mut multipart = multer::Multipart::with_reader(bytes, boundary);
    let mut object = Map::new();
    while let Some(field) = multipart.next_field().await.ok()? {
        let Some(name) = field.name().map(str::to_owned) else {
            continue;
        };
        let mut text = field.text().await.ok()?;
        if bare_lf {
            text = text.replace("\r\n", "\n");
        }
        object.insert(name, Value::String(text));
    }
    Some(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn probes_note_body_variables() {
        let vars = std::collections::HashMap::from([("uri", "/a"), ("post_arg_k", "v")]);
        let probe = Probe::new(&vars);
        assert_eq!(probe.get("uri").as_deref(), Some("/a"));
        assert!(!probe.asked());
        assert_eq!(probe.get("post_arg_k"), None);
        assert!(probe.asked());
        let probe = Probe::new(&vars);
        assert_eq!(probe.post_body(), None);
        assert!(probe.asked());
    }

    #[test]
    fn forms_as_objects() {
        let pairs = form_urlencoded::parse(b"a=1&b=x+y&a=2&a=3&c=").into_owned();
        assert_eq!(
            form_object(pairs),
            json!({"a": ["1", "2", "3"], "b": "x y", "c": ""})
        );
    }

    #[tokio::test]
    async fn multipart_parts() {
        let body = "--xyz\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nopenai\r\n\
                    --xyz\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nlast\r\n\
                    --xyz\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\
                    Content-Type: text/plain\r\n\r\nfile text\r\n--xyz--\r\n";
        let object = multipart_object("multipart/form-data; boundary=xyz", body.as_bytes()).await;
        assert_eq!(object, Some(json!({"model": "last", "f": "file text"})));
        let broken =
            multipart_object("multipart/form-data; boundary=xyz", b"--xyz\r\nno end").await;
        assert_eq!(broken, None);
        assert_eq!(
            multipart_object("multipart/form-data", body.as_bytes()).await,
            None
        );
        let lf = "--b\nContent-Disposition: form-data; name=\"m\"\n\nline 1\nline 2\n--b--";
        let object = multipart_object("multipart/form-data; boundary=b", lf.as_bytes()).await;
        assert_eq!(object, Some(json!({"m": "line 1\nline 2"})), "LF line ends");
    }
}
