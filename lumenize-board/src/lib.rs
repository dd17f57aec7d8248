//! An operator page and JSON API for the tasks of a Durable Object's
//! [`lumenize_alarms::Alarms`], mounted from the object's own `fetch` in two lines.
//!
//! It shows the tasks by status (pending, running, paused, dead) with paging and filters
//! (the payload's enum variant, an id prefix, a due range), each with its schedule (cron
//! expression and zone, interval), next due time and next five runs, attempts, last error
//! and a preview of its payload; the recent lifecycle events and a chart of how late recent
//! starts were. Its buttons cancel, run now, pause, resume and requeue a task, or requeue
//! every dead one.
//!
//! With the feature `calls` and `Board::calls`, it shows the object's pending calls of
//! `lumenize_call` too (`lumenize-board = { version = "0.1", features = ["calls"] }`):
//! each with its target, a preview of its operation, its dispatch, its state (awaiting
//! its result, delivering it to the continuation, or quarantined), transient failures and
//! the last one, its deadline and when it was made, and a button that cancels it (its
//! continuation runs with `CallError::Cancelled`). Without the feature the crate does not
//! depend on lumenize-call at all.
//!
//! ```no_run
//! # use lumenize_alarms::Alarms;
//! # use lumenize_board::{Auth, Board};
//! # use worker::*;
//! # struct Jobs { board: Board<String> }
//! # fn new(alarms: &Alarms<String>, env: &Env) -> Board<String> {
//! // in DurableObject::new
//! let board = Board::new(alarms, Auth::bearer(env.secret("BOARD_TOKEN").map(|s| s.to_string()).unwrap_or_default()));
//! # board }
//! # impl Jobs { async fn fetch(&self, req: Request) -> Result<Response> {
//! // first thing in DurableObject::fetch
//! if let Some(response) = self.board.serve(&req).await? { return Ok(response) }
//! # Response::ok("") } }
//! ```
//!
//! See [`Board`] for the routes. A browser opens `https://<your worker>/<path to the
//! object>/board/` and logs in with any user name and the token as password; scripts send
//! `Authorization: Bearer <token>`.
//!
//! # Safe to expose
//!
//! - Nothing is served unless mounted: the crate adds nothing to a worker that does not
//!   depend on it, and [`Board::serve`] answers only paths under its prefix.
//! - Every route answers 401 unless [`Auth`] lets the request in (a token compared in
//!   constant time, or your own check); an empty token lets nobody in.
//! - A state-changing request from another site (by `Sec-Fetch-Site`, else `Origin`
//!   against the request's host) is refused with 403 and changes nothing.
//! - Every stored string (ids, payloads, errors, cron expressions, zones, filters) is
//!   escaped where the page shows it, controls and bidirectional overrides included. The
//!   page has no script at all, and its Content-Security-Policy allows nothing but its own
//!   stylesheet (by a fresh nonce), forms to itself and no framing.
//! - Pages are bounded: one page reads at most [`MAX_PAGE`] rows through a keyset cursor
//!   (`Filter::after`), and counts by status come from one `GROUP BY`, so an object with
//!   100,000 tasks renders a page in the time and memory of 100 rows. Pending calls are
//!   read the same way (a keyset on their ids, at most [`MAX_PAGE`] a read, 25 on the
//!   page), and never counted. Previews, errors and
//!   the events kept ([`EVENTS_KEPT`]) are bounded too.
//!
//! # Not yet
//!
//! Calls are listed in the order they were made, without counts by state or filters.
//!
//! # Features
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `calls` | `Board::calls`: the pending calls of `lumenize-call`, on the page and at `api/calls`, with a cancel action |
//! | `timezone` | a cron task's next runs on its zone's wall clock, each with the zone's abbreviation and UTC offset (`2026-03-29 03:00:00 CEST +02:00`), so that a daylight-saving change shows, UTC beside them (`next_runs_local` in the JSON); it turns on lumenize-alarms' `timezone` feature and uses its time-zone data (nothing more for a worker that schedules in zones already). Without it, next runs are in UTC, the zone named beside the cron expression |

mod auth;
mod board;
#[cfg(feature = "calls")]
mod calls;
mod chart;
mod escape;
mod events;
mod page;
mod query;
mod view;
mod zone;

pub use auth::Auth;
pub use board::Board;
pub use events::EVENTS_KEPT;
pub use query::MAX_PAGE;
