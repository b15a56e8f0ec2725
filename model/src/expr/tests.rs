use std::collections::HashMap;

use serde_json::{json, Value};

use super::{Expr, ExprError};

fn vars() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("arg_name", "json"),
        ("arg_age", "20"),
        ("arg_hex", "0x10"),
        ("arg_neg", " -3.5 "),
        ("arg_text", "abc"),
        ("arg_inf", "inf"),
        ("uri", "/api/Users/42"),
        ("remote_addr", "10.1.2.3"),
        ("remote_addr6", "2001:db8::7"),
        ("fields", "user, owner,repo"),
        ("json_fields", r#"["user", 7, "repo"]"#),
        ("empty", ""),
    ])
}

#[test]
fn evaluates_table() {
    let v = vars();
    let cases: Vec<(Value, bool)> = vec![
        // empty rule
        (json!([]), true),
        // == on text, implicit ==, case of the operator
        (json!([["arg_name", "==", "json"]]), true),
        (json!([["arg_name", "==", "JSON"]]), false),
        (json!([["arg_name", "json"]]), true),
        (json!([["arg_name", "xml"]]), false),
        // == with a number: left converted
        (json!([["arg_age", "==", 20]]), true),
        (json!([["arg_age", "==", 20.0]]), true),
        (json!([["arg_age", "==", 21]]), false),
        (json!([["arg_hex", "==", 16]]), true),
        (json!([["arg_text", "==", 0]]), false),
        (json!([["arg_inf", "==", 1e308]]), false),
        // == with a number written as text compares text
        (json!([["arg_age", "==", "20.0"]]), false),
        // ~= is the negation of ==, numeric failure is true
        (json!([["arg_name", "~=", "xml"]]), true),
        (json!([["arg_name", "~=", "json"]]), false),
        (json!([["arg_text", "~=", 5]]), true),
        (json!([["arg_age", "~=", 20]]), false),
        // missing variable
        (json!([["missing", "==", "x"]]), false),
        (json!([["missing", "~=", "x"]]), true),
        (json!([["missing", ">", 1]]), false),
        (json!([["missing", "~~", "."]]), false),
        (json!([["missing", "in", ["a"]]]), false),
        (json!([["missing", "has", "a"]]), false),
        (json!([["missing", "ipmatch", "0.0.0.0/0"]]), false),
        // null on the right is nil
        (json!([["missing", "==", null]]), true),
        (json!([["arg_name", "==", null]]), false),
        (json!([["missing", "~=", null]]), false),
        (json!([["arg_name", "~=", null]]), true),
        (json!([["missing", null]]), true),
        // numeric comparisons
        (json!([["arg_age", ">", 18]]), true),
        (json!([["arg_age", ">", 20]]), false),
        (json!([["arg_age", ">=", 20]]), true),
        (json!([["arg_age", "<", 21]]), true),
        (json!([["arg_age", "<", "21"]]), true),
        (json!([["arg_age", "<=", 19]]), false),
        (json!([["arg_neg", "<", -3]]), true),
        (json!([["arg_text", ">", 0]]), false),
        (json!([["arg_text", "<", 0]]), false),
        (json!([["arg_age", ">", "abc"]]), false),
        (json!([["empty", ">=", 0]]), false),
        // regex find, unanchored; ~* ignores case
        (json!([["uri", "~~", "^/api/[A-Za-z]+/\\d+$"]]), true),
        (json!([["uri", "~~", "users"]]), false),
        (json!([["uri", "~*", "users"]]), true),
        (json!([["uri", "~~", "Users/4"]]), true),
        (json!([["uri", "~~", "^/web"]]), false),
        // in
        (json!([["arg_name", "in", ["xml", "json"]]]), true),
        (json!([["arg_name", "in", ["xml"]]]), false),
        (json!([["arg_age", "in", [19, 20]]]), true),
        (json!([["arg_name", "in", []]]), false),
        // has: comma list (trimmed) and JSON array
        (json!([["fields", "has", "owner"]]), true),
        (json!([["fields", "has", "own"]]), false),
        (json!([["json_fields", "has", "repo"]]), true),
        (json!([["json_fields", "has", 7]]), true),
        (json!([["json_fields", "has", "7x"]]), false),
        // ipmatch v4, v6, CIDR, single IP, string operand
        (json!([["remote_addr", "ipmatch", ["10.0.0.0/8"]]]), true),
        (json!([["remote_addr", "ipmatch", ["10.1.2.3"]]]), true),
        (
            json!([["remote_addr", "ipmatch", ["192.168.0.0/16", "10.1.2.4"]]]),
            false,
        ),
        (json!([["remote_addr", "ipmatch", "10.1.0.0/16"]]), true),
        (
            json!([["remote_addr6", "ipmatch", ["2001:db8::/32"]]]),
            true,
        ),
        (
            json!([["remote_addr6", "ipmatch", ["10.0.0.0/8", "::1"]]]),
            false,
        ),
        (json!([["arg_text", "ipmatch", ["0.0.0.0/0"]]]), false),
        // case-insensitive operator names
        (json!([["arg_name", "IN", ["json"]]]), true),
        (json!([["remote_addr", "IPMATCH", ["10.0.0.0/8"]]]), true),
        // negation
        (json!([["arg_name", "!", "==", "json"]]), false),
        (json!([["arg_name", "!", "==", "xml"]]), true),
        (json!([["arg_name", "!", "~=", "json"]]), true),
        (json!([["missing", "!", "==", "x"]]), true),
        (json!([["arg_age", "!", ">", 30]]), true),
        (json!([["uri", "!", "~~", "^/api"]]), false),
        (json!([["arg_name", "!", "in", ["a", "b"]]]), true),
        (
            json!([["remote_addr", "!", "ipmatch", ["10.0.0.0/8"]]]),
            false,
        ),
        (json!([["missing", "=="]]), true),
        (json!([["arg_name", "=="]]), false),
        (json!([["arg_name", "JSON"]]), true),
        (json!([["ARG_NAME", "json"]]), false),
        (
            json!(["or", ["arg_name", "xml"], ["arg_name", "json"]]),
            true,
        ),
        // implicit AND
        (
            json!([["arg_name", "==", "json"], ["arg_age", ">", 18]]),
            true,
        ),
        (
            json!([["arg_name", "==", "json"], ["arg_age", ">", 30]]),
            false,
        ),
        // logical heads
        (
            json!(["AND", ["arg_name", "==", "json"], ["arg_age", ">", 18]]),
            true,
        ),
        (
            json!(["AND", ["arg_name", "==", "json"], ["arg_age", ">", 30]]),
            false,
        ),
        (
            json!(["OR", ["arg_name", "==", "xml"], ["arg_age", ">", 18]]),
            true,
        ),
        (
            json!(["OR", ["arg_name", "==", "xml"], ["arg_age", ">", 30]]),
            false,
        ),
        (
            json!(["!AND", ["arg_name", "==", "json"], ["arg_age", ">", 18]]),
            false,
        ),
        (
            json!(["!AND", ["arg_name", "==", "json"], ["arg_age", ">", 30]]),
            true,
        ),
        (
            json!(["!OR", ["arg_name", "==", "xml"], ["arg_age", ">", 30]]),
            true,
        ),
        (
            json!(["!OR", ["arg_name", "==", "xml"], ["arg_age", ">", 18]]),
            false,
        ),
        // nesting
        (
            json!([
                "OR",
                ["AND", ["arg_name", "==", "json"], ["arg_age", ">", 30]],
                ["!OR", ["missing", "==", "a"], ["arg_text", "==", "x"]]
            ]),
            true,
        ),
        (
            json!([
                "AND",
                ["OR", ["arg_name", "==", "a"], ["arg_name", "==", "b"]],
                ["arg_age", "==", 20]
            ]),
            false,
        ),
        (
            json!([
                ["OR", ["arg_name", "==", "a"], ["arg_name", "==", "json"]],
                ["arg_age", "==", 20]
            ]),
            true,
        ),
        (
            json!([
                "OR",
                [["arg_name", "==", "json"], ["arg_age", "==", 1]],
                [["arg_text", "==", "abc"]]
            ]),
            true,
        ),
    ];
    for (rule, want) in cases {
        let expr = Expr::compile(&rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
        assert_eq!(expr.eval(&v), want, "rule {rule}");
    }
}

#[test]
fn rejects_table() {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!(["arg_a", "==", "1"]),
            "rule should be wrapped inside brackets",
        ),
        (
            json!(["arg_a", "1"]),
            "rule should be wrapped inside brackets",
        ),
        (json!({"a": 1}), "rule should be an array"),
        (json!("arg_a"), "rule should be an array"),
        (json!([["arg_a", "foo", "1"]]), "invalid operator 'foo'"),
        (
            json!([["arg_a", "!", "bar", "1"]]),
            "invalid operator 'bar'",
        ),
        (
            json!([["arg_a", "~~", "(unclosed"]]),
            "invalid regex '(unclosed'",
        ),
        (json!([["arg_a", "~*", "a{2,1}"]]), "invalid regex"),
        (json!([["arg_a", "~~", 5]]), "expected a regex string"),
        (json!(["OR", ["arg_a", "==", "1"]]), "rule too short"),
        (json!(["AND"]), "rule too short"),
        (json!([["!OR", ["a", "1"]]]), "rule too short"),
        (json!([[]]), "rule too short"),
        (json!([["arg_a", "==", "1"], []]), "rule too short"),
        (json!([["arg_a", "FOO", "1"]]), "invalid operator 'foo'"),
        (json!([["arg_a", 123, "1"]]), "invalid operator '123'"),
        (json!([["arg_a", "!", "=="]]), "invalid operator '!'"),
        (json!([["arg_a", "ipmatch"]]), "invalid ip address"),
        (json!([["arg_a", "ipmatch", []]]), "invalid ip address"),
        (json!([["arg_a", "in", "x"]]), "expected an array"),
        (
            json!([["arg_a", "has", ["x"]]]),
            "expected a string or a number",
        ),
        (
            json!([["arg_a", "ipmatch", ["10.0.0.300"]]]),
            "invalid ip address: 10.0.0.300",
        ),
        (json!([["arg_a", "ipmatch", [5]]]), "invalid ip address: 5"),
        (json!([["arg_a"]]), "invalid expression"),
        (
            json!([["arg_a", "==", "1", "2", "3"]]),
            "an expression has 2 to 4 elements",
        ),
        (json!([[1, "==", "1"]]), "invalid expression"),
        (json!([["arg_a", true, "1"]]), "invalid expression"),
        (json!([5]), "rule should be wrapped inside brackets"),
        (json!([["arg_a", "==", "1", "2"]]), "bad 'not' expression"),
        (json!(["OR", ["a", "1"], "b"]), "rule should be an array"),
    ];
    for (rule, want) in cases {
        match Expr::compile(&rule) {
            Ok(_) => panic!("{rule} compiled, expected error containing {want:?}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(want), "{rule}: got {msg:?}, want {want:?}");
            }
        }
    }
}

#[test]
fn error_variants_are_typed() {
    assert!(matches!(
        Expr::compile(&json!(["uri", "==", "/"])),
        Err(ExprError::NotWrapped)
    ));
    assert!(matches!(
        Expr::compile(&json!([["uri", "regex", "/"]])),
        Err(ExprError::InvalidOperator(op)) if op == "regex"
    ));
}

/// Variables with a request body for `post_arg.<path>`.
struct WithBody(Value);

impl super::Vars for WithBody {
    fn get(&self, _name: &str) -> Option<std::borrow::Cow<'_, str>> {
        None
    }

    fn post_body(&self) -> Option<&Value> {
        Some(&self.0)
    }
}

#[test]
fn post_arg_paths() {
    let body = WithBody(json!({"model": {"name": "deepseek"}, "n": 3, "messages": [
        {"content": [{"type": "text"}, {"type": "image_url"}]}
    ]}));
    let eval = |rule: Value, vars: &dyn super::Vars| Expr::compile(&rule).expect("rule").eval(vars);
    assert!(eval(
        json!([["post_arg.model.name", "==", "deepseek"]]),
        &body
    ));
    assert!(!eval(json!([["post_arg.model", "==", "deepseek"]]), &body));
    assert!(eval(json!([["post_arg.n", ">", 2]]), &body));
    let has = |t: &str| json!([["post_arg.messages[*].content[*].type", "has", t]]);
    assert!(eval(has("image_url"), &body));
    assert!(!eval(has("audio"), &body));
    assert!(
        !eval(json!([["post_arg.messages[0].content", "==", "x"]]), &body),
        "a query gives a list"
    );
    assert!(
        !eval(json!([["post_arg.model.name", "==", "deepseek"]]), &vars()),
        "no body read"
    );
    assert!(eval(
        json!([["post_arg.model.name", "~=", "deepseek"]]),
        &vars()
    ));
    let refused = Expr::compile(&json!([["post_arg.messages[.content", "has", "x"]]))
        .expect_err("bad path")
        .to_string();
    assert_eq!(
        refused,
        r#"invalid expression "$.messages[.content" near "[.content""#
    );
    assert!(Expr::compile(&json!([["post_arg_model", "==", "x"]])).is_ok());
}
