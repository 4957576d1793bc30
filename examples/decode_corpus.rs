//! Decodes every file of a mail corpus and prints totals: parts and notes by
//! kind, throughput, and messages where a general mail parser finds text
//! that `message::decode` does not.
//!
//! Usage: `decode_corpus [DIR]`; without DIR, `$MAILWARD_CORPUS/spamassassin`.
//! Set `SHOW_NOTES=1` to print each message's notes. `decode_corpus
//! --synthetic` times large built messages instead (10 MiB inputs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mailward::message::{DecodeOptions, decode};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else if p.file_name().is_some_and(|n| n != "README.md") {
            out.push(p);
        }
    }
}

/// Times `decode` on large built messages, worst cases included.
fn synthetic() {
    const SIZE: usize = 10 << 20;
    let opts = DecodeOptions::default();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let html = "<p>Cheap <b>offer</b> &amp; more <a href=\"http://h.example.com/x\">here</a></p>\n";
    let mut m = b"Subject: big html\r\nContent-Type: text/html; charset=utf-8\r\n\r\n".to_vec();
    while m.len() < SIZE {
        m.extend_from_slice(html.as_bytes());
    }
    cases.push(("html", m));
    let line = "这是一行中文垃圾邮件内容，用于测试解码速度。\r\n";
    let (gbk, _, _) = encoding_rs::GBK.encode(line);
    let mut m = b"Subject: big gbk\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    while m.len() < SIZE {
        m.extend_from_slice(&gbk);
    }
    cases.push(("8-bit GBK, no charset", m));
    let mut m = b"Subject: b64\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    while m.len() < SIZE {
        m.extend_from_slice(
            b"VGhpcyBpcyBhIGxpbmUgb2YgdGV4dCBpbiBiYXNlNjQgZm9yIHRoZSB0ZXN0Lg==\r\n",
        );
    }
    cases.push(("base64", m));
    let mut m = b"Content-Type: text/html\r\n\r\n".to_vec();
    while m.len() < SIZE {
        m.extend_from_slice(b"<!--x><a href=x>&#x4E2D;&bogus");
    }
    cases.push(("hostile html", m));
    let mut m = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
    while m.len() < SIZE {
        m.extend_from_slice(b"--b\r\n\r\nx\r\n");
    }
    cases.push(("many parts", m));
    for (name, raw) in &cases {
        let t = Instant::now();
        let d = decode(raw, &opts);
        let e = t.elapsed();
        println!(
            "{name}: {:.1} MB in {:.1} ms ({:.0} MB/s), {} parts, {} text bytes, notes {:?}",
            raw.len() as f64 / 1e6,
            e.as_secs_f64() * 1e3,
            raw.len() as f64 / 1e6 / e.as_secs_f64(),
            d.parts.len(),
            d.text_bytes,
            d.notes.iter().map(|n| n.kind()).collect::<Vec<_>>()
        );
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--synthetic") {
        synthetic();
        return;
    }
    let dir = match std::env::args().nth(1) {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("MAILWARD_CORPUS") {
            Some(c) => Path::new(&c).join("spamassassin"),
            None => {
                eprintln!("usage: decode_corpus DIR (or set MAILWARD_CORPUS)");
                std::process::exit(2);
            }
        },
    };
    let show = std::env::var_os("SHOW_NOTES").is_some();
    let mut paths = Vec::new();
    files(&dir, &mut paths);
    let opts = DecodeOptions::default();
    let mut raw_bytes = 0usize;
    let mut text_bytes = 0usize;
    let mut parts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut notes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut with_notes = 0usize;
    let mut ours = Duration::ZERO;
    let mut theirs = Duration::ZERO;
    let mut missed = Vec::new();
    let parser = mail_parser::MessageParser::default();
    for p in &paths {
        let Ok(raw) = std::fs::read(p) else {
            continue;
        };
        raw_bytes += raw.len();
        let t = Instant::now();
        let d = decode(&raw, &opts);
        ours += t.elapsed();
        text_bytes += d.text_bytes;
        for part in &d.parts {
            *parts.entry(part.kind.name()).or_default() += 1;
        }
        if !d.notes.is_empty() {
            with_notes += 1;
        }
        for n in &d.notes {
            *notes.entry(n.kind()).or_default() += 1;
        }
        if show && !d.notes.is_empty() {
            let list: Vec<String> = d.notes.iter().map(ToString::to_string).collect();
            println!("{}: {}", p.display(), list.join("; "));
        }

        let t = Instant::now();
        let their_text: usize = parser.parse(&raw).map_or(0, |m| {
            let plain: usize = (0..m.text_body.len())
                .filter_map(|i| m.body_text(i))
                .map(|s| s.trim().len())
                .sum();
            let html: usize = (0..m.html_body.len())
                .filter_map(|i| m.body_html(i))
                .map(|s| s.trim().len())
                .sum();
            plain + html
        });
        theirs += t.elapsed();
        let our_body: usize = d
            .parts
            .iter()
            .filter(|p| matches!(p.kind.name(), "plain" | "html" | "other"))
            .map(|p| p.text.trim().len())
            .sum();
        let our_hosts = d.texts(mailward::message::PartKind::LinkHosts).count();
        if their_text > 0 && our_body == 0 && our_hosts == 0 {
            missed.push(p.display().to_string());
        }
    }
    let mb = raw_bytes as f64 / 1e6;
    println!(
        "{} files, {:.1} MB raw, {:.1} MB text",
        paths.len(),
        mb,
        text_bytes as f64 / 1e6
    );
    println!(
        "decode: {:.3} s, {:.0} MB/s, {:.1} µs/message",
        ours.as_secs_f64(),
        mb / ours.as_secs_f64(),
        ours.as_secs_f64() * 1e6 / paths.len().max(1) as f64
    );
    println!(
        "mail-parser parse + body text: {:.3} s, {:.1} µs/message",
        theirs.as_secs_f64(),
        theirs.as_secs_f64() * 1e6 / paths.len().max(1) as f64
    );
    println!("parts by kind: {parts:?}");
    println!("messages with notes: {with_notes}");
    println!("notes by kind: {notes:?}");
    println!(
        "messages where mail-parser finds body text and decode neither text nor hosts: {}",
        missed.len()
    );
    for m in missed.iter().take(20) {
        println!("  {m}");
    }
}
