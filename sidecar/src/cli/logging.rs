//! Process-wide tracing set-up: human text for a terminal, JSON lines for a log pipeline.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber, writing to stderr (colours only on a terminal). A second
/// call does nothing.
pub fn init(format: LogFormat, filter: &str) {
    let ansi = std::io::stderr().is_terminal();
    let _ =
        tracing::subscriber::set_global_default(subscriber(format, filter, ansi, std::io::stderr));
}

/// The subscriber [`init`] installs, writing to `writer`. `filter` is a level or an `EnvFilter`
/// directive list, already checked by [`crate::config::Config::from_args`]; an invalid one
/// falls back to `info` rather than leaving the process silent.
pub fn subscriber<W>(
    format: LogFormat,
    filter: &str,
    ansi: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(format: LogFormat, filter: &str) -> String {
        let buf = Buffer::default();
        let out = buf.clone();
        let sub = subscriber(format, filter, false, move || buf.clone());
        tracing::subscriber::with_default(sub, || {
            tracing::info!(peer = "edge-1", "session established");
            tracing::debug!("hidden at info");
        });
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn json_lines_carry_fields() {
        let out = capture(LogFormat::Json, "info");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "session established");
        assert_eq!(v["peer"], "edge-1");
    }

    #[test]
    fn text_respects_the_filter() {
        let out = capture(LogFormat::Text, "debug");
        assert!(out.contains("session established"), "{out}");
        assert!(out.contains("peer=\"edge-1\""), "{out}");
        assert!(out.contains("hidden at info"), "{out}");
        let out = capture(LogFormat::Text, "warn");
        assert_eq!(out, "");
    }
}
