//! Tests of message decoding. Every fixture is built here; encoded bytes
//! come from `encoding_rs` so they are exact.

use encoding_rs::{
    BIG5, EUC_KR, Encoding, GB18030, GBK, ISO_2022_JP, KOI8_R, SHIFT_JIS, UTF_8, WINDOWS_1252,
};
use proptest::prelude::*;

use super::*;

fn enc(e: &'static Encoding, s: &str) -> Vec<u8> {
    let (bytes, used, errors) = e.encode(s);
    assert_eq!(used, e, "encoder substituted");
    assert!(!errors, "unmappable text for {}", e.name());
    bytes.into_owned()
}

fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (n, chunk) in data.chunks(3).enumerate() {
        if n > 0 && n % 19 == 0 {
            out.push_str("\r\n");
        }
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let v = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(A[(v >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A message from header lines (joined with CRLF) and a body.
fn msg(headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    for h in headers {
        m.extend_from_slice(h.as_bytes());
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b"\r\n");
    m.extend_from_slice(body);
    m
}

fn dec(raw: &[u8]) -> Decoded {
    decode(raw, &DecodeOptions::default())
}

fn text(d: &Decoded, kind: PartKind) -> String {
    d.texts(kind).collect::<Vec<_>>().join("|")
}

fn has_note(d: &Decoded, kind: &str) -> bool {
    d.notes.iter().any(|n| n.kind() == kind)
}

/// A one-part message in `charset` with 8-bit body bytes.
fn eight_bit(charset: &str, body: &[u8]) -> Vec<u8> {
    let ct = format!("Content-Type: text/plain; charset={charset}");
    msg(&["Subject: t", "MIME-Version: 1.0", &ct], body)
}

#[test]
fn plain_ascii() {
    let d = dec(&msg(
        &["From: a@example.com", "Subject: Hello there"],
        b"Buy cheap pills now\r\n",
    ));
    assert_eq!(text(&d, PartKind::Subject), "Hello there");
    assert_eq!(text(&d, PartKind::Plain), "Buy cheap pills now\r\n");
    assert!(d.notes.is_empty(), "{:?}", d.notes);
    assert_eq!(
        d.text_bytes,
        "Hello there".len() + "Buy cheap pills now\r\n".len()
    );
    assert_eq!(d.parts[1].alt_group, None);
}

#[test]
fn lf_only_line_ends() {
    let d = dec(b"Subject: lf\nContent-Type: text/plain\n\nbody text\n");
    assert_eq!(text(&d, PartKind::Subject), "lf");
    assert_eq!(text(&d, PartKind::Plain), "body text\n");
}

#[test]
fn quoted_printable() {
    let d = dec(&msg(
        &[
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
        ],
        b"caf=C3=A9 soft=\r\nbreak =3D 100% =XY end=  \r\nline",
    ));
    assert_eq!(
        text(&d, PartKind::Plain),
        "café softbreak = 100% =XY endline"
    );
    assert!(d.notes.is_empty(), "{:?}", d.notes);
}

#[test]
fn base64_gb2312_body() {
    let s = "这是一封中文垃圾邮件，请勿回复。";
    let body = b64(&enc(GBK, s));
    let d = dec(&msg(
        &[
            "Subject: cn",
            "Content-Type: text/plain; charset=gb2312",
            "Content-Transfer-Encoding: base64",
        ],
        body.as_bytes(),
    ));
    assert_eq!(text(&d, PartKind::Plain), s);
    assert!(d.notes.is_empty(), "{:?}", d.notes);
}

#[test]
fn rfc2047_subjects() {
    let s = "发票代开";
    let gbk = enc(GBK, s);
    let b = format!("Subject: =?GBK?B?{}?=", b64(&gbk));
    assert_eq!(text(&dec(&msg(&[&b], b"x")), PartKind::Subject), s);

    // Q encoding, lowercase charset, a multi-byte character split between
    // two words, and literal text around them.
    let q: String = gbk.iter().map(|b| format!("={b:02X}")).collect();
    let (q1, q2) = q.split_at(9); // mid-character
    let h = format!("Subject: Re: =?gb2312?Q?{q1}?=\r\n =?gb2312?Q?{q2}?= now_free");
    let d = dec(&msg(&[&h], b"x"));
    assert_eq!(text(&d, PartKind::Subject), format!("Re: {s} now_free"));
    assert!(d.notes.is_empty(), "{:?}", d.notes);

    // UTF-8 Q with underscores, and space between encoded and plain words.
    let d = dec(&msg(
        &["Subject: =?utf-8?q?caf=C3=A9_au_lait?= and =?UTF-8*en?B?w6k=?="],
        b"",
    ));
    assert_eq!(text(&d, PartKind::Subject), "café au lait and é");
}

#[test]
fn raw_8bit_subject_uses_fallback() {
    let mut raw = b"Subject: ".to_vec();
    raw.extend(enc(GBK, "免费"));
    raw.extend_from_slice(b"\r\n\r\nbody");
    let d = dec(&raw);
    assert_eq!(text(&d, PartKind::Subject), "免费");
    assert!(d.notes.contains(&Note::CharsetFallback {
        declared: None,
        used: "gb18030"
    }));
}

#[test]
fn eight_bit_gbk_without_charset() {
    let s = "代开各地发票，联系电话";
    let d = dec(&msg(&["Subject: x"], &enc(GBK, s)));
    assert_eq!(text(&d, PartKind::Plain), s);
    assert_eq!(
        d.notes,
        vec![Note::CharsetFallback {
            declared: None,
            used: "gb18030"
        }]
    );

    // Valid UTF-8 without a charset needs no note.
    let d = dec(&msg(&["Subject: x"], s.as_bytes()));
    assert_eq!(text(&d, PartKind::Plain), s);
    assert!(d.notes.is_empty());

    // A configured fallback.
    let opts = DecodeOptions {
        fallback_charset: charset_by_name("windows-1252").unwrap(),
        ..DecodeOptions::default()
    };
    let d = decode(
        &msg(&["Subject: x"], &enc(WINDOWS_1252, "naïve café")),
        &opts,
    );
    assert_eq!(text(&d, PartKind::Plain), "naïve café");
}

#[test]
fn invalid_utf8_declared_utf8() {
    let mut bytes = b"hello \xff ".to_vec();
    bytes.extend_from_slice("wörld, ça va ".as_bytes());
    bytes.extend_from_slice(b"\xe4\xb8");
    let d = dec(&eight_bit("utf-8", &bytes));
    assert_eq!(
        text(&d, PartKind::Plain),
        "hello \u{FFFD} wörld, ça va \u{FFFD}"
    );
    assert_eq!(
        d.notes,
        vec![Note::MalformedText {
            charset: "UTF-8",
            replaced: 2
        }]
    );
    // Latin-1 mislabelled: GB18030 reads it no better, so UTF-8 stays.
    let d = dec(&eight_bit("utf-8", b"caf\xe9 au lait"));
    assert_eq!(text(&d, PartKind::Plain), "caf\u{FFFD} au lait");

    // Mostly invalid: really another charset, read with the fallback.
    let s = "我们公司有大量发票";
    let d = dec(&eight_bit("utf-8", &enc(GBK, s)));
    assert_eq!(text(&d, PartKind::Plain), s);
    assert!(has_note(&d, "charset-fallback"));
}

#[test]
fn legacy_charsets() {
    let cases: &[(&str, &'static Encoding, &str)] = &[
        ("big5", BIG5, "這是繁體中文的廣告"),
        ("ISO-2022-JP", ISO_2022_JP, "これは日本語のテキストです"),
        ("Shift_JIS", SHIFT_JIS, "これは日本語のテキストです"),
        ("koi8-r", KOI8_R, "Привет, это реклама"),
        ("GB18030", GB18030, "中文 𠀀 测试"),
        ("euc-kr", EUC_KR, "안녕하세요 광고입니다"),
        ("iso-8859-1", WINDOWS_1252, "Grüße aus Köln"),
        ("windows-1251", encoding_rs::WINDOWS_1251, "Привет мир"),
        ("iso-8859-2", encoding_rs::ISO_8859_2, "Zażółć gęślą jaźń"),
    ];
    for &(name, e, s) in cases {
        let d = dec(&eight_bit(name, &enc(e, s)));
        assert_eq!(text(&d, PartKind::Plain), s, "{name}");
        assert!(d.notes.is_empty(), "{name}: {:?}", d.notes);
        // The same through base64 and an encoded-word subject.
        let h = format!("Subject: =?{name}?B?{}?=", b64(&enc(e, s)));
        let ct = format!("Content-Type: text/plain; charset=\"{name}\"");
        let d = dec(&msg(
            &[&h, &ct, "Content-Transfer-Encoding: base64"],
            b64(&enc(e, s)).as_bytes(),
        ));
        assert_eq!(text(&d, PartKind::Subject), s, "{name}");
        assert_eq!(text(&d, PartKind::Plain), s, "{name}");
    }
}

#[test]
fn charset_names_as_found_in_mail() {
    let s = "优惠活动";
    for name in [
        "\"gb2312\"",
        "GB-2312",
        "x-gbk",
        "cp936",
        "GB_2312-80",
        "'GBK'",
        "gb2312;",
        "EUC-CN",
    ] {
        let d = dec(&eight_bit(name, &enc(GBK, s)));
        assert_eq!(text(&d, PartKind::Plain), s, "{name}");
        assert!(d.notes.is_empty(), "{name}: {:?}", d.notes);
    }
    let d = dec(&eight_bit("ks_c_5601-1987", &enc(EUC_KR, "광고")));
    assert_eq!(text(&d, PartKind::Plain), "광고");
    let d = dec(&eight_bit("utf8", "ça va".as_bytes()));
    assert_eq!(text(&d, PartKind::Plain), "ça va");
    let d = dec(&eight_bit("x-sjis", &enc(SHIFT_JIS, "日本")));
    assert_eq!(text(&d, PartKind::Plain), "日本");
    let d = dec(&eight_bit(
        "win-1251",
        &enc(encoding_rs::WINDOWS_1251, "мир"),
    ));
    assert_eq!(text(&d, PartKind::Plain), "мир");
    // UTF-7, as old Outlook sent it.
    let d = dec(&eight_bit(
        "unicode-1-1-utf-7",
        b"Hi Mom -+Jjo--! 1 +- 1 +ZeVnLIqe-",
    ));
    assert_eq!(text(&d, PartKind::Plain), "Hi Mom -\u{263A}-! 1 + 1 日本語");
    // HZ.
    let d = dec(&eight_bit("HZ-GB-2312", b"Hi ~{VPND~} ~~ end"));
    assert_eq!(text(&d, PartKind::Plain), "Hi 中文 ~ end");

    // Unknown names count as none.
    let d = dec(&eight_bit("x-no-such-charset", b"plain ascii"));
    assert_eq!(text(&d, PartKind::Plain), "plain ascii");
    assert_eq!(
        d.notes,
        vec![Note::UnknownCharset {
            name: "x-no-such-charset".into()
        }]
    );
    let d = dec(&eight_bit("bogus", &enc(GBK, s)));
    assert_eq!(text(&d, PartKind::Plain), s);
    assert!(d.notes.contains(&Note::CharsetFallback {
        declared: Some("bogus".into()),
        used: "gb18030"
    }));
    // Names that declare nothing, and Windows font charset names.
    let d = dec(&eight_bit("DEFAULT_CHARSET", b"plain ascii"));
    assert!(d.notes.is_empty(), "{:?}", d.notes);
    let d = dec(&eight_bit("GB2312_CHARSET", &enc(GBK, s)));
    assert_eq!(text(&d, PartKind::Plain), s);
    assert!(d.notes.is_empty(), "{:?}", d.notes);
    // US-ASCII over 8-bit bytes is no declaration.
    let d = dec(&eight_bit("us-ascii", &enc(GBK, s)));
    assert_eq!(text(&d, PartKind::Plain), s);

    assert_eq!(charset_by_name("GB-2312"), Some(GBK));
    assert_eq!(charset_by_name(" \"UTF8\" "), Some(UTF_8));
    assert_eq!(charset_by_name("cp950"), Some(BIG5));
    assert_eq!(charset_by_name("gb18030"), Some(GB18030));
    assert_eq!(charset_by_name("utf-7"), None);
    assert_eq!(charset_by_name("iso-2022-kr"), None);
    assert_eq!(charset_by_name("nonsense"), None);
}

#[test]
fn utf8_mislabelled_as_legacy() {
    let s = "这其实是UTF-8编码的文字";
    let d = dec(&eight_bit("gb2312", s.as_bytes()));
    assert_eq!(text(&d, PartKind::Plain), s);
    assert_eq!(
        d.notes,
        vec![Note::CharsetFallback {
            declared: Some("gb2312".into()),
            used: "UTF-8"
        }]
    );
    // Two GBK characters that happen to be valid UTF-8 stay GBK.
    let d = dec(&eight_bit("gbk", &enc(GBK, "中文")));
    assert_eq!(text(&d, PartKind::Plain), "中文");
}

const HTML: &str = r#"<!DOCTYPE html><html><head><title>Offer</title>
<style>.x { color: red } p { }</style>
<script type="text/javascript">var s = "<p>hidden script text</p>"; if (a < b) {}</script>
</head><body bgcolor=white>
<p>Fish &amp; chips &lt;today&gt; &quot;only&quot; &copy; 2024 &#169; &#x4E2D;&#25991; caf&eacute;&nbsp;now</p>
<div>Buy <b>v</b>i<i>a</i>gra<!-- a comment -->now</div>
<a href="https://Shop.Example.COM/path?x=1&amp;y=2">click</a>
<a href=http://unquoted.example.net/x>here</a>
<img src='//cdn.example.org/p.gif'><img SRC="cid:part1@local">
<a href="www.bare-www.example/">www</a><a href="/relative">rel</a>
<a href="http://user:pw@evil.example.info:8080/">trick</a>
<a href="mailto:sales@mail.example.biz?subject=hi">mail</a>
<a href="https://shop.example.com/again">dup</a>
<a href="javascript:void(0)">js</a>
<form action="https://form.example.net/post"></form>
Line<br>break 5 &lt; 6 &bogus; &amp &copy2024
</body></html>"#;

#[test]
fn html_only_message() {
    let d = dec(&msg(
        &["Subject: html", "Content-Type: text/html; charset=utf-8"],
        HTML.as_bytes(),
    ));
    let t = text(&d, PartKind::Html);
    assert!(
        t.contains("Fish & chips <today> \"only\" © 2024 © 中文 café\u{A0}now"),
        "{t}"
    );
    assert!(t.contains("Buy viagranow"), "{t}");
    assert!(t.contains("Line break 5 < 6 &bogus; & ©2024"), "{t}");
    assert!(t.contains("Offer"), "{t}");
    assert!(!t.contains("hidden script"), "{t}");
    assert!(!t.contains("color"), "{t}");
    assert!(!t.contains("comment"), "{t}");
    assert!(!t.contains('<') || t.contains("<today>"), "{t}");
    assert_eq!(
        text(&d, PartKind::LinkHosts),
        "shop.example.com\nunquoted.example.net\ncdn.example.org\nwww.bare-www.example\n\
         evil.example.info\nmail.example.biz\nform.example.net"
    );
    assert!(d.notes.is_empty(), "{:?}", d.notes);
}

#[test]
fn inline_tags_do_not_split_words() {
    let d = dec(&msg(
        &["Content-Type: text/html"],
        b"<p>one</p><p>two</p>v<b>i</b>a<span style=\"x\">g</span>ra<br/>three<td>four</td>",
    ));
    assert_eq!(text(&d, PartKind::Html), "one two viagra three four");
    // An unterminated comment ends at the next `>`.
    let d = dec(&msg(
        &["Content-Type: text/html"],
        b"<b><!--#rotate>Terrific offer</b>",
    ));
    assert_eq!(text(&d, PartKind::Html), "Terrific offer");
}

#[test]
fn image_alt_text() {
    let d = dec(&msg(
        &["Content-Type: text/html"],
        b"Look<img src=x.gif alt=\"Cheap &amp; fast\">here",
    ));
    assert_eq!(text(&d, PartKind::Html), "Look Cheap & fast here");
}

#[test]
fn html_attachment_sent_as_binary() {
    let body = format!(
        "--b\r\nContent-Type: text/plain\r\n\r\nsee file\r\n--b\r\n\
         Content-Type: application/octet-stream; name=\"Invoice.HTM\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        b64(b"<html><body>Verify your <a href='https://phish.example.net/'>account</a></body></html>")
    );
    let d = dec(&msg(
        &["Content-Type: multipart/mixed; boundary=b"],
        body.as_bytes(),
    ));
    assert_eq!(text(&d, PartKind::Other), "Verify your account");
    assert_eq!(text(&d, PartKind::FileNames), "Invoice.HTM");
    assert_eq!(text(&d, PartKind::LinkHosts), "phish.example.net");
    assert_eq!(d.parts.last().map(|p| p.kind), Some(PartKind::LinkHosts));
}

#[test]
fn html_hosts_obfuscated() {
    let d = dec(&msg(
        &["Content-Type: text/html"],
        b"<a href=\"http://&#101;xample.com/\">a</a>\
          <a href=\"  HTTP:\\\\Back.Example.org\\x\">b</a>\
          <a href=\"http://%77ww.pct.example/\">c</a>\
          <meta http-equiv=\"refresh\" content=\"0; URL='http://refresh.example.net/'\">\
          <a href=\"http://nodot/\">d</a>",
    ));
    assert_eq!(
        text(&d, PartKind::LinkHosts),
        "example.com\nback.example.org\nwww.pct.example\nrefresh.example.net"
    );
}

#[test]
fn html_meta_charset() {
    let s = "网上购物优惠";
    let mut body =
        b"<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=gb2312\">\
          </head><body>"
            .to_vec();
    body.extend(enc(GBK, s));
    body.extend_from_slice(b"</body></html>");
    let d = dec(&msg(&["Content-Type: text/html"], &body));
    assert_eq!(text(&d, PartKind::Html), s);
    assert!(d.notes.is_empty(), "{:?}", d.notes);
}

#[test]
fn attachment_file_names() {
    let body = "--b1\r\n\
        Content-Type: text/plain\r\n\r\nsee attached\r\n\
        --b1\r\n\
        Content-Type: application/pdf; name=\"report.pdf\"\r\n\
        Content-Disposition: attachment; filename=\"report.pdf\"\r\n\
        Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n\
        --b1\r\n\
        Content-Type: application/msword\r\n\
        Content-Disposition: attachment;\r\n filename*=utf-8''%E5%8F%91%E7%A5%A8.doc\r\n\r\nxx\r\n\
        --b1\r\n\
        Content-Type: application/zip\r\n\
        Content-Disposition: attachment; filename*0*=gbk''%C3%E2; filename*1*=%B7%D1;\r\n\
        \tfilename*2=\".zip\"\r\n\r\nxx\r\n\
        --b1\r\n\
        Content-Type: image/png; name=\"=?UTF-8?B?5Lit5paH?=.png\"\r\n\r\nxx\r\n\
        --b1--\r\n";
    let d = dec(&msg(
        &["Content-Type: multipart/mixed; boundary=\"b1\""],
        body.as_bytes(),
    ));
    assert_eq!(text(&d, PartKind::Plain), "see attached");
    assert_eq!(
        text(&d, PartKind::FileNames),
        "report.pdf\n发票.doc\n免费.zip\n中文.png"
    );
    assert!(d.notes.is_empty(), "{:?}", d.notes);
}

#[test]
fn alternative_parts_share_a_group() {
    let body = "preamble\r\n--outer\r\n\
        Content-Type: multipart/alternative; boundary=inner\r\n\r\n\
        --inner\r\nContent-Type: text/plain\r\n\r\nCheap watches\r\n\
        --inner\r\nContent-Type: text/html\r\n\r\n<p>Cheap <b>watches</b></p>\r\n\
        --inner--\r\n\
        --outer\r\nContent-Type: text/plain\r\n\r\nfooter text\r\n\
        --outer\r\nContent-Type: multipart/alternative; boundary=\"second\"\r\n\r\n\
        --second\r\nContent-Type: text/plain\r\n\r\nagain\r\n\
        --second--\r\n\
        --outer--\r\nepilogue\r\n";
    let d = dec(&msg(
        &["Content-Type: multipart/mixed; boundary=outer"],
        body.as_bytes(),
    ));
    let parts: Vec<_> = d
        .parts
        .iter()
        .map(|p| (p.kind, p.text.as_str(), p.alt_group))
        .collect();
    assert_eq!(
        parts,
        vec![
            (PartKind::Plain, "Cheap watches", Some(0)),
            (PartKind::Html, "Cheap watches", Some(0)),
            (PartKind::Plain, "footer text", None),
            (PartKind::Plain, "again", Some(1)),
        ]
    );
    assert!(d.notes.is_empty(), "{:?}", d.notes);
}

#[test]
fn nested_messages() {
    let inner = msg(
        &[
            "Subject: =?utf-8?B?5YaF6YOo?=",
            "Content-Type: text/plain; charset=utf-8",
        ],
        "inner body 内部".as_bytes(),
    );
    let mut body = b"--m\r\nContent-Type: text/plain\r\n\r\nouter text\r\n--m\r\n\
        Content-Type: message/rfc822\r\n\r\n"
        .to_vec();
    body.extend_from_slice(&inner);
    body.extend_from_slice(
        b"\r\n--m\r\nContent-Type: message/rfc822\r\n\
        Content-Transfer-Encoding: base64\r\n\r\n",
    );
    body.extend_from_slice(b64(&inner).as_bytes());
    body.extend_from_slice(b"\r\n--m--\r\n");
    let d = dec(&msg(
        &[
            "Subject: outer",
            "Content-Type: multipart/mixed; boundary=m",
        ],
        &body,
    ));
    assert_eq!(text(&d, PartKind::Subject), "outer|内部|内部");
    assert_eq!(
        text(&d, PartKind::Plain),
        "outer text|inner body 内部|inner body 内部"
    );
    assert!(d.notes.is_empty(), "{:?}", d.notes);
}

#[test]
fn missing_boundary_lines() {
    let d = dec(&msg(
        &["Content-Type: multipart/mixed; boundary=\"never-used\""],
        b"This body has no boundary lines at all.\r\n",
    ));
    assert_eq!(
        text(&d, PartKind::Plain),
        "This body has no boundary lines at all.\r\n"
    );
    assert_eq!(
        d.notes,
        vec![Note::MissingBoundary {
            boundary: Some("never-used".into())
        }]
    );
    let d = dec(&msg(
        &["Content-Type: multipart/alternative"],
        b"text anyway",
    ));
    assert_eq!(text(&d, PartKind::Plain), "text anyway");
    assert_eq!(d.notes, vec![Note::MissingBoundary { boundary: None }]);

    // No close delimiter: the last part runs to the end.
    let d = dec(&msg(
        &["Content-Type: multipart/mixed; boundary=b"],
        b"--b\r\n\r\nfirst\r\n--b\r\n\r\nlast, unclosed",
    ));
    assert_eq!(text(&d, PartKind::Plain), "first|last, unclosed");
}

#[test]
fn broken_base64() {
    let d = dec(&msg(
        &["Content-Transfer-Encoding: base64"],
        b"SGVsbG8g*d29y\r\nbGQ!",
    ));
    assert_eq!(text(&d, PartKind::Plain), "Hello world");
    assert_eq!(
        d.notes,
        vec![Note::BrokenBase64 {
            bad_bytes: 2,
            read_as_text: false
        }]
    );
    // Truncated in the middle of a quantum, then concatenated encodings.
    let d = dec(&msg(
        &["Content-Transfer-Encoding: base64"],
        b"SGk=SGk=SGVsbG8",
    ));
    assert_eq!(text(&d, PartKind::Plain), "HiHiHello");
    // A footer appended after the data is read as text, not decoded.
    let mut body = b64("Данные письма".as_bytes()).into_bytes();
    body.extend_from_slice(
        b"\r\n--DeathToSpam--\r\n\r\n-----------------\r\nSponsored by: Example\r\n\
          Sightings-list@lists.example.net\r\n",
    );
    let d = dec(&msg(
        &[
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: base64",
        ],
        &body,
    ));
    assert_eq!(
        text(&d, PartKind::Plain),
        "Данные письма\n--DeathToSpam--\n-----------------\nSponsored by: Example\n\
         Sightings-list@lists.example.net\n"
    );
    assert!(matches!(
        d.notes[..],
        [Note::BrokenBase64 {
            read_as_text: false,
            ..
        }]
    ));
    // Plain text labelled base64.
    let d = dec(&msg(
        &["Content-Transfer-Encoding: base64"],
        b"This is not base64, it is plain text.",
    ));
    assert_eq!(
        text(&d, PartKind::Plain),
        "This is not base64, it is plain text."
    );
    assert!(matches!(
        d.notes[..],
        [Note::BrokenBase64 {
            read_as_text: true,
            ..
        }]
    ));
}

#[test]
fn unknown_transfer_encoding() {
    let d = dec(&msg(&["Content-Transfer-Encoding: x-weird"], b"as is"));
    assert_eq!(text(&d, PartKind::Plain), "as is");
    assert_eq!(
        d.notes,
        vec![Note::UnknownTransferEncoding {
            name: "x-weird".into()
        }]
    );
    let d = dec(&msg(&["Content-Transfer-Encoding: \"Base64\""], b"b2s="));
    assert_eq!(text(&d, PartKind::Plain), "ok");
}

#[test]
fn text_budget() {
    let opts = DecodeOptions {
        max_text_bytes: 30,
        ..DecodeOptions::default()
    };
    let body = "--b\r\nContent-Type: text/html\r\n\r\n<a href=http://h.example/>\
        一二三四五六七八九十</a>\r\n--b\r\nContent-Type: text/plain\r\n\r\nsecond part\r\n\
        --b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\n\
        attached text\r\n--b--\r\n";
    let raw = msg(
        &[
            "Subject: 0123456789",
            "Content-Type: multipart/mixed; boundary=b",
        ],
        body.as_bytes(),
    );
    let d = decode(&raw, &opts);
    assert_eq!(text(&d, PartKind::Subject), "0123456789");
    // 20 bytes left: six 3-byte characters fit.
    assert_eq!(text(&d, PartKind::Html), "一二三四五六");
    assert_eq!(d.text_bytes, 28);
    assert!(d.text_bytes <= opts.max_text_bytes);
    assert_eq!(
        d.notes,
        vec![
            Note::Truncated {
                kind: PartKind::Html,
                kept: 18,
                total: 30
            },
            Note::Skipped {
                kind: PartKind::Plain,
                parts: 1,
                bytes: 11
            },
            Note::Skipped {
                kind: PartKind::LinkHosts,
                parts: 1,
                bytes: 9
            },
            Note::Skipped {
                kind: PartKind::FileNames,
                parts: 1,
                bytes: 5
            },
            Note::Skipped {
                kind: PartKind::Other,
                parts: 1,
                bytes: 13
            },
        ]
    );

    // With room, other parts come after hosts and names.
    let d = dec(&raw);
    let kinds: Vec<_> = d.parts.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            PartKind::Subject,
            PartKind::Html,
            PartKind::Plain,
            PartKind::LinkHosts,
            PartKind::FileNames,
            PartKind::Other
        ]
    );
}

#[test]
fn part_count_cap() {
    let mut body = String::new();
    for k in 0..50 {
        body.push_str(&format!("--b\r\n\r\npart {k}\r\n"));
    }
    body.push_str("--b--\r\n");
    let raw = msg(
        &["Content-Type: multipart/mixed; boundary=b"],
        body.as_bytes(),
    );
    let opts = DecodeOptions {
        max_parts: 10,
        ..DecodeOptions::default()
    };
    let d = decode(&raw, &opts);
    // The container counts as one.
    assert_eq!(d.parts.len(), 9);
    assert_eq!(d.notes, vec![Note::TooManyParts { max: 10 }]);
    assert_eq!(dec(&raw).parts.len(), 50);
}

/// `levels` multiparts nested in each other, text at the bottom.
fn nested_multiparts(levels: usize) -> Vec<u8> {
    let mut m = Vec::new();
    for k in 0..levels {
        m.extend(
            format!("Content-Type: multipart/mixed; boundary=\"l{k}\"\r\n\r\n--l{k}\r\n").bytes(),
        );
    }
    m.extend_from_slice(b"Content-Type: text/plain\r\n\r\ndeep text\r\n");
    for k in (0..levels).rev() {
        m.extend(format!("--l{k}--\r\n").bytes());
    }
    m
}

#[test]
fn depth_cap() {
    let d = dec(&nested_multiparts(10));
    assert_eq!(text(&d, PartKind::Plain), "deep text");
    assert!(d.notes.is_empty(), "{:?}", d.notes);

    let opts = DecodeOptions {
        max_depth: 5,
        ..DecodeOptions::default()
    };
    let d = decode(&nested_multiparts(10), &opts);
    assert_eq!(text(&d, PartKind::Plain), "");
    assert_eq!(d.notes, vec![Note::TooDeep { max: 5 }]);

    // Absurd nesting, and a depth option beyond the hard limit.
    let opts = DecodeOptions {
        max_depth: usize::MAX,
        max_parts: usize::MAX,
        ..DecodeOptions::default()
    };
    let d = decode(&nested_multiparts(2000), &opts);
    assert_eq!(
        d.notes,
        vec![Note::TooDeep {
            max: MAX_DEPTH_LIMIT
        }]
    );

    // Nested messages count too, base64-encoded ones included.
    let mut m = msg(&["Subject: bottom"], b"bottom text");
    for _ in 0..20 {
        m = msg(
            &[
                "Content-Type: message/rfc822",
                "Content-Transfer-Encoding: base64",
            ],
            b64(&m).as_bytes(),
        );
    }
    let d = dec(&m);
    assert_eq!(d.notes, vec![Note::TooDeep { max: 16 }]);
}

#[test]
fn header_only_and_empty() {
    let d = dec(b"Subject: only headers\r\nFrom: x@example.com\r\n");
    assert_eq!(text(&d, PartKind::Subject), "only headers");
    assert_eq!(d.parts.len(), 1);
    assert!(d.notes.is_empty());
    let d = dec(b"");
    assert!(d.parts.is_empty() && d.notes.is_empty());
    let d = dec(b"Subject: x\r\n\r\n");
    assert_eq!(d.parts.len(), 1);
}

#[test]
fn no_headers() {
    let d = dec(b"Just some words\r\nwith no header block\r\n");
    assert_eq!(
        text(&d, PartKind::Plain),
        "Just some words\r\nwith no header block\r\n"
    );
    assert_eq!(d.notes, vec![Note::NoHeaders]);
}

#[test]
fn nul_bytes() {
    let d = dec(&msg(&["Subject: a\0b"], b"vi\0agra \0\0now"));
    assert_eq!(text(&d, PartKind::Subject), "ab");
    assert_eq!(text(&d, PartKind::Plain), "viagra now");
    assert_eq!(d.notes, vec![Note::NulBytes { removed: 4 }]);
}

#[test]
fn mbox_from_line_is_skipped() {
    let d = dec(b"From someone Thu Aug 22 13:17:22 2002\nSubject: mbox\n\nbody\n");
    assert_eq!(text(&d, PartKind::Subject), "mbox");
    assert_eq!(text(&d, PartKind::Plain), "body\n");
}

#[test]
fn many_encoded_word_starts_stay_linear() {
    let mut raw = b"Subject: ".to_vec();
    for _ in 0..100_000 {
        raw.extend_from_slice(b"=?a?B?");
    }
    raw.extend_from_slice(b"\r\n\r\nx");
    let start = std::time::Instant::now();
    let d = dec(&raw);
    assert!(start.elapsed().as_secs() < 5);
    assert_eq!(d.texts(PartKind::Subject).count(), 1);
}

#[test]
fn many_unterminated_comments_stay_linear() {
    let body = "<!--x>".repeat(100_000);
    let start = std::time::Instant::now();
    let d = dec(&msg(&["Content-Type: text/html"], body.as_bytes()));
    assert!(start.elapsed().as_secs() < 5);
    assert!(d.parts.is_empty());
}

#[test]
fn notes_display() {
    let n = Note::CharsetFallback {
        declared: None,
        used: "gb18030",
    };
    assert_eq!(n.to_string(), "no charset, read as gb18030");
    assert_eq!(n.kind(), "charset-fallback");
}

/// A realistic spam message to mutate.
fn template() -> Vec<u8> {
    let gbk = enc(GBK, "代开发票，优惠多多");
    let mut body = format!(
        "This is a multi-part message in MIME format.\r\n--=_outer\r\n\
        Content-Type: multipart/alternative; boundary=\"=_alt\"\r\n\r\n\
        --=_alt\r\nContent-Type: text/plain; charset=gb2312\r\n\
        Content-Transfer-Encoding: base64\r\n\r\n{}\r\n\
        --=_alt\r\nContent-Type: text/html; charset=\"utf-8\"\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\r\n\
        <html><body><p>Caf=C3=A9 <a href=3D\"http://spam.example.com/\">v<b>i</b>agra</a> =\r\n\
        &amp; more</p><script>x</script></body></html>\r\n--=_alt--\r\n\
        --=_outer\r\nContent-Type: message/rfc822\r\n\r\n\
        Subject: =?GBK?B?{}?=\r\n\r\nforwarded\r\n\
        --=_outer\r\nContent-Type: application/octet-stream; name*=utf-8''a%20b.exe\r\n\
        Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--=_outer--\r\n",
        b64(&gbk),
        b64(&gbk)
    )
    .into_bytes();
    let mut m = b"From: spammer@example.com\r\nSubject: =?gb2312?B?".to_vec();
    m.extend(b64(&gbk).bytes());
    m.extend_from_slice(b"?=\r\nMIME-Version: 1.0\r\n");
    m.extend_from_slice(b"Content-Type: multipart/mixed;\r\n\tboundary=\"=_outer\"\r\n\r\n");
    m.append(&mut body);
    m
}

#[test]
fn template_decodes_fully() {
    let d = dec(&template());
    assert_eq!(
        text(&d, PartKind::Subject),
        "代开发票，优惠多多|代开发票，优惠多多"
    );
    assert_eq!(text(&d, PartKind::Plain), "代开发票，优惠多多|forwarded");
    assert_eq!(text(&d, PartKind::Html), "Café viagra & more");
    assert_eq!(text(&d, PartKind::LinkHosts), "spam.example.com");
    assert_eq!(text(&d, PartKind::FileNames), "a b.exe");
    assert!(d.notes.is_empty(), "{:?}", d.notes);
}

fn check_invariants(d: &Decoded, opts: &DecodeOptions) {
    assert!(d.text_bytes <= opts.max_text_bytes);
    assert_eq!(
        d.text_bytes,
        d.parts.iter().map(|p| p.text.len()).sum::<usize>()
    );
    for p in &d.parts {
        assert!(!p.text.is_empty());
        assert!(!p.text.contains('\0'));
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let snippets = prop::sample::select(vec![
        b"\r\n".to_vec(),
        b"\r\n\r\n".to_vec(),
        b"--=_alt".to_vec(),
        b"--=_outer--".to_vec(),
        b"=?".to_vec(),
        b"?=".to_vec(),
        b"<".to_vec(),
        b"&#x".to_vec(),
        b"\0".to_vec(),
        b"\xff\xfe".to_vec(),
        b"Content-Type: message/rfc822\r\n\r\n".to_vec(),
        b"Content-Type: multipart/mixed; boundary=x\r\n".to_vec(),
        b"charset*0*=".to_vec(),
        b"\"".to_vec(),
        b"=".to_vec(),
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Replace(p, b)),
        (any::<usize>(), snippets).prop_map(|(p, s)| Edit::Insert(p, s)),
        (any::<usize>(), 1usize..64).prop_map(|(p, n)| Edit::Delete(p, n)),
    ]
}

proptest! {
    #[test]
    fn random_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..2048)) {
        let opts = DecodeOptions::default();
        check_invariants(&decode(&raw, &opts), &opts);
    }

    #[test]
    fn mutated_messages_never_panic(
        edits in prop::collection::vec(edit(), 1..12),
        budget in 0usize..400,
    ) {
        let mut raw = template();
        for e in edits {
            let len = raw.len().max(1);
            match e {
                Edit::Replace(p, b) => {
                    if !raw.is_empty() {
                        raw[p % len] = b;
                    }
                }
                Edit::Insert(p, s) => {
                    let at = p % (raw.len() + 1);
                    raw.splice(at..at, s);
                }
                Edit::Delete(p, n) => {
                    let at = p % len;
                    let end = (at + n).min(raw.len());
                    if at < end {
                        raw.drain(at..end);
                    }
                }
            }
        }
        for opts in [
            DecodeOptions::default(),
            DecodeOptions { max_text_bytes: budget, max_parts: 4, max_depth: 2, ..DecodeOptions::default() },
        ] {
            check_invariants(&decode(&raw, &opts), &opts);
        }
    }
}
