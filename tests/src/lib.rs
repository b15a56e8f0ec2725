//! The runner conformance suite lives in this crate's integration tests
//! (`tests/tests/conformance.rs`): end-to-end scenarios through a real gateway, a real upstream
//! and a real runner process, written once and run against every runner: APISIX's official Go
//! runner (with its sample plugins, for what they can express) and the runners of our Go,
//! Python and Java SDKs (with the plugin set of `tests/conformance/PLUGINS.md`).
//!
//! A new runner plugs in by adding one line to the `conformance!` list at the end of that file
//! and a function that says how to start it.
