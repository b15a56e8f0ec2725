//! Neutral call types to `ferrogate_sdk.inprocess` arguments and its answers back, as its
//! docstring specifies: byte strings as `bytes`, lists of `(name, value or None)` tuples, and
//! `None` / `("stop", ...)` / `("rewrite", ...)` / `(status, headers, body)` answers.

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use runner_protocol::{
    Action, HttpRequest, HttpRequestReply, HttpResponse, HttpResponseReply, Rewrite, Stop,
    TextEntry,
};

use crate::call::{text, Failure, Fetch};
use crate::interp::Sdk;

/// `[(name, value or None), ...]`.
pub(crate) fn entry_list<'py>(
    py: Python<'py>,
    entries: &[TextEntry],
) -> PyResult<Bound<'py, PyList>> {
    PyList::new(
        py,
        entries.iter().map(|e| {
            (
                PyBytes::new(py, &e.name),
                e.value.as_ref().map(|v| PyBytes::new(py, v)),
            )
        }),
    )
}

/// `[(name, value), ...]` for `prepare` (an absent value is empty text).
pub(crate) fn conf_list<'py>(py: Python<'py>, conf: &[TextEntry]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(
        py,
        conf.iter().map(|e| {
            (
                PyBytes::new(py, &e.name),
                PyBytes::new(py, e.value.as_deref().unwrap_or_default()),
            )
        }),
    )
}

fn entries(obj: &Bound<'_, PyAny>, what: &str) -> Result<Vec<TextEntry>, Failure> {
    let mut out = Vec::new();
    for item in obj.try_iter()? {
        let item = item?;
        let pair = item
            .cast::<PyTuple>()
            .map_err(|_| Failure::Malformed(format!("{what}: entries must be tuples")))?;
        if pair.len() != 2 {
            return Err(Failure::Malformed(format!(
                "{what}: entries must be (name, value) pairs"
            )));
        }
        let value = pair.get_item(1)?;
        out.push(TextEntry {
            name: text(&pair.get_item(0)?)?,
            value: if value.is_none() {
                None
            } else {
                Some(text(&value)?)
            },
        });
    }
    Ok(out)
}

fn body(obj: &Bound<'_, PyAny>) -> Result<Bytes, Failure> {
    if obj.is_none() {
        return Ok(Bytes::new());
    }
    Ok(text(obj)?)
}

/// Calls `request_call` and reads its answer.
pub(crate) fn request(
    py: Python<'_>,
    sdk: &Sdk,
    prepared: &Py<PyAny>,
    call: &HttpRequest,
    fetch: Bound<'_, Fetch>,
) -> Result<HttpRequestReply, Failure> {
    let args = (
        prepared.bind(py),
        call.method.name(),
        PyBytes::new(py, &call.path),
        entry_list(py, &call.args)?,
        entry_list(py, &call.headers)?,
        PyBytes::new(py, &call.src_ip),
        fetch,
        call.id,
    );
    let answer = sdk.request_call.bind(py).call1(args)?;
    let action = request_action(&answer)?;
    Ok(HttpRequestReply {
        id: call.id,
        action,
    })
}

fn request_action(answer: &Bound<'_, PyAny>) -> Result<Option<Action>, Failure> {
    if answer.is_none() {
        return Ok(None);
    }
    let t = answer
        .cast::<PyTuple>()
        .map_err(|_| Failure::Malformed("request_call: expected None or a tuple".into()))?;
    let tag: String = t.get_item(0)?.extract()?;
    match (tag.as_str(), t.len()) {
        ("stop", 4) => Ok(Some(Action::Stop(Stop {
            status: t.get_item(1)?.extract()?,
            headers: entries(&t.get_item(2)?, "stop headers")?,
            body: body(&t.get_item(3)?)?,
        }))),
        ("rewrite", 6) => {
            let path = t.get_item(1)?;
            Ok(Some(Action::Rewrite(Rewrite {
                path: if path.is_none() {
                    None
                } else {
                    Some(text(&path)?)
                },
                headers: entries(&t.get_item(2)?, "rewrite headers")?,
                args: entries(&t.get_item(3)?, "rewrite args")?,
                resp_headers: entries(&t.get_item(4)?, "rewrite resp_headers")?,
                body: body(&t.get_item(5)?)?,
            })))
        }
        (tag, n) => Err(Failure::Malformed(format!(
            "request_call: unknown answer ({tag:?} with {n} items)"
        ))),
    }
}

/// Calls `response_call` and reads its answer.
pub(crate) fn response(
    py: Python<'_>,
    sdk: &Sdk,
    prepared: &Py<PyAny>,
    call: &HttpResponse,
    fetch: Bound<'_, Fetch>,
) -> Result<HttpResponseReply, Failure> {
    let args = (
        prepared.bind(py),
        call.status,
        entry_list(py, &call.headers)?,
        fetch,
        call.id,
    );
    let answer = sdk.response_call.bind(py).call1(args)?;
    if answer.is_none() {
        return Ok(HttpResponseReply {
            id: call.id,
            ..HttpResponseReply::default()
        });
    }
    let t = answer
        .cast::<PyTuple>()
        .map_err(|_| Failure::Malformed("response_call: expected None or a tuple".into()))?;
    if t.len() != 3 {
        return Err(Failure::Malformed(
            "response_call: expected (status, headers, body)".into(),
        ));
    }
    Ok(HttpResponseReply {
        id: call.id,
        status: t.get_item(0)?.extract()?,
        headers: entries(&t.get_item(1)?, "response headers")?,
        body: body(&t.get_item(2)?)?,
    })
}
