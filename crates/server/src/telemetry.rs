//! Log output through `tracing`: human text for local runs, JSON lines for shipping.

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber; `RUST_LOG` overrides the configured filter. Logs go to
/// stderr so command output stays clean on stdout.
///
/// Lines are written by a background thread: a request never waits for the disk or a slow log
/// reader (a blocked write would stall every request on that worker). The writer blocks
/// instead of dropping when its queue is full, so no audit event is lost; the returned guard
/// flushes the queue when dropped, so hold it until the process ends.
pub fn init(settings: &LogSettings) -> WorkerGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    // A second installation (only possible in tests) keeps the first subscriber.
    let _ = install(settings, writer, std::io::stderr().is_terminal());
    guard
}

/// Installs the global subscriber writing to `writer`, in the configured format; fails when
/// one is installed already. Each event is one line; in JSON, the fields of the request span
/// (`request_id`) are included under `span`, so every line of a request can be found.
///
/// # Errors
/// A global subscriber is already set.
pub fn install<W>(
    settings: &LogSettings,
    writer: W,
    ansi: bool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
    }
}
