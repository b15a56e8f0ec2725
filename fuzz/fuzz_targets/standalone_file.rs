#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ferrogate_fuzz::standalone_file(data);
});
