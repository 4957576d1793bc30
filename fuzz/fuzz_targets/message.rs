//! A raw message through decoding, normalization, the scan and the
//! judgment, with the shipped `milter.yaml` and library: nothing may panic,
//! the hits are sorted, distinct and real entries, and judging the decoded
//! texts gives what judging the raw bytes gives.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mailward::library::Scanner;
use mailward::{Config, Rules};

static RULES: LazyLock<Rules> = LazyLock::new(|| {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../milter.yaml");
    let config = Config::load(&path).expect("the shipped milter.yaml loads");
    Rules::build(config, 1).expect("the shipped library builds")
});

fuzz_target!(|raw: &[u8]| {
    let mut scanner = Scanner::new();
    let e = RULES.evaluate(raw, &mut scanner);
    // Each entry once, sorted, found at least once, and in the library.
    for w in e.scan.hits.windows(2) {
        assert!(w[0].entry < w[1].entry, "hits not sorted by entry");
    }
    for h in &e.scan.hits {
        assert!(h.count > 0 && RULES.library.entry(h.entry).is_some());
    }
    // `mailward scan --text` decodes first and judges the decoded texts:
    // the same verdict as the milter's one pass over the raw bytes.
    let decoded = RULES.decode(raw);
    let again = RULES.evaluate_decoded(&decoded, &mut scanner);
    assert_eq!(again.scan.hits, e.scan.hits);
    assert_eq!(again.scan.notes, e.scan.notes);
    assert_eq!(again.judgment, e.judgment);
});
