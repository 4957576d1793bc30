//! A raw SMTP client for end-to-end tests that need to send what swaks
//! will not (unknown commands, odd arguments) and read each reply.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// MAIL commands the end-to-end tests send in turn: a missing bracket, a
/// source route, a quoted local part, an address literal, two malformed
/// addresses, an unknown and a malformed parameter, a non-ASCII address
/// without SMTPUTF8, and a plain one with `BODY=8BITMIME`.
pub const MAIL_FROMS: [&str; 10] = [
    "MAIL FROM:sender@client.test",
    "MAIL FROM:<@relay.test:sender@client.test>",
    "MAIL FROM:<\"john doe\"@client.test>",
    "MAIL FROM:<sender@[192.0.2.1]>",
    "MAIL FROM:<a..b@client.test>",
    "MAIL FROM:<sender@client..test>",
    "MAIL FROM:<sender@client.test> FOO=bar",
    "MAIL FROM:<sender@client.test> SIZE=abc",
    "MAIL FROM:<jos\u{e9}@client.test>",
    "MAIL FROM:<sender@client.test> BODY=8BITMIME",
];

pub struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    /// Connects to `addr` and reads the greeting, which must be a 220.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Smtp {
        let stream = TcpStream::connect(addr).expect("connect to the MTA");
        stream.set_read_timeout(Some(timeout)).expect("timeout");
        let writer = stream.try_clone().expect("clone");
        let mut s = Smtp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = s.reply();
        assert!(greeting.starts_with("220"), "{greeting}");
        s
    }

    /// The next reply (all its lines); empty when the server closed.
    pub fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return all,
                Ok(_) => {}
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    /// Sends one command line and reads its reply; empty when the server
    /// closed (the write failed or nothing came back).
    pub fn send(&mut self, line: &str) -> String {
        if self
            .writer
            .write_all(format!("{line}\r\n").as_bytes())
            .is_err()
        {
            return String::new();
        }
        self.reply()
    }

    /// Sends one message from `sender@client.test` to `to` and returns the
    /// reply to its end of data (or the first refusal before it).
    pub fn message(&mut self, to: &str, headers: &[&str], body: &str) -> String {
        let r = self.send("MAIL FROM:<sender@client.test>");
        if !r.starts_with("250") {
            return r;
        }
        let r = self.send(&format!("RCPT TO:<{to}>"));
        if !r.starts_with("250") {
            return r;
        }
        let r = self.send("DATA");
        if !r.starts_with("354") {
            return r;
        }
        let mut data = String::from("From: sender@client.test\r\n");
        data.push_str(&format!("To: {to}\r\n"));
        data.push_str("Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n");
        data.push_str("Message-ID: <e2e@client.test>\r\n");
        for h in headers {
            data.push_str(h);
            data.push_str("\r\n");
        }
        data.push_str("\r\n");
        data.push_str(&body.replace('\n', "\r\n"));
        data.push_str("\r\n.");
        self.send(&data)
    }
}
