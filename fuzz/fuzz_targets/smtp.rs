//! SMTP arguments and header fields through the conformity checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailward::behavior::address::{PathKind, check_path};
use mailward::behavior::conformity::{
    HeaderCheck, HeloContext, check_helo, check_mail, check_rcpt,
};
use mailward::behavior::params::check_params;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let args: Vec<&[u8]> = rest.split(|&b| b == b' ').collect();
    let mut out = Vec::new();
    match mode % 5 {
        0 => {
            let own = ["mx.example.org".to_string()];
            let cx = HeloContext {
                client: "192.0.2.7".parse().ok(),
                own_names: &own,
                own_addr: "192.0.2.1".parse().ok(),
                previous: args.get(1).copied(),
            };
            check_helo(rest, &cx, &mut out);
        }
        1 => {
            check_mail(&args, &mut out);
        }
        2 => check_rcpt(&args, mode & 0x80 != 0, &mut out),
        3 => {
            let kind = if mode & 0x80 != 0 {
                PathKind::Mail
            } else {
                PathKind::Rcpt
            };
            let _ = check_path(rest, kind);
            let _ = check_params(args.iter().copied(), kind);
        }
        _ => {
            let mut h = HeaderCheck::default();
            for field in rest.split(|&b| b == 0) {
                let (name, value) = match field.iter().position(|&b| b == b':') {
                    Some(i) => (&field[..i], &field[i + 1..]),
                    None => (field, &b""[..]),
                };
                h.add(name, value);
            }
            h.finish(mode & 0x80 != 0, &mut out);
        }
    }
});
