//! APISIX's resource schemas (`apisix/schema_def.lua`), as JSON, checked by [`super::jsonschema`]
//! before a write so that a refused body gets APISIX's message. The model types check more
//! afterwards (what they need to run); these say what APISIX accepts and how it words a refusal.

use std::sync::LazyLock;

use serde_json::{json, Value};

/// `id_schema`.
fn id() -> Value {
    json!({"anyOf": [
        {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[a-zA-Z0-9-_.]+$"},
        {"type": "integer", "minimum": 1}
    ]})
}

const HOST_PATTERN: &str = r"^\*$|^\*?[0-9a-zA-Z-._\[\]:]+$";

fn host() -> Value {
    json!({"type": "string", "pattern": HOST_PATTERN})
}

fn hosts() -> Value {
    json!({"type": "array", "items": host(), "minItems": 1, "uniqueItems": true})
}

/// `ip_def`: an IPv4 or IPv6 address or CIDR, as the branches of an `anyOf`.
pub fn ip_def() -> Value {
    let ipv4 = "([0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])";
    let ipv4 = [ipv4; 4].join(r"\.");
    let ipv6 = "([a-fA-F0-9]{0,4}:){1,8}(:[a-fA-F0-9]{0,4}){0,8}([a-fA-F0-9]{0,4})?";
    json!([
        {"title": "IPv4", "type": "string", "format": "ipv4"},
        {"title": "IPv4/CIDR", "type": "string", "pattern": format!("^{ipv4}/([12]?[0-9]|3[0-2])$")},
        {"title": "IPv6", "type": "string", "format": "ipv6"},
        {"title": "IPv6/CIDR", "type": "string", "pattern": format!("^{ipv6}/[0-9]{{1,3}}$")}
    ])
}

fn remote_addr() -> Value {
    json!({"description": "client IP", "type": "string", "anyOf": ip_def()})
}

fn labels() -> Value {
    json!({
        "type": "object",
        "patternProperties": {".*": {
            "type": "string", "pattern": r"^\S+$", "maxLength": 256, "minLength": 1
        }}
    })
}

fn name() -> Value {
    json!({"type": "string", "maxLength": 256, "minLength": 1})
}

fn desc() -> Value {
    json!({"type": "string", "maxLength": 256})
}

fn timestamp() -> Value {
    json!({"type": "integer"})
}

fn timeout() -> Value {
    json!({
        "type": "object",
        "properties": {
            "connect": {"type": "number", "exclusiveMinimum": 0},
            "send": {"type": "number", "exclusiveMinimum": 0},
            "read": {"type": "number", "exclusiveMinimum": 0}
        },
        "required": ["connect", "send", "read"]
    })
}

/// The methods a route may list (`method_schema`).
const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "PURGE",
];

fn statuses(default: &[u16]) -> Value {
    json!({
        "type": "array", "minItems": 1, "uniqueItems": true, "default": default,
        "items": {"type": "integer", "minimum": 200, "maximum": 599}
    })
}

fn bounded(min: u32, max: u32, default: u32) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max, "default": default})
}

fn health_checker() -> Value {
    let active = json!({
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": ["http", "https", "tcp"], "default": "http"},
            "timeout": {"type": "number", "default": 1},
            "concurrency": {"type": "integer", "default": 10},
            "host": host(),
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "http_method": {"type": "string", "enum": METHODS, "default": "GET"},
            "http_path": {"type": "string", "default": "/"},
            "http_req_body": {"type": "string", "default": ""},
            "https_verify_certificate": {"type": "boolean", "default": true},
            // Beyond APISIX (integer seconds): intervals may be fractions, down to 0.1 s.
            "healthy": {"type": "object", "properties": {
                "interval": {"type": "number", "minimum": 0.1, "default": 1},
                "http_statuses": statuses(&[200, 302]),
                "successes": bounded(1, 254, 2)
            }},
            "unhealthy": {"type": "object", "properties": {
                "interval": {"type": "number", "minimum": 0.1, "default": 1},
                "http_statuses": statuses(&[429, 404, 500, 501, 502, 503, 504, 505]),
                "http_failures": bounded(1, 254, 5),
                "tcp_failures": bounded(1, 254, 2),
                "timeouts": bounded(1, 254, 3)
            }},
            "req_headers": {"type": "array", "minItems": 1, "items": {"type": "string", "uniqueItems": true}}
        }
    });
    let passive = json!({
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": ["http", "https", "tcp"], "default": "http"},
            "healthy": {"type": "object", "properties": {
                "http_statuses": statuses(&[200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308]),
                "successes": bounded(0, 254, 5)
            }},
            "unhealthy": {"type": "object", "properties": {
                "http_statuses": statuses(&[429, 500, 503]),
                "tcp_failures": bounded(0, 254, 2),
                "timeouts": bounded(0, 254, 7),
                "http_failures": bounded(0, 254, 5)
            }}
        }
    });
    json!({
        "type": "object",
        "properties": {"active": active, "passive": passive},
        "anyOf": [{"required": ["active"]}, {"required": ["active", "passive"]}]
    })
}

fn nodes() -> Value {
    json!({"anyOf": [
        {"type": "object", "patternProperties": {".*": {"type": "integer", "minimum": 0}}},
        {"type": "array", "items": {
            "type": "object",
            "properties": {
                "host": host(),
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "weight": {"type": "integer", "minimum": 0},
                "priority": {"type": "integer", "default": 0},
                "metadata": {"type": "object"}
            },
            "required": ["host", "weight"]
        }}
    ]})
}

fn upstream() -> Value {
    let certificate = json!({"type": "string", "minLength": 128, "maxLength": 65536});
    let private_key = json!({"type": "string", "minLength": 64, "maxLength": 65536});
    json!({
        "type": "object",
        "properties": {
            "id": id(), "name": name(), "desc": desc(), "labels": labels(),
            "create_time": timestamp(), "update_time": timestamp(),
            "nodes": nodes(),
            "retries": {"type": "integer", "minimum": 0},
            "retry_timeout": {"type": "number", "minimum": 0},
            // Ferrogate's own retry rules (beyond APISIX; checked by the upstream model).
            "retry_on": {"type": "array"},
            "retry_non_idempotent": {"type": "boolean"},
            "timeout": timeout(),
            "tls": {
                "type": "object",
                "properties": {
                    "client_cert_id": id(),
                    "client_cert": certificate,
                    "client_key": private_key,
                    "verify": {"type": "boolean", "default": false}
                },
                "dependencies": {
                    "client_cert": {"required": ["client_key"]},
                    "client_key": {"required": ["client_cert"]},
                    "client_cert_id": {"not": {"required": ["client_cert", "client_key"]}}
                }
            },
            "keepalive_pool": {"type": "object", "properties": {
                "size": {"type": "integer", "default": 320, "minimum": 1},
                "idle_timeout": {"type": "number", "default": 60, "minimum": 0},
                "requests": {"type": "integer", "default": 1000, "minimum": 1}
            }},
            "type": {"type": "string", "default": "roundrobin"},
            "checks": health_checker(),
            "hash_on": {
                "type": "string", "default": "vars",
                "enum": ["vars", "header", "cookie", "consumer", "vars_combinations"]
            },
            "key": {"type": "string"},
            "scheme": {
                "default": "http",
                "enum": ["grpc", "grpcs", "http", "https", "tcp", "tls", "udp", "kafka"]
            },
            "discovery_type": {"type": "string"},
            "discovery_args": {"type": "object", "properties": {
                "namespace_id": {"type": "string"},
                "group_name": {"type": "string"}
            }},
            "pass_host": {"type": "string", "enum": ["pass", "node", "rewrite"], "default": "pass"},
            "upstream_host": host(),
            "service_name": {"type": "string", "maxLength": 256, "minLength": 1}
        },
        "oneOf": [{"required": ["nodes"]}, {"required": ["service_name", "discovery_type"]}],
        "additionalProperties": false
    })
}

/// `upstream_hash_vars_schema`, `upstream_hash_header_schema`: what a chash `key` may be for a
/// `hash_on`; `None` when any key (or none) is accepted.
pub fn chash_key(hash_on: &str) -> Option<Value> {
    match hash_on {
        "vars" => Some(
            json!({"type": "string", "pattern": "^((uri|server_name|server_addr|request_uri|remote_port|remote_addr|query_string|host|hostname|mqtt_client_id)|arg_[0-9a-zA-z_-]+)$"}),
        ),
        "header" | "cookie" => Some(json!({"type": "string", "pattern": "^[a-zA-Z0-9-_]+$"})),
        "vars_combinations" => Some(json!({"type": "string"})),
        _ => None,
    }
}

/// The schema of an upstream (alone or inside a route or service).
pub static UPSTREAM: LazyLock<Value> = LazyLock::new(upstream);

/// `_M.route`.
pub static ROUTE: LazyLock<Value> = LazyLock::new(|| {
    let one_of_or_none = |a: &str, b: &str| {
        json!({"oneOf": [
            {"not": {"anyOf": [{"required": [a]}, {"required": [b]}]}},
            {"required": [a]},
            {"required": [b]}
        ]})
    };
    let pairs: Vec<Value> = ["uri", "uris"]
        .iter()
        .flat_map(|uri| {
            ["plugins", "upstream", "upstream_id", "service_id"]
                .map(move |with| json!({"required": [with, uri]}))
        })
        .chain([
            json!({"required": ["script", "uri"]}),
            json!({"required": ["script", "uris"]}),
        ])
        .collect();
    json!({
        "type": "object",
        "properties": {
            "id": id(), "name": name(), "desc": desc(), "labels": labels(),
            "create_time": timestamp(), "update_time": timestamp(),
            "uri": {"type": "string", "minLength": 1, "maxLength": 4096},
            "uris": {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": true},
            "priority": {"type": "integer", "default": 0},
            "methods": {"type": "array", "items": {"type": "string", "enum": METHODS}, "uniqueItems": true},
            "host": host(),
            "hosts": hosts(),
            "remote_addr": remote_addr(),
            "remote_addrs": {"type": "array", "items": remote_addr(), "minItems": 1, "uniqueItems": true},
            "timeout": timeout(),
            "vars": {"type": "array"},
            "filter_func": {"type": "string", "minLength": 10, "pattern": "^function"},
            "script": {"type": "string", "minLength": 10, "maxLength": 102400},
            "script_id": id(),
            "plugins": {"type": "object"},
            "plugin_config_id": id(),
            "upstream": upstream(),
            "service_id": id(),
            "upstream_id": id(),
            "enable_websocket": {"type": "boolean"},
            "status": {"type": "integer", "enum": [1, 0], "default": 1}
        },
        "allOf": [
            {"oneOf": [{"required": ["uri"]}, {"required": ["uris"]}]},
            one_of_or_none("host", "hosts"),
            one_of_or_none("remote_addr", "remote_addrs")
        ],
        "anyOf": pairs,
        "not": {"anyOf": [
            {"required": ["script", "plugins"]},
            {"required": ["script", "plugin_config_id"]}
        ]},
        "additionalProperties": false
    })
});

/// `_M.service`.
pub static SERVICE: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "type": "object",
        "properties": {
            "id": id(), "name": name(), "desc": desc(), "labels": labels(),
            "create_time": timestamp(), "update_time": timestamp(),
            "plugins": {"type": "object"},
            "upstream": upstream(),
            "upstream_id": id(),
            "script": {"type": "string", "minLength": 10, "maxLength": 102400},
            "enable_websocket": {"type": "boolean"},
            "hosts": hosts()
        },
        "additionalProperties": false
    })
});

/// `_M.consumer`.
pub static CONSUMER: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "type": "object",
        "properties": {
            "id": id(),
            "username": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": r"^[a-zA-Z0-9_\-]+$"},
            "desc": desc(), "labels": labels(),
            "create_time": timestamp(), "update_time": timestamp(),
            "group_id": id(),
            "plugins": {"type": "object"}
        },
        "required": ["username"],
        "additionalProperties": false
    })
});

/// `_M.credential`.
pub static CREDENTIAL: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "type": "object",
        "properties": {
            "id": {"oneOf": [
                id(),
                {"type": "string", "minLength": 15, "maxLength": 128, "pattern": "^[a-zA-Z0-9-_]+/credentials/[a-zA-Z0-9-_.]+$"}
            ]},
            "name": name(), "desc": desc(), "labels": labels(),
            "create_time": timestamp(), "update_time": timestamp(),
            "plugins": {"type": "object", "maxProperties": 1}
        },
        "additionalProperties": false
    })
});

/// `_M.global_rule`.
pub static GLOBAL_RULE: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "type": "object",
        "properties": {
            "id": id(), "create_time": timestamp(), "update_time": timestamp(),
            "plugins": {"type": "object"}
        },
        "required": ["id", "plugins"],
        "additionalProperties": false
    })
});

/// `_M.plugin_config`.
pub static PLUGIN_CONFIG: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "type": "object",
        "properties": {
            "id": id(), "name": {"type": "string"}, "desc": desc(), "labels": labels(),
            "create_time": timestamp(), "update_time": timestamp(),
            "plugins": {"type": "object"}
        },
        "required": ["id", "plugins"],
        "additionalProperties": false
    })
});

/// `_M.consumer_group`.
pub static CONSUMER_GROUP: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "type": "object",
        "properties": {
            "id": id(), "name": name(), "desc": desc(), "labels": labels(),
            "create_time": timestamp(), "update_time": timestamp(),
            "plugins": {"type": "object"}
        },
        "required": ["id", "plugins"],
        "additionalProperties": false
    })
});

/// `_M.ssl`.
pub static SSL: LazyLock<Value> = LazyLock::new(|| {
    let certificate = json!({"type": "string", "minLength": 128, "maxLength": 65536});
    let private_key = json!({"type": "string", "minLength": 64, "maxLength": 65536});
    json!({
        "type": "object",
        "properties": {
            "id": id(), "desc": desc(), "labels": labels(),
            "create_time": timestamp(), "update_time": timestamp(),
            "type": {"type": "string", "default": "server", "enum": ["server", "client"]},
            "cert": certificate,
            "key": private_key,
            "sni": {"type": "string", "pattern": HOST_PATTERN},
            "snis": {"type": "array", "items": {"type": "string", "pattern": HOST_PATTERN}, "minItems": 1},
            "certs": {"type": "array", "items": certificate},
            "keys": {"type": "array", "items": private_key},
            "client": {
                "type": "object",
                "properties": {
                    "ca": certificate,
                    "depth": {"type": "integer", "minimum": 0, "default": 1},
                    "skip_mtls_uri_regex": {"type": "array", "minItems": 1, "uniqueItems": true, "items": {"type": "string"}}
                },
                "required": ["ca"]
            },
            "status": {"type": "integer", "enum": [1, 0], "default": 1},
            "ssl_protocols": {
                "type": "array", "maxItems": 3, "uniqueItems": true,
                "items": {"enum": ["TLSv1.1", "TLSv1.2", "TLSv1.3"]}
            }
        },
        "if": {"properties": {"type": {"enum": ["server"]}}},
        "then": {"oneOf": [
            {"required": ["sni", "key", "cert"]},
            {"required": ["snis", "key", "cert"]}
        ]},
        "else": {"required": ["key", "cert"]},
        "additionalProperties": false
    })
});
