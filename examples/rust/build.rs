//! The gateway embeds CPython for its in-process Python runner: this links the binary and the
//! tests with an rpath to that libpython, as proxy/build.rs does for the `ferrogate` binary
//! (cargo applies link arguments only to the package whose build script emits them).

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
