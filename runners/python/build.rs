//! Links this crate's tests, examples and benches with an rpath to the libpython that pyo3 found
//! (`PYO3_PYTHON`, else `python3` on `PATH`), so `cargo test` runs without `LD_LIBRARY_PATH`.
//! A binary in another crate (the gateway) needs the same line in its own build script: Cargo
//! applies link arguments only to the targets of the package that emits them.

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
