//! Small blocking HTTP helpers for tests (plain HTTP to 127.0.0.1, no proxy, no TLS).

use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::Result;

/// Connect timeout of the helpers: a local worker either listens or it does not.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Whole-request timeout of the helpers (a long experiment batch may take a while).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::AgentBuilder::new().timeout_connect(CONNECT_TIMEOUT).timeout(REQUEST_TIMEOUT).build()
    })
}

/// Whether `url` gives any HTTP answer within a few seconds (readiness probe).
pub(crate) fn probe(url: &str) -> bool {
    static PROBE: OnceLock<ureq::Agent> = OnceLock::new();
    let agent = PROBE.get_or_init(|| {
        ureq::AgentBuilder::new().timeout_connect(CONNECT_TIMEOUT).timeout(Duration::from_secs(5)).build()
    });
    match agent.get(url).call() {
        Ok(_) | Err(ureq::Error::Status(..)) => true,
        Err(ureq::Error::Transport(_)) => false,
    }
}

/// Turns a ureq outcome into `(status, body)`: an HTTP error status is an answer, not an error.
fn answer(url: &str, outcome: Result<ureq::Response, ureq::Error>) -> Result<(u16, String)> {
    let response = match outcome {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e @ ureq::Error::Transport(_)) => return Err(e).with_context(|| format!("request to {url}")),
    };
    let status = response.status();
    let body = response.into_string().with_context(|| format!("reading the body from {url}"))?;
    Ok((status, body))
}

/// `GET url`: the status (any, including 4xx/5xx) and the body as text.
///
/// Errors only when no HTTP answer came (refused, timed out, reset).
///
/// ```no_run
/// let (status, body) = lumenize_harness::get("http://127.0.0.1:8787/")?;
/// assert_eq!(status, 200, "{body}");
/// # Ok::<(), lumenize_harness::anyhow::Error>(())
/// ```
pub fn get(url: &str) -> Result<(u16, String)> {
    answer(url, agent().get(url).call())
}

/// `POST url` with a JSON body: the status (any) and the body as text.
///
/// ```no_run
/// use serde_json::json;
/// let (status, body) =
///     lumenize_harness::post_json("http://127.0.0.1:8787/alarms/a/schedule", &json!({"delay_ms": 0}))?;
/// let reply: serde_json::Value = serde_json::from_str(&body)?;
/// # let _ = (status, reply);
/// # Ok::<(), lumenize_harness::anyhow::Error>(())
/// ```
pub fn post_json(url: &str, body: &serde_json::Value) -> Result<(u16, String)> {
    post(url, &serde_json::to_string(body)?, &[("content-type", "application/json")])
}

/// `POST url` with a raw body and headers: the status (any) and the body as text.
///
/// ```no_run
/// let (status, _) = lumenize_harness::post("http://127.0.0.1:8787/x", "{", &[("x-sig", "00")])?;
/// # let _ = status;
/// # Ok::<(), lumenize_harness::anyhow::Error>(())
/// ```
pub fn post(url: &str, body: &str, headers: &[(&str, &str)]) -> Result<(u16, String)> {
    let request = headers.iter().fold(agent().post(url), |r, (name, value)| r.set(name, value));
    answer(url, request.send_string(body))
}

/// Calls `check` every `interval` until it returns `Some`, for at most `timeout`.
///
/// Bounded in time and in count (at most `timeout / interval + 1` calls; a slow `check`
/// uses up the time). The error says how many attempts were made over how long.
///
/// ```
/// use std::time::Duration;
/// let mut n = 0;
/// let v = lumenize_harness::poll_until(Duration::from_secs(1), Duration::from_millis(1), || {
///     n += 1;
///     (n == 3).then_some(n)
/// })?;
/// assert_eq!(v, 3);
/// # Ok::<(), lumenize_harness::anyhow::Error>(())
/// ```
pub fn poll_until<T>(
    timeout: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T> {
    let started = Instant::now();
    let interval = interval.max(Duration::from_millis(1));
    let max_attempts = timeout.as_millis() / interval.as_millis() + 1;
    let mut attempts = 0u128;
    while attempts < max_attempts {
        attempts += 1;
        if let Some(v) = check() {
            return Ok(v);
        }
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            break;
        }
        thread::sleep(interval.min(timeout - elapsed));
    }
    bail!(
        "condition not met after {attempts} attempts over {:.1} s (timeout {:?})",
        started.elapsed().as_secs_f64(),
        timeout
    )
}
