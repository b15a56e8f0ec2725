//! JSON-schema pieces shared by the built-in plugins' configs.

use schemars::{json_schema, Schema, SchemaGenerator};

/// Schema of a list of addresses and CIDRs: APISIX's `ip_def` items, at least one.
pub(crate) fn ip_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "array", "items": {"anyOf": model::ip_def()}, "minItems": 1})
}
