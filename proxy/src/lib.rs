//! Ferrogate: an API gateway compatible with Apache APISIX's data model.

pub mod upstream;
