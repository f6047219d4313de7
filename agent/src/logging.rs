//! What library code logs (provider retries; more with NANOBOT_LOG=debug) goes to stderr as plain
//! lines, `nanobot: warning: openrouter: connection refused (attempt 2 of 4), retrying in 1 s`:
//! the message in words, the structured fields only at debug level, and colour only on a
//! terminal and never with NO_COLOR set.

use std::fmt::Write as _;
use std::io::IsTerminal;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Whether to colour stderr: a terminal, and NO_COLOR unset or empty (no-color.org).
pub fn use_color(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

pub fn init() {
    let color = use_color(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NANOBOT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .event_format(Plain { color })
        .init();
}

struct Plain {
    color: bool,
}

/// Collects an event's message and, separately, its other fields.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }
}

/// The line for one event (pure).
pub fn line(level: Level, message: &str, fields: &str, color: bool) -> String {
    let (word, code) = match level {
        Level::ERROR => ("error", "31"),
        Level::WARN => ("warning", "33"),
        Level::INFO => ("info", "36"),
        _ => ("debug", "2"),
    };
    let word = if color {
        format!("\x1b[{code}m{word}\x1b[0m")
    } else {
        word.to_string()
    };
    // Fields help whoever debugs; a warning or an error is a sentence for the user.
    let fields = if level <= Level::INFO { "" } else { fields };
    format!("nanobot: {word}: {message}{fields}")
}

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut f = Fields::default();
        event.record(&mut f);
        writeln!(
            writer,
            "{}",
            line(*event.metadata().level(), &f.message, &f.rest, self.color)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_color(true, None));
        assert!(use_color(true, Some("".into())));
        assert!(!use_color(true, Some("1".into())));
        assert!(!use_color(false, None));
    }

    #[test]
    fn warnings_are_plain_sentences() {
        let l = line(
            Level::WARN,
            "openrouter: connection refused",
            " attempt=2",
            false,
        );
        assert_eq!(l, "nanobot: warning: openrouter: connection refused");
        assert!(!l.contains('\x1b'));
        let l = line(Level::WARN, "x", "", true);
        assert!(l.contains("\x1b[33mwarning\x1b[0m"), "{l}");
        let l = line(Level::DEBUG, "request", " url=http://x", false);
        assert_eq!(l, "nanobot: debug: request url=http://x");
    }
}
