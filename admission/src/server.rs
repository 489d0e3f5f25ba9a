//! The webhook's HTTPS server: HTTP/1.1 over rustls on std threads, one thread per
//! connection (the API server keeps a few connections open and posts one review at a
//! time on each). `POST` of an AdmissionReview to any path but /healthz is answered
//! with the handler's AdmissionReview; `GET /healthz` says ok.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::Value;

/// Answers one AdmissionReview (an error becomes a 400).
pub type Handler = dyn Fn(&Value) -> Result<Value, String> + Send + Sync;

/// The largest body read: the API server sends objects up to about 3 MiB.
const MAX_BODY: usize = 8 << 20;
const MAX_HEAD: usize = 16 << 10;
/// An idle keep-alive connection is closed after this.
const IDLE: Duration = Duration::from_secs(60);

/// The rustls provider, named rather than taken from crate features, so another
/// crate of the build enabling a second provider changes nothing here. *ring* builds
/// with a C compiler alone (aws-lc-rs needs more); rustls deprecates it for lacking
/// post-quantum key exchange, which this in-cluster hop does without.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS server configuration from PEM files: the certificate chain and its key.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("read {}", p.display()));
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &read(cert)?[..])
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: bad PEM", cert.display()))?;
    if certs.is_empty() {
        bail!("{}: no certificate", cert.display());
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &read(key)?[..])
        .with_context(|| format!("{}: bad PEM", key.display()))?
        .ok_or_else(|| anyhow::anyhow!("{}: no private key", key.display()))?;
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key")?;
    Ok(Arc::new(cfg))
}

/// Serves connections from `listener` until it fails.
pub fn serve(listener: TcpListener, tls: Arc<ServerConfig>, handler: Arc<Handler>) -> Result<()> {
    loop {
        let (sock, peer) = listener.accept().context("accept")?;
        let tls = tls.clone();
        let handler = handler.clone();
        std::thread::spawn(move || {
            if let Err(e) = connection(sock, tls, &*handler) {
                eprintln!("rvisor-admission: {peer}: {e:#}");
            }
        });
    }
}

fn connection(sock: TcpStream, tls: Arc<ServerConfig>, handler: &Handler) -> Result<()> {
    sock.set_read_timeout(Some(IDLE))?;
    sock.set_write_timeout(Some(IDLE))?;
    let conn = ServerConnection::new(tls)?;
    let mut stream = BufReader::new(StreamOwned::new(conn, sock));
    loop {
        let Some(req) = read_request(&mut stream)? else {
            return Ok(());
        };
        let (status, body) = respond(&req, handler);
        let w = stream.get_mut();
        write!(
            w,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if req.close {
                "Connection: close\r\n"
            } else {
                ""
            }
        )?;
        w.write_all(body.as_bytes())?;
        w.flush()?;
        if req.close {
            w.conn.send_close_notify();
            let _ = w.flush();
            return Ok(());
        }
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    close: bool,
}

/// One request, or None when the client closed the connection between requests.
fn read_request(r: &mut impl BufRead) -> Result<Option<Request>> {
    let mut head = Vec::new();
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = match r.read_line(&mut line) {
            Ok(n) => n,
            // A peer that goes away without close_notify between requests.
            Err(e) if lines.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            if lines.is_empty() {
                return Ok(None);
            }
            bail!("connection closed inside a request head");
        }
        head.extend_from_slice(line.as_bytes());
        if head.len() > MAX_HEAD {
            bail!("request head over {MAX_HEAD} bytes");
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let mut first = lines[0].split_whitespace();
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let version = first.next().unwrap_or_default();
    let mut len = 0usize;
    let mut close = version == "HTTP/1.0";
    for h in &lines[1..] {
        let Some((k, v)) = h.split_once(':') else {
            bail!("bad header line {h:?}");
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => len = v.parse().context("Content-Length")?,
            "connection" => close = v.eq_ignore_ascii_case("close"),
            "transfer-encoding" => bail!("Transfer-Encoding {v} is not supported"),
            _ => {}
        }
    }
    if len > MAX_BODY {
        bail!("body of {len} bytes is over {MAX_BODY}");
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).context("request body")?;
    Ok(Some(Request {
        method,
        path,
        body,
        close,
    }))
}

fn respond(req: &Request, handler: &Handler) -> (&'static str, String) {
    let error = |status, msg: String| (status, serde_json::json!({ "error": msg }).to_string());
    match (
        req.method.as_str(),
        req.path.split('?').next().unwrap_or(""),
    ) {
        ("GET", "/healthz") => ("200 OK", "{\"status\":\"ok\"}".into()),
        ("POST", p) if p != "/healthz" => {
            let review = match serde_json::from_slice::<Value>(&req.body) {
                Ok(v) => v,
                Err(e) => return error("400 Bad Request", format!("body is not JSON: {e}")),
            };
            match handler(&review) {
                Ok(v) => ("200 OK", v.to_string()),
                Err(e) => error("400 Bad Request", e),
            }
        }
        _ => error(
            "404 Not Found",
            format!("{} {}: POST an AdmissionReview", req.method, req.path),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<Request>> {
        read_request(&mut BufReader::new(raw.as_bytes()))
    }

    #[test]
    fn requests_are_read_one_after_another() {
        let raw =
            "POST /validate HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET /healthz HTTP/1.0\r\n\r\n";
        let mut r = BufReader::new(raw.as_bytes());
        let a = read_request(&mut r).unwrap().unwrap();
        assert_eq!(
            (a.method.as_str(), a.path.as_str(), &a.body[..], a.close),
            ("POST", "/validate", &b"{}"[..], false)
        );
        let b = read_request(&mut r).unwrap().unwrap();
        assert_eq!((b.path.as_str(), b.close), ("/healthz", true));
        assert!(read_request(&mut r).unwrap().is_none());
    }

    #[test]
    fn what_the_server_does_not_take_is_refused() {
        for raw in [
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            "POST / HTTP/1.1\r\nno colon\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n{}",
            "POST / HTTP/1.1\r\n",
        ] {
            assert!(parse(raw).is_err(), "{raw:?}");
        }
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(parse(&long).is_err());
    }

    #[test]
    fn responses_by_method_and_path() {
        let h: &Handler = &|v: &Value| {
            v.get("ok")
                .map(|_| serde_json::json!({"answer": 1}))
                .ok_or_else(|| "no ok".to_string())
        };
        let req = |method: &str, path: &str, body: &str| Request {
            method: method.into(),
            path: path.into(),
            body: body.as_bytes().to_vec(),
            close: false,
        };
        assert_eq!(respond(&req("GET", "/healthz", ""), h).0, "200 OK");
        assert_eq!(
            respond(&req("POST", "/validate?timeout=10s", "{\"ok\": 1}"), h),
            ("200 OK", "{\"answer\":1}".to_string())
        );
        assert_eq!(
            respond(&req("POST", "/validate", "{}"), h).0,
            "400 Bad Request"
        );
        assert_eq!(
            respond(&req("POST", "/validate", "{"), h).0,
            "400 Bad Request"
        );
        assert_eq!(respond(&req("GET", "/validate", ""), h).0, "404 Not Found");
        assert_eq!(
            respond(&req("POST", "/healthz", "{}"), h).0,
            "404 Not Found"
        );
    }
}
