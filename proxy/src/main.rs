//! The `ferrogate` command: `run`, `validate`, `version` (see [`ferrogate::Ferrogate`]).

use std::process::ExitCode;

/// mimalloc gives memory freed by a config that shrank back to the system within seconds; glibc's
/// malloc kept most of it (a 100k-route standalone file shrunk to 2 routes: 108 MB resident with
/// mimalloc, 796 MB with glibc; `cargo run --release -p ferrogate --example config_memory`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    ferrogate::Ferrogate::new().main()
}
