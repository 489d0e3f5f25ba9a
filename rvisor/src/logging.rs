//! Log setup shared by the CLI, `boot` and `gofer`.
//!
//! stderr gets warnings (and, for the sentry with `--strace` and no `--debug-log`, the
//! strace lines, which the sentry emits at INFO under the target `strace`). With
//! `--debug-log DIR` every process also writes `DIR/<id>.<role>.log` at INFO (DEBUG with
//! `--debug`), strace lines included. `--log FILE` does the same for the CLI itself.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

use crate::cli::{GlobalOpts, LogFormat};

/// Target of the error events that main also prints to stderr itself.
pub const FAILURE_TARGET: &str = "rvisor::failure";

/// Which process of a sandbox is logging; part of the debug-log file name.
#[derive(Clone, Copy, Debug)]
pub enum Role {
    Cli,
    Boot,
    Gofer,
    /// The long-lived parent of a created sandbox's boot and gofer.
    Supervisor,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Cli => "cli",
            Role::Boot => "boot",
            Role::Gofer => "gofer",
            Role::Supervisor => "supervisor",
        }
    }
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

fn file_layer(file: File, format: LogFormat, level: Level) -> BoxedLayer {
    let writer = Arc::new(file);
    let filter = Targets::new().with_default(level);
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .event_format(JsonLine)
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Installs the global subscriber for this process. `strace` says whether strace
/// lines should reach stderr when there is no debug log.
pub fn init(role: Role, id: &str, g: &GlobalOpts, strace: bool) -> Result<()> {
    let file_level = if g.debug { Level::DEBUG } else { Level::INFO };
    let mut layers: Vec<BoxedLayer> = Vec::new();

    // Failures are printed to stderr by main as one plain line; logged only to files.
    let mut stderr_filter = Targets::new()
        .with_default(Level::WARN)
        .with_target(FAILURE_TARGET, LevelFilter::OFF);
    if strace && g.debug_log.is_none() {
        stderr_filter = stderr_filter.with_target("strace", Level::INFO);
    }
    if g.debug && g.debug_log.is_none() && g.log.is_none() {
        stderr_filter = stderr_filter.with_default(Level::DEBUG);
    }
    layers.push(
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .without_time()
            .with_filter(stderr_filter)
            .boxed(),
    );

    if let Some(dir) = &g.debug_log {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--debug-log: cannot create {}", dir.display()))?;
        let path = dir.join(format!("{}.{}.log", sanitize(id), role.name()));
        let file = open_append(&path)
            .with_context(|| format!("--debug-log: cannot open {}", path.display()))?;
        layers.push(file_layer(file, g.log_format, file_level));
    }
    if let (Role::Cli, Some(path)) = (role, &g.log) {
        let file =
            open_append(path).with_context(|| format!("--log: cannot open {}", path.display()))?;
        layers.push(file_layer(file, g.log_format, file_level));
    }

    let subscriber = Registry::default().with(layers);
    // A second init in one process (tests) keeps the first subscriber; not an error.
    let _ = tracing::subscriber::set_global_default(subscriber);
    INSTALLED.store(true, Ordering::Relaxed);
    Ok(())
}

/// Whether [`init`] ran in this process.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Whether this process set its logging up (a command that failed early did not).
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Keeps a container id from escaping the log directory.
fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One JSON object per line, with runc's keys (`level`, `msg`, `time`) so containerd
/// can read the log, plus the target and any other fields.
struct JsonLine;

struct JsonVisitor(serde_json::Map<String, serde_json::Value>);

impl Visit for JsonVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, serde_json::Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, serde_json::Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, value.into());
    }
}

impl JsonVisitor {
    fn insert(&mut self, field: &Field, value: serde_json::Value) {
        let key = if field.name() == "message" {
            "msg"
        } else {
            field.name()
        };
        self.0.insert(key.to_string(), value);
    }
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut v = JsonVisitor(serde_json::Map::new());
        v.0.insert(
            "level".into(),
            meta.level().as_str().to_ascii_lowercase().into(),
        );
        v.0.insert("time".into(), rfc3339_now().into());
        v.0.insert("target".into(), meta.target().into());
        event.record(&mut v);
        let line = serde_json::Value::Object(v.0).to_string();
        writeln!(writer, "{line}")
    }
}

/// The current UTC time as RFC 3339 with microseconds.
fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_micros()
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// well-known days-to-civil algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn sanitize_keeps_ids_inside_the_dir() {
        assert_eq!(sanitize("../etc/x"), ".._etc_x");
        assert_eq!(sanitize("abc-1_2.3"), "abc-1_2.3");
    }
}
