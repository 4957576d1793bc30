//! A whole SMTP session's events, as the MTA reports them, through the
//! behavior records, the counters and the limits (the shipped milter.yaml's
//! settings, tables of a few keys so that evictions happen): nothing may
//! panic, and the session record is always valid JSON.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mailward::Config;
use mailward::behavior::finding::Stage;
use mailward::behavior::store::MemoryStore;
use mailward::behavior::{Policy, SessionState};

static POLICY: LazyLock<Policy> = LazyLock::new(|| {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../milter.yaml");
    let config = Config::load(&path).expect("the shipped milter.yaml loads");
    Policy::compile(&config.behavior)
});

fuzz_target!(|data: &[u8]| {
    let p = &*POLICY;
    let store = MemoryStore::new(&p.rules, [4, 4, 4], 0);
    let mut s = SessionState::default();
    let mut now = 1_000u64;
    // Events separated by 0xFF: an event byte, then its argument.
    for event in data.split(|&b| b == 0xFF) {
        let Some((&op, arg)) = event.split_first() else {
            continue;
        };
        let args: Vec<&[u8]> = arg.split(|&b| b == b' ').collect();
        let text = String::from_utf8_lossy(arg);
        now += u64::from(op >> 4) * 997;
        let stage = match op % 11 {
            0 => {
                let ip = Some(text.parse().unwrap_or([192, 0, 2, op].into()));
                s.connect(p, &store, now, ip, &text, Some("mx.example"), None);
                Stage::Connect
            }
            1 => {
                s.helo(p, arg);
                Stage::Helo
            }
            2 => {
                let login = (op & 0x80 != 0).then_some(&*text);
                s.mail(p, &store, &args, login);
                Stage::Mail
            }
            3 => {
                s.rcpt(p, &args);
                Stage::Rcpt
            }
            4 => {
                s.data(Some(&text));
                Stage::Data
            }
            5 => {
                let (name, value) = arg.split_at(arg.len() / 2);
                s.header(name, value);
                Stage::Headers
            }
            6 => {
                s.eoh(p);
                Stage::Headers
            }
            7 => {
                let _ = s.unknown(p, arg);
                Stage::Unknown
            }
            8 => {
                s.eom(op & 0x80 != 0, Some(&text));
                Stage::Eom
            }
            9 => {
                s.finish_message(
                    "deliver",
                    None,
                    Some("accept"),
                    Some(1.5),
                    &[text.to_string()],
                );
                Stage::Eom
            }
            _ => {
                s.end_message("aborted", Some("fuzz"));
                Stage::Data
            }
        };
        store.observe_now(now / 1000, s.batch(), &mut Vec::new());
        let _ = s.decide(p, stage, op & 0x40 != 0);
    }
    // The record is written by hand: whatever the client sent, it must be
    // one valid JSON object.
    let line = s.close(now).to_json();
    let v: serde_json::Value = serde_json::from_str(&line).expect("the record is JSON");
    assert!(v.is_object(), "{line}");
});
