//! Plugin config schemas: the JSON schema of a config type, and checking a config against it
//! with APISIX's wording before parsing it.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use model::jsonschema::{check, from_rust_types, lua_number};
pub use model::{schema_of, yes};

use crate::parse_conf;

/// Parses a config: its schema first, for APISIX's wording of a failure, then the type itself.
///
/// # Errors
/// The first failure.
pub fn checked_conf<T: DeserializeOwned + JsonSchema>(conf: &Value) -> Result<T, String> {
    check(&from_rust_types(&schema_of::<T>()), conf)?;
    parse_conf(conf)
}
