//! A blocking JSON-over-HTTP client for the experiment workers, local (plain HTTP to
//! 127.0.0.1) or deployed (HTTPS).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

/// An HTTP client with bounded waits: every request ends, with an answer or an error, within
/// the connect timeout plus the request timeout.
///
/// ```no_run
/// use lumenize_driver::http::Client;
/// let client = Client::new(std::time::Duration::from_secs(60));
/// let status: serde_json::Value = client.get("http://127.0.0.1:8787/run-1/status")?;
/// # Ok::<(), lumenize_driver::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
}

impl Default for Client {
    /// Requests time out after 120 s (scheduling 10,000 tasks in one request takes seconds).
    fn default() -> Self {
        Client::new(Duration::from_secs(120))
    }
}

impl Client {
    /// A client whose requests time out after `timeout` (connecting: after 5 s).
    #[must_use]
    pub fn new(timeout: Duration) -> Self {
        let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5)).timeout(timeout).build();
        Client { agent }
    }

    /// `GET url`, expecting a 2xx answer with a JSON body of type `T`.
    ///
    /// # Errors
    /// [`Error::Transport`], [`Error::Status`] (non-2xx), [`Error::Decode`].
    pub fn get<T: DeserializeOwned>(&self, url: &str) -> Result<T> {
        decode(url, self.agent.get(url).call())
    }

    /// `POST url` with `body` as JSON, expecting a 2xx answer with a JSON body of type `T`
    /// (use `String` for a text answer).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn post<B: Serialize, T: DeserializeOwned>(&self, url: &str, body: &B) -> Result<T> {
        let json = serde_json::to_string(body).map_err(|e| Error::Decode { url: url.to_owned(), reason: e.to_string() })?;
        self.post_text(url, &json)
    }

    /// `POST url` with `body` sent as it is (which may be no valid JSON at all), expecting a
    /// 2xx answer with a JSON body of type `T`.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn post_text<T: DeserializeOwned>(&self, url: &str, body: &str) -> Result<T> {
        decode(url, self.agent.post(url).set("content-type", "application/json").send_string(body))
    }
}

impl Client {
    /// `DELETE url` (no body), expecting a 2xx answer.
    ///
    /// # Errors
    /// [`Error::Transport`], [`Error::Status`].
    pub fn delete(&self, url: &str) -> Result<()> {
        decode::<serde_json::Value>(url, self.agent.delete(url).call()).map(drop)
    }
}

fn decode<T: DeserializeOwned>(url: &str, outcome: Result<ureq::Response, ureq::Error>) -> Result<T> {
    let response = match outcome {
        Ok(response) => response,
        Err(ureq::Error::Status(status, response)) => {
            let body = response.into_string().unwrap_or_default();
            return Err(Error::Status { url: url.to_owned(), status, body });
        }
        Err(e @ ureq::Error::Transport(_)) => return Err(Error::Transport { url: url.to_owned(), reason: e.to_string() }),
    };
    let text = response.into_string().map_err(|e| Error::Transport { url: url.to_owned(), reason: e.to_string() })?;
    // A text answer decodes as a JSON string.
    serde_json::from_str(&text)
        .or_else(|_| serde_json::from_value(serde_json::Value::String(text.clone())))
        .map_err(|e| Error::Decode { url: url.to_owned(), reason: format!("{e}: {}", truncate(&text, 200)) })
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
