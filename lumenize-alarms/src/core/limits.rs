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

/// `message`, cut to at most [`MAX_ERROR_BYTES`] (on a character boundary, with a note of
/// how many bytes were cut): a task's error (lumenize-alarms) and the texts lumenize-call
/// stores from an answer or a failed send go through it.
///
/// ```
/// use lumenize_alarms::core::clip;
/// use lumenize_alarms::MAX_ERROR_BYTES;
/// assert_eq!(clip("short".into()), "short");
/// let long = clip("é".repeat(MAX_ERROR_BYTES)); // 8,192 bytes
/// assert!(long.len() <= MAX_ERROR_BYTES);
/// assert!(long.ends_with("é… (4116 bytes cut)"), "{long}"); // 4,076 bytes kept
/// ```
#[must_use]
pub fn clip(message: String) -> String {
    if message.len() <= MAX_ERROR_BYTES {
        return message;
    }
    // Room for the note with the whole length in it: what is cut has no more digits.
    let room = format!("… ({} bytes cut)", message.len()).len();
    let mut end = MAX_ERROR_BYTES - room;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes cut)", &message[..end], message.len() - end)
}
