//! Every log line of the test binary, captured through the production JSON formatter at
//! debug level, so tests can find the lines of one request and check that no secret is in
//! any of them.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use idm_otp_server::config::{LogFormat, LogSettings};
use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

pub struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        if let Some(secret) = secret_in(&text) {
            violations()
                .lock()
                .unwrap()
                .push(format!("{secret}: {text}"));
        }
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for Capture {
    type Writer = CaptureWriter;
    fn make_writer(&'w self) -> Self::Writer {
        CaptureWriter(Arc::clone(&self.0))
    }
}

/// The capture, installed as the global subscriber on first use.
pub fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let settings = LogSettings {
            format: LogFormat::Json,
            filter: "debug".into(),
        };
        idm_otp_server::telemetry::install(&settings, capture.clone(), false)
            .expect("the test binary installs the only subscriber");
        capture
    })
}

impl Capture {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The JSON lines that carry this request id, as a field or in their request span.
    pub fn lines_of(&self, request_id: &str) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| {
                line["request_id"] == request_id || line["span"]["request_id"] == request_id
            })
            .collect()
    }
}

/// Lines of the whole run that held a secret.
fn violations() -> &'static Mutex<Vec<String>> {
    static VIOLATIONS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    VIOLATIONS.get_or_init(Mutex::default)
}

/// What secret, if any, a log line holds: a JWT (every JWT starts with the base64 of `{"`,
/// `eyJ`), a test card code (`cc` + 4 digits + `zz`, see `support::fixtures`), or a
/// configured secret.
pub fn secret_in(text: &str) -> Option<&'static str> {
    if text.contains("eyJ") {
        return Some("a JWT");
    }
    let bytes = text.as_bytes();
    if bytes.windows(8).any(|w| {
        w.starts_with(b"cc") && w.ends_with(b"zz") && w[2..6].iter().all(u8::is_ascii_digit)
    }) {
        return Some("a card code");
    }
    if text.contains(crate::support::HS256_SECRET) || text.contains(crate::support::HMAC_KEY) {
        return Some("a configured secret");
    }
    None
}

/// Held by every test app: when it goes, no line logged so far (by any test of the run, at
/// debug level) may have held a secret.
pub struct SecretsCheck;

impl Drop for SecretsCheck {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let found = violations().lock().unwrap().clone();
        assert!(
            found.is_empty(),
            "secrets in the log:\n{}",
            found.join("\n")
        );
    }
}
