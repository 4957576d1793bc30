//! Library YAML: every input builds a library or gives an error value.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mailward::library::Library;

fuzz_target!(|text: &str| {
    // Includes resolve under a directory that does not exist: they fail
    // as errors, and the fuzzer never reads the file system.
    let base = Path::new("/nonexistent-mailward-fuzz");
    if let Ok(lib) = Library::from_yaml_str(text, Path::new("fuzz.yaml"), base) {
        let _ = lib.scan(text);
    }
});
