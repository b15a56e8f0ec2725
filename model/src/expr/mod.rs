//! The `vars` expression language (APISIX's lua-resty-expr), compiled once and evaluated per
//! request.
//!
//! A rule is a JSON array. Its elements are expressions that are implicitly AND-ed; an empty
//! rule is true. An array whose first element is one of the logical heads `"AND"`, `"OR"`,
//! `"!AND"` (not-and) or `"!OR"` (nor) combines the remaining elements (at least two), which are
//! themselves rules, so heads nest freely. An expression is `[var, op, value]`,
//! `[var, "!", op, value]` (the result negated) or `[var, value]`: with an operator as `value`,
//! that operator against a missing value (`["arg_a", "=="]` holds when `arg_a` is missing), else
//! `==` with `value` lower-cased (as lua-resty-expr reads it). Logical heads and operators are
//! case-insensitive.
//!
//! Errors are worded as lua-resty-expr words them where it refuses a rule too (`rule should be
//! wrapped inside brackets`, `rule too short`, `bad 'not' expression`, `invalid expression`,
//! `invalid operator '<op>'` with the operator lower-cased, `invalid ip address`); the checks it
//! leaves to request time (regexes, value types) have their own wording.
//!
//! Variables are looked up by name through [`Vars`]; the caller decides what `uri`, `http_*`,
//! `arg_*`, `cookie_*`, `uri_param_*`… mean. Values are text. A `post_arg.<path>` variable is
//! the exception: its path is compiled with the rule ([`BodyPath`], refused as lua-resty-expr's
//! caller refuses it: `invalid expression "$.<path>" near "..."`) and looked up in the request
//! body that [`Vars::post_body`] gives.
//!
//! # Operators (case-insensitive)
//!
//! | op        | true when                                                                  |
//! |-----------|----------------------------------------------------------------------------|
//! | `==`      | left equals right; a JSON number on the right compares numerically and a   |
//! |           | non-numeric left is false; a JSON `null` right means "variable missing"    |
//! | `~=`      | exactly when `==` is false (so a missing variable is `~=` any non-null)    |
//! | `>` `>=` `<` `<=` | both sides are numbers and the comparison holds                   |
//! | `~~`      | the regex finds a match anywhere in left                                   |
//! | `~*`      | the same, case-insensitively                                               |
//! | `in`      | left equals one element of the right array                                 |
//! | `has`     | the list in left contains right                                            |
//! | `ipmatch` | left is an IP address inside one of the right IPs / CIDRs (v4 and v6)      |
//!
//! A missing variable makes every comparison false except `~=` (and `== null`).
//!
//! Choices where Lua's dynamic typing has no direct equivalent, since our variables are text:
//! - Numbers are `f64`. Text is converted like Lua's `tonumber`: surrounding whitespace is
//!   ignored, `0x` hex integers are accepted, `inf`/`nan` are not numbers.
//! - A JSON boolean on the right of `==`/`in` compares with the text `true`/`false`; a number
//!   element of an `in` array compares numerically; arrays and objects on the right of `==`
//!   never equal anything.
//! - `has`: a variable whose text starts with `[` and parses as a JSON array is that array
//!   (strings compare as text, numbers numerically, booleans as `true`/`false`); any other
//!   text is a comma-separated list whose items are trimmed of whitespace.
//! - Regexes use the `regex` crate (RE2-like syntax: no look-around or back-references);
//!   they are compiled by [`Expr::compile`], so a bad pattern is a configuration error.

use std::borrow::Cow;
use std::net::IpAddr;

use ipnet::IpNet;
use regex::{Regex, RegexBuilder};
use serde_json::Value;

mod json_path;
#[cfg(test)]
mod tests;

pub use json_path::BodyPath;

/// Request variables, resolved by the caller. Expressions only ask by name.
pub trait Vars {
    /// The value of variable `name`, or `None` when it is not set.
    fn get(&self, name: &str) -> Option<Cow<'_, str>>;

    /// The request body that `post_arg.<path>` variables look into (a JSON document, or an
    /// object of the form fields or multipart parts), when it was read; none by default.
    fn post_body(&self) -> Option<&Value> {
        None
    }
}

/// A fixed set of variables (tests, tools).
impl<S: std::hash::BuildHasher> Vars for std::collections::HashMap<&str, &str, S> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        std::collections::HashMap::get(self, name).map(|v| Cow::Borrowed(*v))
    }
}

/// Why a rule could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum ExprError {
    /// The rule (or a nested rule) is not a JSON array.
    #[error("rule should be an array, got {0}")]
    NotArray(String),
    /// A single expression was given where a list of expressions was expected.
    #[error("rule should be wrapped inside brackets")]
    NotWrapped,
    /// A nested rule is empty, or a logical head has fewer than two operands.
    #[error("rule too short")]
    TooShort,
    /// A 4-element expression whose second element is not `"!"`.
    #[error("bad 'not' expression")]
    BadNot,
    /// An expression without an operator or a value (`[var]`).
    #[error("invalid expression")]
    Incomplete,
    /// An expression has the wrong shape (length, variable name…).
    #[error("invalid expression {expr}: {reason}")]
    InvalidExpression {
        /// The expression as JSON text.
        expr: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The operator (lower-cased) is not one of the supported ones.
    #[error("invalid operator '{0}'")]
    InvalidOperator(String),
    /// The right-hand value does not suit the operator.
    #[error("invalid value for operator '{op}': {reason}")]
    InvalidValue {
        /// The operator as written.
        op: String,
        /// What was expected.
        reason: &'static str,
    },
    /// A regex operand failed to compile.
    #[error("invalid regex '{pattern}': {source}")]
    InvalidRegex {
        /// The pattern as written.
        pattern: String,
        /// The regex crate's explanation.
        source: regex::Error,
    },
    /// An `ipmatch` operand is neither an IP address nor a CIDR.
    #[error("invalid ip address: {0}")]
    InvalidIp(String),
    /// `ipmatch` without any address.
    #[error("invalid ip address")]
    NoIp,
    /// A `post_arg.<path>` whose path the JSONPath grammar does not read to its end.
    #[error("invalid expression \"{path}\" near \"{rest}\"")]
    InvalidPath {
        /// The path as checked, `$.<path>`.
        path: String,
        /// What was left unread.
        rest: String,
    },
}

/// A compiled `vars` rule.
#[derive(Debug, Clone)]
pub struct Expr {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    /// All must hold (implicit AND of a list, or `"AND"`).
    All(Vec<Node>),
    /// At least one must hold (`"OR"`).
    Any(Vec<Node>),
    /// Negation of a node (`"!AND"`, `"!OR"`).
    Not(Box<Node>),
    Cmp(Cmp),
}

#[derive(Debug, Clone)]
struct Cmp {
    var: Box<str>,
    /// For `post_arg.<path>`: the compiled path.
    path: Option<Box<BodyPath>>,
    negate: bool,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    /// `==`; `~=` is the negation.
    Eq(Operand),
    /// `>` `>=` `<` `<=` with the right side already converted (`None`: never true).
    Num(Ordering, Option<f64>),
    Regex(Regex),
    In(Vec<Operand>),
    Has(Box<str>),
    IpMatch(Vec<IpNet>),
}

#[derive(Debug, Clone, Copy)]
enum Ordering {
    Gt,
    Ge,
    Lt,
    Le,
}

/// A right-hand value for equality tests.
#[derive(Debug, Clone)]
enum Operand {
    /// JSON `null`: equal only to a missing variable.
    Nil,
    Text(Box<str>),
    Number(f64),
    /// Arrays and objects: equal to nothing.
    Never,
}

impl Operand {
    fn from_json(v: &Value) -> Operand {
        match v {
            Value::Null => Operand::Nil,
            Value::String(s) => Operand::Text(s.as_str().into()),
            // A JSON number always fits f64 (serde_json without arbitrary_precision).
            Value::Number(n) => n.as_f64().map_or(Operand::Never, Operand::Number),
            Value::Bool(b) => Operand::Text(if *b { "true" } else { "false" }.into()),
            Value::Array(_) | Value::Object(_) => Operand::Never,
        }
    }

    fn equals(&self, left: Option<&str>) -> bool {
        match (self, left) {
            (Operand::Nil, l) => l.is_none(),
            (_, None) | (Operand::Never, _) => false,
            (Operand::Text(t), Some(l)) => **t == *l,
            (Operand::Number(n), Some(l)) => lua_tonumber(l) == Some(*n),
        }
    }
}

const HEADS: [(&str, Head); 4] = [
    ("AND", Head::And),
    ("OR", Head::Or),
    ("!AND", Head::NotAnd),
    ("!OR", Head::NotOr),
];

#[derive(Debug, Clone, Copy)]
enum Head {
    And,
    Or,
    NotAnd,
    NotOr,
}

fn head_of(s: &str) -> Option<Head> {
    HEADS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, head)| *head)
}

impl Expr {
    /// Compiles a rule from its JSON form.
    ///
    /// # Errors
    /// [`ExprError`] when the rule is malformed: not an array, a bare expression at the top
    /// level, an empty nested rule, an unknown operator, a logical head with fewer than two
    /// operands, a bad regex or IP/CIDR, or a value that does not suit its operator.
    pub fn compile(rule: &Value) -> Result<Expr, ExprError> {
        let items = rule
            .as_array()
            .ok_or_else(|| ExprError::NotArray(rule.to_string()))?;
        match items.first() {
            // An empty rule is true.
            None => Ok(Expr {
                root: Node::All(Vec::new()),
            }),
            Some(Value::Array(_)) => compile_rule(rule).map(|root| Expr { root }),
            Some(Value::String(first)) if head_of(first).is_some() => {
                compile_rule(rule).map(|root| Expr { root })
            }
            Some(_) => Err(ExprError::NotWrapped),
        }
    }

    /// Evaluates the rule against the request's variables.
    pub fn eval(&self, vars: &dyn Vars) -> bool {
        self.root.eval(vars)
    }

    /// Whether the rule reads a variable whose name starts with `prefix`.
    pub fn reads(&self, prefix: &str) -> bool {
        self.root.reads(prefix)
    }
}

/// Compiles any nested rule: a logical head form, a single expression, or a list of rules.
fn compile_rule(rule: &Value) -> Result<Node, ExprError> {
    let items = rule
        .as_array()
        .ok_or_else(|| ExprError::NotArray(rule.to_string()))?;
    match items.first() {
        None => Err(ExprError::TooShort),
        Some(Value::String(first)) => match head_of(first) {
            Some(head) => {
                let operands = &items[1..];
                if operands.len() < 2 {
                    return Err(ExprError::TooShort);
                }
                let nodes = operands
                    .iter()
                    .map(compile_rule)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(match head {
                    Head::And => Node::All(nodes),
                    Head::Or => Node::Any(nodes),
                    Head::NotAnd => Node::Not(Box::new(Node::All(nodes))),
                    Head::NotOr => Node::Not(Box::new(Node::Any(nodes))),
                })
            }
            None => compile_cmp(rule, items).map(Node::Cmp),
        },
        Some(Value::Array(_)) => items
            .iter()
            .map(compile_rule)
            .collect::<Result<Vec<_>, _>>()
            .map(Node::All),
        Some(_) => Err(ExprError::InvalidExpression {
            expr: rule.to_string(),
            reason: "the first element must be a variable name, a logical operator or a rule",
        }),
    }
}

/// An operator as lua-resty-expr reads it: a string, or a number (as its text), lower-cased.
fn op_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_ascii_lowercase()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Whether `op` (lower-cased) is an operator.
fn is_operator(op: &str) -> bool {
    matches!(
        op,
        "==" | "~=" | ">" | ">=" | "<" | "<=" | "~~" | "~*" | "in" | "has" | "ipmatch"
    )
}

fn compile_cmp(rule: &Value, items: &[Value]) -> Result<Cmp, ExprError> {
    let invalid = |reason| ExprError::InvalidExpression {
        expr: rule.to_string(),
        reason,
    };
    let var = match items.first() {
        Some(Value::String(v)) => v.as_str(),
        _ => return Err(invalid("the variable name must be a string")),
    };
    // As lua-resty-expr: `[var, x]` is `[var, x, nil]` when `x` is an operator, else
    // `[var, "==", x]` (with `x` lower-cased as the operator would have been).
    let (negate, lower, value) = match items {
        [_] => return Err(ExprError::Incomplete),
        [_, x] => match op_text(x) {
            Some(op) if is_operator(&op) => (false, op, Value::Null),
            Some(text) => (false, "==".to_owned(), Value::String(text)),
            // `[var, null]`: the variable is missing.
            None if x.is_null() => (false, "==".to_owned(), Value::Null),
            None => return Err(ExprError::Incomplete),
        },
        [_, op, value] => (
            false,
            op_text(op).ok_or(ExprError::Incomplete)?,
            value.clone(),
        ),
        [_, Value::String(bang), op, value] if bang == "!" => (
            true,
            op_text(op).ok_or(ExprError::Incomplete)?,
            value.clone(),
        ),
        [_, _, _, _] => return Err(ExprError::BadNot),
        _ => return Err(invalid("an expression has 2 to 4 elements")),
    };
    let op = lower.as_str();
    let bad_value = |reason| ExprError::InvalidValue {
        op: op.to_owned(),
        reason,
    };
    let (negate, op) = match lower.as_str() {
        "==" => (negate, Op::Eq(Operand::from_json(&value))),
        "~=" => (!negate, Op::Eq(Operand::from_json(&value))),
        ">" | ">=" | "<" | "<=" => {
            let ord = match lower.as_str() {
                ">" => Ordering::Gt,
                ">=" => Ordering::Ge,
                "<" => Ordering::Lt,
                _ => Ordering::Le,
            };
            let right = match &value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => lua_tonumber(s),
                _ => None,
            };
            (negate, Op::Num(ord, right))
        }
        "~~" | "~*" => {
            let pattern = value
                .as_str()
                .ok_or_else(|| bad_value("expected a regex string"))?;
            let re = RegexBuilder::new(pattern)
                .case_insensitive(lower == "~*")
                .build()
                .map_err(|source| ExprError::InvalidRegex {
                    pattern: pattern.to_owned(),
                    source,
                })?;
            (negate, Op::Regex(re))
        }
        "in" => {
            let list = value
                .as_array()
                .ok_or_else(|| bad_value("expected an array"))?;
            (
                negate,
                Op::In(list.iter().map(Operand::from_json).collect()),
            )
        }
        "has" => {
            let item: Box<str> = match &value {
                Value::String(s) => s.as_str().into(),
                Value::Number(n) => n.to_string().into(),
                _ => return Err(bad_value("expected a string or a number")),
            };
            (negate, Op::Has(item))
        }
        "ipmatch" => {
            let texts: Vec<&Value> = match &value {
                Value::Array(list) => list.iter().collect(),
                Value::Null => Vec::new(),
                Value::String(s) if s.is_empty() => Vec::new(),
                single => vec![single],
            };
            if texts.is_empty() {
                return Err(ExprError::NoIp);
            }
            let nets = texts
                .into_iter()
                .map(|v| {
                    let text = v
                        .as_str()
                        .ok_or_else(|| ExprError::InvalidIp(v.to_string()))?;
                    parse_ip_or_cidr(text).ok_or_else(|| ExprError::InvalidIp(text.to_owned()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            (negate, Op::IpMatch(nets))
        }
        _ => return Err(ExprError::InvalidOperator(op.to_owned())),
    };
    let path = match var.strip_prefix("post_arg.") {
        Some(p) => Some(Box::new(BodyPath::parse(p)?)),
        None => None,
    };
    Ok(Cmp {
        var: var.into(),
        path,
        negate,
        op,
    })
}

/// Parses `1.2.3.4`, `1.2.3.0/24`, `::1` or `fe80::/10`.
pub fn parse_ip_or_cidr(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Text to number the way Lua's `tonumber` does it for the inputs that matter here.
fn lua_tonumber(text: &str) -> Option<f64> {
    let t = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        let v = u64::from_str_radix(hex, 16).ok()? as f64;
        return Some(if neg { -v } else { v });
    }
    // Rust accepts "inf", "infinity" and "nan"; Lua does not.
    if !digits.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    t.parse::<f64>().ok()
}

fn list_contains(left: &str, item: &str) -> bool {
    if left.trim_start().starts_with('[') {
        if let Ok(items) = serde_json::from_str::<Vec<Value>>(left) {
            return items.iter().any(|v| match v {
                Value::String(s) => s == item,
                Value::Number(n) => n.as_f64().is_some() && n.as_f64() == lua_tonumber(item),
                Value::Bool(b) => item == if *b { "true" } else { "false" },
                Value::Null | Value::Array(_) | Value::Object(_) => false,
            });
        }
    }
    left.split(',').any(|part| part.trim() == item)
}

impl Node {
    fn reads(&self, prefix: &str) -> bool {
        match self {
            Node::All(nodes) | Node::Any(nodes) => nodes.iter().any(|n| n.reads(prefix)),
            Node::Not(node) => node.reads(prefix),
            Node::Cmp(cmp) => cmp.var.starts_with(prefix),
        }
    }

    fn eval(&self, vars: &dyn Vars) -> bool {
        match self {
            Node::All(nodes) => nodes.iter().all(|n| n.eval(vars)),
            Node::Any(nodes) => nodes.iter().any(|n| n.eval(vars)),
            Node::Not(node) => !node.eval(vars),
            Node::Cmp(cmp) => cmp.eval(vars),
        }
    }
}

impl Cmp {
    fn eval(&self, vars: &dyn Vars) -> bool {
        let value = match &self.path {
            Some(path) => vars.post_body().and_then(|body| path.resolve(body)),
            None => vars.get(&self.var),
        };
        let left = value.as_deref();
        let result = match &self.op {
            Op::Eq(right) => right.equals(left),
            Op::Num(ord, right) => match (left.and_then(lua_tonumber), right) {
                (Some(l), Some(r)) => match ord {
                    Ordering::Gt => l > *r,
                    Ordering::Ge => l >= *r,
                    Ordering::Lt => l < *r,
                    Ordering::Le => l <= *r,
                },
                _ => false,
            },
            Op::Regex(re) => left.is_some_and(|l| re.is_match(l)),
            Op::In(list) => left.is_some() && list.iter().any(|item| item.equals(left)),
            Op::Has(item) => left.is_some_and(|l| list_contains(l, item)),
            Op::IpMatch(nets) => left
                .and_then(|l| l.trim().parse::<IpAddr>().ok())
                .is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))),
        };
        result != self.negate
    }
}
