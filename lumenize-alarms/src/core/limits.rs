//! The byte limits of what a task stores: payload, id, cron expression, time zone and error
//! text, each checked before anything is written.

use crate::error::{Error, Result};

/// The largest payload a task may carry, in bytes of JSON. SQLite in a Durable Object refuses
/// a string or a row over 2 MB; a task's row holds its payload beside a few small columns.
pub const MAX_PAYLOAD_BYTES: usize = 1_000_000;

/// The longest explicit id, in bytes. A lookup by a longer id (`get`, `cancel`, `requeue`,
/// `defer`) finds nothing, without a statement.
pub const MAX_ID_BYTES: usize = 512;

/// The longest cron expression, in bytes, as given to [`When::cron`](crate::When::cron)
/// (a list of all sixty minutes and all twenty-four hours fits four times over).
pub const MAX_CRON_BYTES: usize = 1_024;

/// The longest time zone name, in bytes, as given to [`When::cron_in`](crate::When::cron_in)
/// (the longest IANA name, `America/Argentina/ComodRivadavia`, has 32).
pub const MAX_ZONE_BYTES: usize = 64;

/// The longest error text kept with a task (a handler's longer `Err` is cut here), in bytes.
pub const MAX_ERROR_BYTES: usize = 4_096;

/// Refuses `bytes` over `limit` with [`Error::TooLarge`], naming `what`.
pub(crate) fn check_size(what: &'static str, bytes: usize, limit: usize) -> Result<()> {
    if bytes > limit {
        return Err(Error::TooLarge { what, bytes, limit });
    }
    Ok(())
}

/// `error`, cut to [`MAX_ERROR_BYTES`] at a character boundary.
pub(crate) fn bounded(error: &str) -> String {
    if error.len() <= MAX_ERROR_BYTES {
        return error.to_owned();
    }
    let cut = (0..=MAX_ERROR_BYTES - 3).rev().find(|&i| error.is_char_boundary(i)).unwrap_or(0);
    format!("{}...", &error[..cut])
}
