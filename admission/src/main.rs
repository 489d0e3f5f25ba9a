//! `rvisor-admission`: the validating admission webhook for pods of RuntimeClass
//! `gvisor` (the rules are in the library, rvisor_admission::RULES).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::{Map, Value};

/// Validating admission webhook (AdmissionReview v1 over HTTPS) for pods of
/// RuntimeClass gvisor: refuses what the sandbox cannot honour, warns about what it
/// does not apply.
#[derive(Debug, Parser)]
#[command(name = "rvisor-admission", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8443", value_name = "ADDR")]
    listen: String,
    /// The server's certificate chain (PEM).
    #[arg(long, value_name = "FILE")]
    tls_cert: PathBuf,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: PathBuf,
    /// Namespace labels for the policy, as JSON {"namespace": {"label": "value"}},
    /// read again for every review (e.g. a mounted ConfigMap). An AdmissionRequest
    /// names the namespace but carries none of its labels; without this file every
    /// namespace has none, so NET_RAW is refused everywhere.
    #[arg(long, value_name = "FILE")]
    namespace_labels: Option<PathBuf>,
}

/// The labels of `ns` in `file`; an unreadable or malformed file refuses the review
/// (the webhook's failurePolicy decides then) rather than guessing.
fn labels_from(file: &std::path::Path, ns: &str) -> Result<Map<String, Value>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let all: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    match all.get(ns) {
        None => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(format!("{}: {ns:?} is not an object", file.display())),
    }
}

fn run(a: Args) -> Result<()> {
    let tls = rvisor_admission::server::tls_config(&a.tls_cert, &a.tls_key)?;
    let listener =
        TcpListener::bind(&a.listen).with_context(|| format!("listen on {}", a.listen))?;
    eprintln!("rvisor-admission: listening on {}", listener.local_addr()?);
    let file = a.namespace_labels;
    let handler = move |review: &Value| -> Result<Value, String> {
        match &file {
            None => rvisor_admission::review(review, &|_| Ok(Map::new())),
            Some(f) => rvisor_admission::review(review, &|ns| labels_from(f, ns)),
        }
    };
    rvisor_admission::server::serve(listener, tls, Arc::new(handler))
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvisor-admission: {e:#}");
            ExitCode::FAILURE
        }
    }
}
