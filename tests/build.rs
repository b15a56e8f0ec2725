//! Links this package's binaries and tests with an rpath to the libpython that the in-process
//! Python runner (runner-python, pyo3) links against, so they run without `LD_LIBRARY_PATH`.
//! Cargo applies link arguments only to the package that emits them: every package whose
//! targets link the gateway needs this script.

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
