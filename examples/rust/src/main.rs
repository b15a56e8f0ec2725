//! The `ferrogate` command (`run`, `validate`, `version`) with the `tenant-header` plugin beside
//! the built-in ones: `ferrogate-example-plugin run -c conf/config.yaml`.

use std::process::ExitCode;
use std::sync::Arc;

use ferrogate_example_plugin::TenantHeader;

/// The allocator the `ferrogate` binary uses: mimalloc returns the memory of a config that
/// shrank to the system sooner than the system allocator does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    ferrogate::Ferrogate::new()
        .plugin(Arc::new(TenantHeader))
        .main()
}
