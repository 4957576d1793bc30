//! `milter.yaml`: every input gives a configuration or an error value.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mailward::Config;

fuzz_target!(|text: &str| {
    let base = Path::new("/nonexistent-mailward-fuzz");
    let _ = Config::from_yaml_str(text, Path::new("milter.yaml"), base);
});
