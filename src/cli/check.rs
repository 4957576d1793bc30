//! `mailward check`: reads the configuration and builds the library as the
//! milter does at start-up, then prints what was read. The figures are
//! the ones an administrator needs before a reload: how many entries, how
//! many merged, how big the index is and how long the build took.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use mailward::Rules;
use mailward::behavior::policy::Policy;
use mailward::config::model::{Config, Threshold};
use mailward::library::Library;

use super::{EXIT_USAGE, Source, bytes, init_logging, load_rules};

/// Categories named one by one in the summary; more are counted.
const CATEGORIES_SHOWN: usize = 20;

pub fn check(config_path: &Path) -> ExitCode {
    init_logging();
    let Some(rules) = load_rules(Source::Config(config_path)) else {
        return ExitCode::from(EXIT_USAGE);
    };
    let report = describe(config_path, &rules);
    // A closed stdout is not the configuration's fault: the status still
    // says it is valid.
    let _ = std::io::stdout().lock().write_all(report.as_bytes());
    ExitCode::SUCCESS
}

/// The whole report: the configuration, then the library.
fn describe(config_path: &Path, rules: &Rules) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "configuration {}: ok", config_path.display());
    describe_config(&mut out, &rules.config);
    let _ = writeln!(out, "library {}: ok", rules.config.library_path().display());
    describe_library(&mut out, &rules.library);
    out
}

fn line(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "  {label:<19}{value}");
}

fn threshold(t: Threshold) -> String {
    t.0.map_or_else(|| "off".into(), |v| v.to_string())
}

fn describe_config(out: &mut String, c: &Config) {
    let j = &c.judge;
    line(out, "listen", &c.listen);
    line(out, "mode", format!("{:?}", j.mode).to_lowercase());
    line(
        out,
        "thresholds",
        format!(
            "reject {}, tempfail {}, quarantine {}, tag {}",
            threshold(j.reject_score),
            threshold(j.tempfail_score),
            threshold(j.quarantine_score),
            threshold(j.tag_score)
        ),
    );
    let caps: Vec<String> = j
        .category_caps
        .iter()
        .map(|(k, v)| format!("{} {}", k.0, v.0))
        .collect();
    line(
        out,
        "category caps",
        if caps.is_empty() {
            "none".into()
        } else {
            caps.join(", ")
        },
    );
    line(
        out,
        "verdict header",
        format!(
            "{} (accepted mail {})",
            j.header.0,
            if j.tag_accepted {
                "tagged too"
            } else {
                "not tagged"
            }
        ),
    );
    line(
        out,
        "on error",
        format!("{:?}", c.milter.on_error).to_lowercase(),
    );
    let l = &c.limits;
    line(
        out,
        "limits",
        format!(
            "message {}, text {}, {} parts, depth {}, fallback charset {}",
            bytes(l.message_bytes.0),
            bytes(l.text_bytes.0),
            l.parts.0,
            l.depth.0,
            l.fallback_charset.0.name()
        ),
    );
    let nets: Vec<String> = c
        .exempt
        .trusted_networks
        .iter()
        .map(|n| n.to_string())
        .collect();
    line(
        out,
        "exempt",
        format!(
            "postmaster@ and abuse@; trusted networks {}; authenticated senders {}",
            if nets.is_empty() {
                "none".into()
            } else {
                nets.join(" ")
            },
            if c.exempt.authenticated { "yes" } else { "no" }
        ),
    );
    describe_behavior(out, c);
    line(
        out,
        "log level",
        format!("{:?}", c.log.level).to_lowercase(),
    );
}

/// Behavior monitoring: its limits and the most memory their counters can
/// take (the bound the milter enforces at start and on reload).
fn describe_behavior(out: &mut String, c: &Config) {
    let p = Policy::compile(&c.behavior);
    if !p.enabled {
        line(out, "behavior", "off");
        return;
    }
    let [ip, login, sender] = p.max_keys;
    line(
        out,
        "behavior",
        format!(
            "{} limit(s); keys tracked up to ip {ip}, login {login}, sender {sender}; counters up to {} (cap {})",
            p.rules.len(),
            bytes(p.worst_case_bytes()),
            bytes(c.behavior.tracking.max_memory.0)
        ),
    );
}

fn describe_library(out: &mut String, lib: &Library) {
    let s = lib.stats();
    line(out, "entries", s.entries);
    line(out, "merged duplicates", s.merged_duplicates);
    line(out, "distinct keywords", s.distinct_keywords);
    line(out, "longest list", s.longest_list);
    line(out, "short entries", s.short_entries);
    // Entries per category, in the library's category order.
    let names = lib.categories();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for e in lib.entries() {
        *counts.entry(e.category()).or_default() += 1;
    }
    let mut shown: Vec<String> = names
        .iter()
        .take(CATEGORIES_SHOWN)
        .map(|n| format!("{n} {}", counts.get(n.as_str()).unwrap_or(&0)))
        .collect();
    if names.len() > CATEGORIES_SHOWN {
        shown.push(format!("{} more", names.len() - CATEGORIES_SHOWN));
    }
    line(
        out,
        "categories",
        format!("{}: {}", names.len(), shown.join(", ")),
    );
    line(out, "string bytes", bytes(s.raw_bytes));
    line(out, "index memory", bytes(s.index_bytes));
    line(out, "total memory", bytes(s.memory_bytes));
    line(
        out,
        "build time",
        format!("{:.3} s", s.build_time.as_secs_f64()),
    );
    // The scan's speed depends on it: the vector kernels this CPU runs.
    line(out, "scan kernels", mailward::library::kernels());
}
