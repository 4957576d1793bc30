//! The Prometheus text exposition format (version 0.0.4): each family
//! with its `# HELP` and `# TYPE` lines, then its samples, label values
//! escaped (`\`, `"`, newline). Every metric is listed in
//! `docs/metrics.md`.

use std::fmt::{Display, Write};

use super::{
    ACTIONS, EXEMPTIONS, HistogramSnapshot, LATENCY_BOUNDS, Metrics, REFUSERS, STAGES, VERDICTS,
    get,
};
use crate::behavior::Monitor;
use crate::rules::Rules;
use crate::state::ReloadCounts;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                self.0.push_str(k);
                self.0.push_str("=\"");
                escape(&mut self.0, v);
                self.0.push('"');
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (i, n) in h.cumulative.iter().enumerate() {
            let le = LATENCY_BOUNDS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            self.sample(&bucket, &[("le", &le)], n);
        }
        self.sample(&format!("{name}_sum"), &[], h.sum_secs);
        self.sample(&format!("{name}_count"), &[], h.count());
    }
}

fn escape(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Every metric: the milter's counters, behavior monitoring's, and the
/// state of `rules` (in force) and of the monitor's tables.
pub fn render(m: &Metrics, rules: &Rules, monitor: &Monitor, reloads: &ReloadCounts) -> String {
    let mut o = Out(String::with_capacity(16 << 10));
    o.family(
        "mailward_build_info",
        "gauge",
        "The running version (always 1).",
    );
    o.sample(
        "mailward_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );

    // Sessions and messages.
    o.one(
        "mailward_sessions_total",
        "counter",
        "Milter sessions (MTA connections) opened.",
        get(&m.sessions),
    );
    o.one(
        "mailward_sessions_active",
        "gauge",
        "Milter sessions open now.",
        get(&m.active),
    );
    o.family(
        "mailward_messages_total",
        "counter",
        "Messages judged, by the verdict of their content.",
    );
    for (v, c) in VERDICTS.iter().zip(&m.verdicts) {
        o.sample(
            "mailward_messages_total",
            &[("verdict", v.as_str())],
            get(c),
        );
    }
    o.family(
        "mailward_message_actions_total",
        "counter",
        "Messages at their end, by what was done (act= of the log line).",
    );
    for (a, c) in ACTIONS.iter().zip(&m.actions) {
        o.sample("mailward_message_actions_total", &[("action", a)], get(c));
    }
    o.family(
        "mailward_messages_exempt_total",
        "counter",
        "Messages exempt from refusal for their content, by exemption.",
    );
    for (e, c) in EXEMPTIONS.iter().zip(&m.exempt) {
        o.sample(
            "mailward_messages_exempt_total",
            &[("exemption", e.as_str())],
            get(c),
        );
    }
    o.family(
        "mailward_messages_cut_total",
        "counter",
        "Messages judged on their first limits.message_bytes, by whether the rest of the body was received or skipped.",
    );
    for (rest, c) in ["received", "skipped"].iter().zip(&m.cut) {
        o.sample("mailward_messages_cut_total", &[("rest", rest)], get(c));
    }
    o.one(
        "mailward_message_errors_total",
        "counter",
        "Messages mailward failed to judge (internal errors; milter.on_error applied).",
        get(&m.errors),
    );

    // The library's findings.
    m.register(rules);
    o.family(
        "mailward_library_hits_total",
        "counter",
        "Library entries found in messages (each entry once per message), by category.",
    );
    for (cat, n) in m.category_hits() {
        o.sample("mailward_library_hits_total", &[("category", &cat)], n);
    }
    o.family(
        "mailward_top_entry_hits_total",
        "counter",
        "Messages each of the most found library entries was found in (metrics.top_entries of them; approximate, see docs/metrics.md).",
    );
    for (id, n) in m.top.top(rules.config.metrics.top_entries.0) {
        o.sample("mailward_top_entry_hits_total", &[("id", &id)], n);
    }

    // Behavior.
    let counters = monitor.counters();
    o.family(
        "mailward_findings_total",
        "counter",
        "Conformity findings, by code.",
    );
    for (code, n) in counters.findings() {
        o.sample("mailward_findings_total", &[("code", code.as_str())], n);
    }
    o.family(
        "mailward_limit_trips_total",
        "counter",
        "Limits found over their maximum, by limit (its place in behavior.limits and its settings).",
    );
    for (l, n) in counters.trips() {
        let (index, window, max) = (l.index.to_string(), l.window.to_string(), l.max.to_string());
        o.sample(
            "mailward_limit_trips_total",
            &[
                ("limit", &index),
                ("key", l.key.as_str()),
                ("metric", l.metric.as_str()),
                ("window", &window),
                ("max", &max),
                ("action", l.action.as_str()),
            ],
            n,
        );
    }
    o.family(
        "mailward_behavior_refusals_total",
        "counter",
        "Refusals by behavior monitoring, by cause and stage.",
    );
    for (by, row) in REFUSERS.iter().zip(&m.refusals) {
        for (stage, c) in STAGES.iter().zip(row) {
            o.sample(
                "mailward_behavior_refusals_total",
                &[("by", by), ("stage", stage.as_str())],
                get(c),
            );
        }
    }
    let stats = monitor.store().stats();
    o.family(
        "mailward_tracked_keys",
        "gauge",
        "Keys with counters now, by kind.",
    );
    for s in &stats {
        o.sample(
            "mailward_tracked_keys",
            &[("kind", s.kind.as_str())],
            s.keys,
        );
    }
    o.family(
        "mailward_tracked_keys_max",
        "gauge",
        "Keys a kind's table holds at most (behavior.tracking.max_keys).",
    );
    for s in &stats {
        o.sample(
            "mailward_tracked_keys_max",
            &[("kind", s.kind.as_str())],
            s.max_keys,
        );
    }
    o.family(
        "mailward_tracking_memory_bytes",
        "gauge",
        "Memory held by a kind's counters.",
    );
    for s in &stats {
        o.sample(
            "mailward_tracking_memory_bytes",
            &[("kind", s.kind.as_str())],
            s.bytes,
        );
    }
    o.family(
        "mailward_tracking_evictions_total",
        "counter",
        "Keys evicted from a full table to make room, by kind.",
    );
    for s in &stats {
        o.sample(
            "mailward_tracking_evictions_total",
            &[("kind", s.kind.as_str())],
            s.evictions,
        );
    }

    // Latency.
    o.histogram(
        "mailward_scan_seconds",
        "Decoding, scanning and judging one message (on the blocking pool).",
        &m.scan.snapshot(),
    );
    o.histogram(
        "mailward_eom_seconds",
        "The end-of-message callback, from the MTA's command to mailward's answer.",
        &m.eom.snapshot(),
    );

    // The rules in force and reloads.
    let s = rules.library.stats();
    o.one(
        "mailward_library_entries",
        "gauge",
        "Distinct entries of the library in force.",
        s.entries,
    );
    o.one(
        "mailward_library_categories",
        "gauge",
        "Categories of the library in force.",
        rules.library.categories().len(),
    );
    o.one(
        "mailward_library_memory_bytes",
        "gauge",
        "Memory held by the library in force.",
        s.memory_bytes,
    );
    o.one(
        "mailward_library_build_seconds",
        "gauge",
        "Time taken to load and build the library in force.",
        s.build_time.as_secs_f64(),
    );
    o.one(
        "mailward_rules_generation",
        "gauge",
        "The rules generation in force (1 at start, one more per successful reload).",
        rules.generation,
    );
    o.family(
        "mailward_reloads_total",
        "counter",
        "Reloads (SIGHUP), by outcome.",
    );
    o.sample("mailward_reloads_total", &[("outcome", "ok")], reloads.ok);
    o.sample(
        "mailward_reloads_total",
        &[("outcome", "failed")],
        reloads.failed,
    );
    o.one(
        "mailward_last_good_load_timestamp_seconds",
        "gauge",
        "When the rules in force were loaded (start or last successful reload), Unix time.",
        reloads
            .last_ok
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(m.started, |d| d.as_secs()),
    );

    // The process.
    o.one(
        "process_start_time_seconds",
        "gauge",
        "When the milter started, Unix time.",
        m.started,
    );
    if let Some(p) = process() {
        o.one(
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent.",
            p.cpu_secs,
        );
        o.one(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size.",
            p.rss_bytes,
        );
    }
    if let Some(n) = open_fds() {
        o.one("process_open_fds", "gauge", "Open file descriptors.", n);
    }
    o.0
}

struct Process {
    cpu_secs: f64,
    rss_bytes: u64,
}

/// Clock ticks per second in `/proc/self/stat` (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// CPU time and resident memory from `/proc` (Linux; `None` elsewhere).
fn process() -> Option<Process> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; `rest` starts at 3.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(Process {
        cpu_secs: ticks as f64 / USER_HZ,
        rss_bytes: kib * 1024,
    })
}

fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut o = Out(String::new());
        o.sample("m", &[("id", "a\"b\\c\nd"), ("k", "v")], 3);
        assert_eq!(o.0, "m{id=\"a\\\"b\\\\c\\nd\",k=\"v\"} 3\n");
    }

    #[test]
    fn process_figures_are_read_on_linux() {
        let p = process().expect("/proc");
        assert!(p.rss_bytes > 0);
        assert!(open_fds().unwrap() > 0);
    }
}
