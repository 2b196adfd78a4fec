//! Log output through `tracing`: human text for local runs, JSON lines for shipping.

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

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
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    guard
}
