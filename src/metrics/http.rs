//! The metrics listener: `GET /metrics` and the admin API, served by
//! hyper's HTTP/1 server on the milter's tokio runtime.
//!
//! Routes (all others answer 404):
//!
//! * `GET /metrics` — the Prometheus text ([`super::render`]).
//! * `GET /admin/key/{ip|login|sender}/{value}` — one key's counters: each
//!   limit of its kind with its count over the window and whether it is
//!   over its maximum (JSON).
//! * `DELETE /admin/key/{ip|login|sender}/{value}` — forgets the key's
//!   counters (an administrator unblocking a customer).
//!
//! The admin routes exist only with `admin.enabled`; with
//! `admin.token_file` they need `Authorization: Bearer <token>`. The
//! value is percent-decoded and canonicalized as the milter does (an
//! address to its counted network, a sender lower-cased without angle
//! brackets).
//!
//! # Bounds
//!
//! At most `metrics.max_connections` connections are served at once
//! (further ones wait in the listen queue); a request's head is at most
//! [`MAX_HEAD`] bytes and must arrive within [`HEAD_TIMEOUT`]; a
//! connection lives at most [`CONNECTION_TIME`]. Request bodies are never
//! read (no route takes one). Malformed requests are answered by hyper
//! (400, 431) and close the connection.

use std::convert::Infallible;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use percent_encoding::percent_decode_str;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Metrics;
use super::render::{CONTENT_TYPE, render};
use crate::behavior::limits::KeyKind;
use crate::behavior::session::canonical_sender;
use crate::behavior::{Monitor, Policy};
use crate::state::Shared;

/// Largest request head (request line and headers) read.
pub const MAX_HEAD: usize = 16 << 10;
/// Time for a request head to arrive.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest life of one connection (keep-alive included).
pub const CONNECTION_TIME: Duration = Duration::from_secs(60);
/// Longest key value in an admin path, in bytes.
const MAX_VALUE: usize = 1024;
/// Largest token file read.
const MAX_TOKEN_FILE: u64 = 4096;

/// What the routes read.
pub struct Http {
    pub shared: Arc<Shared>,
    pub monitor: Arc<Monitor>,
    pub metrics: Arc<Metrics>,
}

/// Serves `listener` until the task is dropped or aborted (which ends the
/// connections in progress too).
pub async fn serve(listener: TcpListener, http: Arc<Http>, max_connections: usize) {
    let permits = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors, usually: wait rather than spin.
                log::warn!("metrics listener: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let http = http.clone();
        conns.spawn(async move {
            let service = service_fn(move |req| {
                let http = http.clone();
                async move { Ok::<_, Infallible>(route(&http, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service);
            if let Ok(Err(e)) = tokio::time::timeout(CONNECTION_TIME, conn).await {
                log::debug!("metrics connection: {e}");
            }
            drop(permit);
        });
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json_reply(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut body = value.to_string();
    body.push('\n');
    respond(status, "application/json", body)
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json_reply(status, json!({ "error": message }))
}

fn not_found() -> Response<Full<Bytes>> {
    respond(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "not found\n".into(),
    )
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut r = respond(
        StatusCode::METHOD_NOT_ALLOWED,
        "text/plain; charset=utf-8",
        format!("allowed: {allow}\n"),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

async fn route(http: &Http, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    // Only the head is used; the body is never read.
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let auth = req.headers().get(header::AUTHORIZATION).cloned();
    drop(req);
    if path == "/metrics" {
        if method != Method::GET && method != Method::HEAD {
            return method_not_allowed("GET, HEAD");
        }
        let rules = http.shared.current();
        let reloads = http.shared.reloads().snapshot();
        let text = render(&http.metrics, &rules, &http.monitor, &reloads);
        return respond(StatusCode::OK, CONTENT_TYPE, text);
    }
    if let Some(rest) = path.strip_prefix("/admin/") {
        return admin(http, &method, rest, auth.as_ref()).await;
    }
    not_found()
}

/// The bearer token in `file`, trimmed.
async fn read_token(file: &Path) -> Result<String, String> {
    let meta = tokio::fs::metadata(file).await.map_err(|e| e.to_string())?;
    if meta.len() > MAX_TOKEN_FILE {
        return Err(format!("larger than {MAX_TOKEN_FILE} bytes"));
    }
    let text = tokio::fs::read_to_string(file)
        .await
        .map_err(|e| e.to_string())?;
    let token = text.trim();
    if token.is_empty() {
        return Err("empty".into());
    }
    Ok(token.to_owned())
}

/// Whether `auth` is `Bearer <token>`, compared in constant time.
fn authorized(auth: Option<&HeaderValue>, token: &str) -> bool {
    let Some(v) = auth else { return false };
    let v = v.as_bytes();
    let Some(given) = v
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case(b"bearer "))
        .map(|_| v[7..].trim_ascii())
    else {
        return false;
    };
    let want = token.as_bytes();
    given.len() == want.len()
        && given
            .iter()
            .zip(want)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A key as the milter counts it: the network of an address, a login as
/// given, a sender lower-cased without angle brackets.
pub fn canonical(kind: KeyKind, value: &str, policy: &Policy) -> Result<String, String> {
    match kind {
        KeyKind::Ip => {
            // `2001:db8::/64` names the network of its address.
            let addr = value.split_once('/').map_or(value, |(a, _)| a);
            let addr = addr
                .get(..5)
                .filter(|p| p.eq_ignore_ascii_case("ipv6:"))
                .map_or(addr, |_| &addr[5..]);
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| format!("not an IP address: {value}"))?;
            Ok(policy.network(ip))
        }
        KeyKind::Login => Ok(value.to_owned()),
        KeyKind::Sender => {
            let s = canonical_sender(value.as_bytes());
            if s.is_empty() {
                Err("the null sender is not counted".into())
            } else {
                Ok(s)
            }
        }
    }
}

async fn admin(
    http: &Http,
    method: &Method,
    rest: &str,
    auth: Option<&HeaderValue>,
) -> Response<Full<Bytes>> {
    let rules = http.shared.current();
    let settings = &rules.config.admin;
    if !settings.enabled {
        return not_found();
    }
    if let Some(file) = &settings.token_file {
        match read_token(file).await {
            Ok(token) => {
                if !authorized(auth, &token) {
                    let mut r = error(StatusCode::UNAUTHORIZED, "a bearer token is required");
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"mailward\""),
                    );
                    return r;
                }
            }
            Err(e) => {
                log::error!("admin: token file {}: {e}", file.display());
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the admin token cannot be read",
                );
            }
        }
    }
    let Some((kind, value)) = rest.strip_prefix("key/").and_then(|r| r.split_once('/')) else {
        return not_found();
    };
    let kind = match kind {
        "ip" => KeyKind::Ip,
        "login" => KeyKind::Login,
        "sender" => KeyKind::Sender,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "unknown kind of key: use ip, login or sender",
            );
        }
    };
    let value = match percent_decode_str(value).decode_utf8() {
        Ok(v) => v.into_owned(),
        Err(_) => return error(StatusCode::BAD_REQUEST, "the key is not UTF-8"),
    };
    if value.is_empty() || value.len() > MAX_VALUE {
        return error(StatusCode::BAD_REQUEST, "the key must have 1 to 1024 bytes");
    }
    // The milter never counts a key with control characters (and the
    // reset is logged).
    if value.chars().any(char::is_control) {
        return error(StatusCode::BAD_REQUEST, "the key has control characters");
    }
    let policy = http.monitor.policy(&rules.config, rules.generation);
    let key_text = match canonical(kind, &value, &policy) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let store = http.monitor.store();
    let key = crate::behavior::store::Store::key(store, kind, key_text.as_bytes());
    match *method {
        Method::GET | Method::HEAD => {
            let (tracked, counts) = store.inspect(http.monitor.now_ms() / 1000, key);
            let limits: Vec<serde_json::Value> = counts
                .iter()
                .map(|(r, count)| {
                    json!({
                        "limit": r.index,
                        "metric": r.metric.as_str(),
                        "window": r.window,
                        "max": r.max,
                        "count": count,
                        "over": *count > r.max,
                        "action": r.action.as_str(),
                    })
                })
                .collect();
            json_reply(
                StatusCode::OK,
                json!({
                    "kind": kind.as_str(),
                    "value": value,
                    "key": key_text,
                    "behavior": policy.enabled,
                    "tracked": tracked,
                    "limits": limits,
                }),
            )
        }
        Method::DELETE => {
            let reset = store.reset(key);
            log::info!(
                "admin: reset {kind} {key_text}: {}",
                if reset {
                    "counters removed"
                } else {
                    "was not tracked"
                }
            );
            json_reply(
                StatusCode::OK,
                json!({
                    "kind": kind.as_str(),
                    "value": value,
                    "key": key_text,
                    "reset": reset,
                }),
            )
        }
        _ => method_not_allowed("GET, HEAD, DELETE"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert!(authorized(Some(&h("Bearer s3cret")), "s3cret"));
        assert!(authorized(Some(&h("bearer  s3cret ")), "s3cret"));
        assert!(!authorized(Some(&h("Bearer s3cre")), "s3cret"));
        assert!(!authorized(Some(&h("Bearer s3cretx")), "s3cret"));
        assert!(!authorized(Some(&h("Basic s3cret")), "s3cret"));
        assert!(!authorized(Some(&h("Bearer")), "s3cret"));
        assert!(!authorized(None, "s3cret"));
    }

    #[test]
    fn keys_are_canonical() {
        let p = Policy::default();
        assert_eq!(
            canonical(KeyKind::Ip, "192.0.2.1", &p).unwrap(),
            "192.0.2.1"
        );
        assert_eq!(
            canonical(KeyKind::Ip, "2001:db8:1:2::7", &p).unwrap(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            canonical(KeyKind::Ip, "2001:db8:1:2::/64", &p).unwrap(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(canonical(KeyKind::Ip, "IPv6:::1", &p).unwrap(), "::/64");
        assert!(canonical(KeyKind::Ip, "mx.example", &p).is_err());
        assert_eq!(
            canonical(KeyKind::Sender, "<Bob@Example.COM>", &p).unwrap(),
            "bob@example.com"
        );
        assert!(canonical(KeyKind::Sender, "<>", &p).is_err());
        assert_eq!(canonical(KeyKind::Login, "Bob", &p).unwrap(), "Bob");
    }
}
