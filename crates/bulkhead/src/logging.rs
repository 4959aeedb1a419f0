//! runc-compatible diagnostics: `--log FILE --log-format json|text --debug`.
//!
//! Callers parse what we log. containerd keeps the `msg` of the last line
//! whose `level` is `"error"`; podman decodes the log file as JSON. So every
//! event becomes exactly one line, built completely in memory and handed to
//! the writer in one `write_all`; the file is opened `O_APPEND`, so runtimes
//! appending to the same file concurrently do not interleave their lines.

use std::fmt::{self, Write as _};
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriter};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Shape of each log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `time="…" level=error msg="…"`
    Text,
    /// `{"level":"error","msg":"…","time":"…"}`
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("cannot open log file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a global log subscriber is already installed")]
    AlreadyInstalled,
}

/// Install the global subscriber: append to `log` (created 0600 if missing)
/// or write to stderr; warnings and errors only unless `debug`.
pub fn init(log: Option<&Path>, format: LogFormat, debug: bool) -> Result<(), LoggingError> {
    let writer = match log {
        Some(path) => {
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(path)
                .map_err(|source| LoggingError::Open {
                    path: path.to_owned(),
                    source,
                })?;
            BoxMakeWriter::new(Arc::new(file))
        }
        None => BoxMakeWriter::new(std::io::stderr),
    };
    tracing::subscriber::set_global_default(subscriber(writer, format, debug, SystemTime::now))
        .map_err(|_| LoggingError::AlreadyInstalled)
}

fn subscriber<W>(
    writer: W,
    format: LogFormat,
    debug: bool,
    now: fn() -> SystemTime,
) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_max_level(if debug { Level::DEBUG } else { Level::WARN })
        .with_ansi(false)
        .with_writer(writer)
        .event_format(LineFormat { format, now })
        .finish()
}

/// Formats one event as one complete line.
struct LineFormat {
    format: LogFormat,
    now: fn() -> SystemTime,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = level_name(*event.metadata().level());
        let time = humantime::format_rfc3339_seconds((self.now)()).to_string();
        let mut line = String::new();
        match self.format {
            LogFormat::Json => {
                let msg = fields.message + &fields.extra;
                write!(
                    line,
                    "{{\"level\":{},\"msg\":{},\"time\":{}}}",
                    quote(level),
                    quote(&msg),
                    quote(&time)
                )?;
            }
            LogFormat::Text => {
                write!(
                    line,
                    "time={} level={level} msg={}",
                    quote(&time),
                    text_value(&fields.message)
                )?;
                line.push_str(&fields.extra);
            }
        }
        line.push('\n');
        w.write_str(&line)
    }
}

/// logrus spells the levels this way; containerd compares against "error".
fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
fn quote(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Text-format values stay bare when they are plain words, as logrus does.
fn text_value(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c));
    if plain { s.to_owned() } else { quote(s) }
}

/// The event's message, and its other fields as ` key=value` pairs.
#[derive(Default)]
struct Fields {
    message: String,
    extra: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.extra, " {}={}", field.name(), text_value(value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let value = format!("{value:?}");
        self.record_str(field, &value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::{Duration, UNIX_EPOCH};

    fn fixed_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_912_214) // 2026-11-29T00:30:14Z
    }

    /// Run `f` under a subscriber writing into a buffer; return the output.
    fn capture(format: LogFormat, debug: bool, f: impl FnOnce()) -> String {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let make = move || SharedBuf(sink.clone());
        tracing::subscriber::with_default(subscriber(make, format, debug, fixed_time), f);
        String::from_utf8(buf.lock().unwrap().clone()).unwrap()
    }

    struct SharedBuf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for SharedBuf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_line_has_fields_in_order() {
        let out = capture(LogFormat::Json, false, || {
            tracing::error!("container does not exist");
        });
        assert_eq!(
            out,
            "{\"level\":\"error\",\"msg\":\"container does not exist\",\"time\":\"2026-11-29T00:30:14Z\"}\n"
        );
    }

    #[test]
    fn json_escapes_and_appends_fields() {
        let out = capture(LogFormat::Json, false, || {
            tracing::error!(id = "c1", pid = 42, "exec \"sh\" failed:\nno such file");
        });
        assert_eq!(out.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "exec \"sh\" failed:\nno such file id=c1 pid=42");
        assert_eq!(v["time"], "2026-11-29T00:30:14Z");
    }

    #[test]
    fn level_filter_follows_debug_flag() {
        let emit = || {
            tracing::debug!("d");
            tracing::info!("i");
            tracing::warn!("w");
            tracing::error!("e");
        };
        let quiet = capture(LogFormat::Json, false, emit);
        let levels: Vec<String> = quiet
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["level"].to_string())
            .collect();
        assert_eq!(levels, ["\"warning\"", "\"error\""]);
        assert_eq!(capture(LogFormat::Json, true, emit).lines().count(), 4);
    }

    #[test]
    fn text_format_like_logrus() {
        let out = capture(LogFormat::Text, false, || {
            tracing::warn!(path = "/run/x y", "say \"hi\"");
            tracing::error!(code = 1, "plain");
        });
        assert_eq!(
            out,
            "time=\"2026-11-29T00:30:14Z\" level=warning msg=\"say \\\"hi\\\"\" path=\"/run/x y\"\n\
             time=\"2026-11-29T00:30:14Z\" level=error msg=plain code=1\n"
        );
    }

    #[test]
    fn init_creates_private_append_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.json");
        // Only one global subscriber per process: this is the test that installs it.
        init(Some(&path), LogFormat::Json, false).unwrap();
        tracing::error!("first");
        tracing::error!("second");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(matches!(
            init(None, LogFormat::Text, false),
            Err(LoggingError::AlreadyInstalled)
        ));
    }

    #[test]
    fn open_error_names_path() {
        let err = init(
            Some(Path::new("/nonexistent-dir/log")),
            LogFormat::Json,
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/log"), "{err}");
    }
}
