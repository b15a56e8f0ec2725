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

/// A config parsed as `T` along with the JSON it came from, for a [`crate::Kind`] whose check
/// needs the config as written (a fingerprint of it). Its schema is `T`'s, and parsing fails
/// with `T`'s message.
pub struct Raw<T> {
    /// The parsed config.
    pub conf: T,
    /// The config as written.
    pub raw: Value,
}

impl<'de, T: DeserializeOwned> serde::Deserialize<'de> for Raw<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(deserializer)?;
        let conf = parse_conf(&raw).map_err(serde::de::Error::custom)?;
        Ok(Raw { conf, raw })
    }
}

impl<T: JsonSchema> JsonSchema for Raw<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}
