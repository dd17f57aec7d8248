//! The WebSocket client of the call-alarm-delay worker: one blocking socket to one
//! `OriginDO`, driven from a single thread (send what the in-flight bound allows, then read
//! with a short timeout), so send and receive times come from one clock with no hand-off.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::{Error, Result};

/// How an operation reaches `RemoteDO` (the worker's `mode`), plus whether the origin runs
/// its due tasks through the test hook right after the call (`run_due_now`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `call()` with `Dispatch::Alarm`, sent from the native alarm.
    Alarm,
    /// `call()` with `Dispatch::Direct`.
    Direct,
    /// A plain awaited `stub.fetch` (the floor).
    Raw,
    /// A plain awaited `stub.fetch` with the three durable writes a call needs: a row at
    /// the origin before sending, one at the remote before replying, a write at the origin
    /// before reporting (the durable floor).
    RawDurable,
    /// `Dispatch::Alarm`, its task run at once through the test hook (no native alarm).
    AlarmNow,
    /// `Dispatch::Direct`, due tasks run at once through the test hook (a no-op normally).
    DirectNow,
}

impl Mode {
    /// Every mode, in the order tables list them.
    pub const ALL: [Mode; 6] = [Mode::Alarm, Mode::Direct, Mode::Raw, Mode::RawDurable, Mode::AlarmNow, Mode::DirectNow];

    /// The name used on the command line, in tables and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Alarm => "alarm",
            Mode::Direct => "direct",
            Mode::Raw => "raw",
            Mode::RawDurable => "raw-durable",
            Mode::AlarmNow => "alarm-now",
            Mode::DirectNow => "direct-now",
        }
    }

    /// The message that asks the origin for operation `id` in this mode.
    pub fn message(self, id: u64) -> String {
        let (mode, now) = match self {
            Mode::Alarm => ("alarm", false),
            Mode::Direct => ("direct", false),
            Mode::Raw => ("raw", false),
            Mode::RawDurable => ("raw-durable", false),
            Mode::AlarmNow => ("alarm", true),
            Mode::DirectNow => ("direct", true),
        };
        serde_json::json!({ "action": "test-call", "mode": mode, "id": id, "run_due_now": now }).to_string()
    }
}

/// An answer from the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `{"type": "call-complete", "id": ..}`.
    Complete(u64),
    /// `{"type": "call-error", "id": .., "error": ..}`.
    Failed(u64, String),
    /// Anything else (a refused message, a close): kept as text for the report.
    Other(String),
}

impl Answer {
    /// Decodes one text message of the origin.
    pub fn parse(text: &str) -> Answer {
        let Ok(value) = serde_json::from_str::<Value>(text) else { return Answer::Other(text.to_owned()) };
        let id = value["id"].as_u64();
        match (value["type"].as_str(), id) {
            (Some("call-complete"), Some(id)) => Answer::Complete(id),
            (Some("call-error"), Some(id)) => Answer::Failed(id, value["error"].as_str().unwrap_or("").to_owned()),
            _ => Answer::Other(text.to_owned()),
        }
    }
}

/// The `ws://` / `wss://` address of origin `name` behind the worker at `base` (`http://` or
/// `https://`).
pub(super) fn socket_url(base: &str, origin: &str) -> Result<String> {
    let base = base.trim_end_matches('/');
    let rest = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        return Err(Error::Usage(format!("--url must start with http:// or https://, got {base}")));
    };
    Ok(format!("{rest}/origin/{origin}"))
}

/// One open WebSocket to an `OriginDO`.
pub struct Client {
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    url: String,
    read_timeout: Option<Duration>,
}

/// The TCP stream below the (maybe TLS) WebSocket stream.
fn tcp(stream: &MaybeTlsStream<TcpStream>) -> Option<&TcpStream> {
    match stream {
        MaybeTlsStream::Plain(s) => Some(s),
        MaybeTlsStream::Rustls(s) => Some(&s.sock),
        _ => None,
    }
}

impl Client {
    /// Opens the socket to origin `origin` of the worker at `base`.
    ///
    /// # Errors
    /// [`Error::Usage`] for a URL that is not `http(s)://`; [`Error::Transport`] when the
    /// socket does not open.
    pub fn connect(base: &str, origin: &str) -> Result<Client> {
        let url = socket_url(base, origin)?;
        let (socket, _response) = tungstenite::connect(url.as_str()).map_err(|e| transport(&url, &e))?;
        if let Some(stream) = tcp(socket.get_ref()) {
            stream.set_nodelay(true).map_err(|e| transport(&url, &e))?;
        }
        Ok(Client { socket, url, read_timeout: None })
    }

    /// Queues a text message (sent by [`flush`](Self::flush) or once the buffer is full).
    ///
    /// # Errors
    /// [`Error::Transport`] when the socket failed.
    pub fn queue(&mut self, text: String) -> Result<()> {
        self.socket.write(Message::text(text)).map_err(|e| transport(&self.url, &e))
    }

    /// Sends everything queued.
    ///
    /// # Errors
    /// [`Error::Transport`] when the socket failed.
    pub fn flush(&mut self) -> Result<()> {
        self.socket.flush().map_err(|e| transport(&self.url, &e))
    }

    /// The next answer, waiting at most `timeout` (at least 1 ms); `None` if none came.
    ///
    /// # Errors
    /// [`Error::Transport`] when the socket failed or the worker closed it.
    pub fn next(&mut self, timeout: Duration) -> Result<Option<Answer>> {
        let timeout = timeout.max(Duration::from_millis(1));
        if self.read_timeout != Some(timeout) {
            if let Some(stream) = tcp(self.socket.get_ref()) {
                stream.set_read_timeout(Some(timeout)).map_err(|e| transport(&self.url, &e))?;
            }
            self.read_timeout = Some(timeout);
        }
        match self.socket.read() {
            Ok(Message::Text(text)) => Ok(Some(Answer::parse(text.as_str()))),
            Ok(Message::Close(frame)) => Err(transport(&self.url, &format!("the worker closed the socket: {frame:?}"))),
            Ok(_) => Ok(None), // ping, pong, binary: nothing to count
            Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(None),
            Err(e) => Err(transport(&self.url, &e)),
        }
    }

    /// Closes the socket politely (bounded: a few reads for the close handshake).
    pub fn close(mut self) {
        let _ = self.socket.close(None);
        for _ in 0..20 {
            if self.next(Duration::from_millis(50)).is_err() {
                break;
            }
        }
    }
}

fn transport(url: &str, reason: &dyn std::fmt::Display) -> Error {
    Error::Transport { url: url.to_owned(), reason: reason.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_answers() {
        let m: Value = serde_json::from_str(&Mode::AlarmNow.message(7)).unwrap();
        assert_eq!(m, serde_json::json!({"action": "test-call", "mode": "alarm", "id": 7, "run_due_now": true}));
        let m: Value = serde_json::from_str(&Mode::RawDurable.message(8)).unwrap();
        assert_eq!(m, serde_json::json!({"action": "test-call", "mode": "raw-durable", "id": 8, "run_due_now": false}));
        assert_eq!(Answer::parse(r#"{"type":"call-complete","id":3}"#), Answer::Complete(3));
        assert_eq!(Answer::parse(r#"{"type":"call-error","id":4,"error":"x"}"#), Answer::Failed(4, "x".into()));
        assert!(matches!(Answer::parse("nope"), Answer::Other(_)));
        for mode in Mode::ALL {
            assert_eq!(<Mode as clap::ValueEnum>::from_str(mode.name(), false), Ok(mode));
            assert_eq!(serde_json::to_value(mode).unwrap(), mode.name());
        }
    }

    #[test]
    fn socket_urls() {
        assert_eq!(socket_url("http://127.0.0.1:8787/", "o").unwrap(), "ws://127.0.0.1:8787/origin/o");
        assert_eq!(socket_url("https://x.workers.dev", "o").unwrap(), "wss://x.workers.dev/origin/o");
        assert!(socket_url("ftp://x", "o").is_err());
    }
}
