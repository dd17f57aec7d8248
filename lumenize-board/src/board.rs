//! [`Board`]: the routes, bound to an object's [`Alarms`] and a `worker::Request`.

use std::cell::RefCell;
use std::rc::Rc;

use lumenize_alarms::{Alarms, Error, Filter, Status};
use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{Date, Headers, Method, Request, Response, Result};

use crate::auth::{same_origin, Auth};
use crate::events::{Ring, Seen};
use crate::page::{render, PageData};
use crate::query::Query;
use crate::view::TaskView;

/// The board of one object's tasks: a page and a JSON API served from the object's own
/// `fetch`, under a path prefix (`/board` unless [`Board::at`] says otherwise).
///
/// Make it once, in `DurableObject::new`: it starts keeping the recent lifecycle events
/// (it sets the [`Alarms::on_event`] hook: if you set one of your own, set it after and pass
/// each event on with [`Board::record`]). Then answer its requests first in `fetch`:
///
/// ```no_run
/// use lumenize_alarms::Alarms;
/// use lumenize_board::{Auth, Board};
/// use worker::*;
///
/// #[durable_object]
/// pub struct Jobs {
///     alarms: Alarms<String>,
///     board: Board<String>,
/// }
///
/// impl DurableObject for Jobs {
///     fn new(state: State, env: Env) -> Self {
///         let alarms = Alarms::open(&state);
///         let token = env.secret("BOARD_TOKEN").map(|s| s.to_string()).unwrap_or_default();
///         let board = Board::new(&alarms, Auth::bearer(token));
///         Self { alarms, board }
///     }
///
///     async fn fetch(&self, req: Request) -> Result<Response> {
///         if let Some(response) = self.board.serve(&req).await? {
///             return Ok(response);
///         }
///         Response::ok("the object's own routes")
///     }
/// }
/// ```
///
/// Routes, under the prefix `P` (every one answers 401 without [`Auth`]'s consent, before
/// reading anything; anything else under `P` answers 404; paths outside `P` are left to you,
/// `serve` answers `None`):
///
/// | route | answers |
/// | --- | --- |
/// | `GET P/` (`GET P` redirects there) | the page |
/// | `GET P/api/tasks?status=&kind=&prefix=&from=&before=&after=&limit=` | `{tasks, read, next, counts}`: a page of tasks (`limit` rows a read, `1 ..= 100`, 25 by default; a kind or prefix filter reads on, up to 1,000 rows, until `limit` tasks pass; `next` is the `after` of the next page) |
/// | `GET P/api/task?id=` | one task, or 404 |
/// | `GET P/api/counts`, `GET P/api/events` | tasks by status; the recent events, newest first |
/// | `POST P/api/{cancel,run_now,pause,resume,requeue}?id=` | `{task}`: the task as it is after the action (`null` once cancelled); 404 for no such task, 409 when its status does not allow it |
/// | `POST P/api/requeue_dead` | `{requeued, counts}`: requeues up to 1,000 dead tasks |
/// | `GET P/api/calls?after=&limit=` | with `Board::calls` (feature `calls`): `{calls, next}`, a page of pending calls in the order they were made (`limit` `1 ..= 100`, 25 by default; `next` is the `after` of the next page); 404 without |
/// | `POST P/api/calls/cancel?id=` | with `Board::calls`: `{call}`, the call as it is after the cancel (`null` once its continuation ran, with `CallError::Cancelled`); 404 for no such call, 500 with the call if its continuation failed (its task runs it again); 404 without |
///
/// A POST from another site is refused with 403 and changes nothing. The page's buttons
/// post forms (the `id` in the body) and are sent back to the page (303).
pub struct Board<T> {
    alarms: Alarms<T>,
    auth: Auth,
    prefix: String,
    ring: Rc<RefCell<Ring>>,
    /// The object's calls, once `Board::calls` mounted them.
    #[cfg(feature = "calls")]
    calls: Option<Rc<dyn crate::calls::CallsSource>>,
}

impl<T> Clone for Board<T> {
    fn clone(&self) -> Self {
        Board {
            alarms: self.alarms.clone(),
            auth: self.auth.clone(),
            prefix: self.prefix.clone(),
            ring: self.ring.clone(),
            #[cfg(feature = "calls")]
            calls: self.calls.clone(),
        }
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Board<T> {
    /// The board of `alarms`, for the requests `auth` lets in, at `/board`. Starts keeping
    /// the recent lifecycle events (the newest [`EVENTS_KEPT`](crate::EVENTS_KEPT), in
    /// memory: they restart empty with the object).
    #[must_use]
    pub fn new(alarms: &Alarms<T>, auth: Auth) -> Self {
        let board = Board {
            alarms: alarms.clone(),
            auth,
            prefix: "/board".into(),
            ring: Rc::default(),
            #[cfg(feature = "calls")]
            calls: None,
        };
        let ring = board.ring.clone();
        alarms.on_event(move |event| record(&ring, event));
        board
    }

    /// Serves the board under `prefix` instead of `/board` (`""` or `"/"` is the root; a
    /// trailing `/` is ignored).
    #[must_use]
    pub fn at(mut self, prefix: &str) -> Self {
        self.prefix = format!("/{}", prefix.trim_matches('/'));
        if self.prefix == "/" {
            self.prefix.clear();
        }
        self
    }

    /// Shows the object's pending calls of lumenize-call too (feature `calls`): a section of
    /// the page with a Cancel button per call, and the routes `api/calls` and
    /// `api/calls/cancel` (see [`Board`]), under the same [`Auth`] and cross-site checks.
    /// Without it those routes answer 404 and the page has no calls.
    ///
    /// ```no_run
    /// # use lumenize_alarms::Alarms;
    /// # use lumenize_board::{Auth, Board};
    /// # use lumenize_call::{Calls, Continuations};
    /// # fn new<L: Continuations>(alarms: &Alarms<String>, calls: &Calls<L>) -> Board<String> {
    /// let board = Board::new(alarms, Auth::bearer("token")).calls(calls);
    /// # board }
    /// ```
    #[cfg(feature = "calls")]
    #[must_use]
    pub fn calls<L: lumenize_call::Continuations>(mut self, calls: &lumenize_call::Calls<L>) -> Self {
        self.calls = Some(Rc::new(calls.clone()));
        self
    }

    /// Keeps `event` among the recent ones: for an `on_event` hook of your own, set after
    /// [`Board::new`].
    pub fn record(&self, event: &lumenize_alarms::core::Event<'_>) {
        record(&self.ring, event);
    }

    /// Answers `req` if it is the board's (its path is the prefix or under it), else `None`.
    ///
    /// # Errors
    /// Only a response that cannot be built; the library's errors are answers (404, 409,
    /// 500 with the reason).
    pub async fn serve(&self, req: &Request) -> Result<Option<Response>> {
        let path = req.path();
        let Some(rest) = path.strip_prefix(&self.prefix).filter(|r| r.is_empty() || r.starts_with('/')) else {
            return Ok(None);
        };
        if !self.auth.allows(req) {
            let h = secure_headers()?;
            h.set("www-authenticate", r#"Basic realm="lumenize board", charset="UTF-8""#)?;
            return Ok(Some(Response::error("unauthorized", 401)?.with_headers(h)));
        }
        let url = req.url()?;
        let query = url.query().unwrap_or("");
        let response = match (req.method(), rest) {
            (Method::Get, "") => {
                // Relative links need the page at `P/`.
                let last = self.prefix.rsplit('/').next().unwrap_or("");
                let h = secure_headers()?;
                h.set("location", &format!("{last}/"))?;
                Response::empty()?.with_status(308).with_headers(h)
            }
            (Method::Get, "/") => self.page(query)?,
            (Method::Get, "/api/tasks") => {
                let q = Query::parse(query);
                let (tasks, read, next) = self.tasks(&q)?;
                json(&serde_json::json!({ "tasks": tasks, "read": read, "next": next.map(|(d, s)| format!("{d}.{s}")), "counts": counts(&self.alarms.counts()?) }))?
            }
            (Method::Get, "/api/task") => match self.alarms.get(&param(query, "id")) {
                Ok(Some(task)) => json(&TaskView::of(&task))?,
                Ok(None) => error(404, "no such task")?,
                Err(e) => lib_error(&e)?,
            },
            (Method::Get, "/api/counts") => json(&counts(&self.alarms.counts()?))?,
            (Method::Get, "/api/events") => json(&self.ring.borrow().newest_first().collect::<Vec<_>>())?,
            #[cfg(feature = "calls")]
            (Method::Get, "/api/calls") => match &self.calls {
                Some(calls) => {
                    let limit = crate::query::limit(&param(query, "limit"));
                    let after = Some(param(query, "after")).filter(|a| !a.is_empty());
                    match calls.page(after.as_deref().map(|a| crate::escape::clip(a, MAX_CURSOR).0), limit) {
                        Ok((page, next)) => json(&serde_json::json!({ "calls": page.iter().map(crate::calls::CallView::of).collect::<Vec<_>>(), "next": next }))?,
                        Err(e) => error(500, &e.to_string())?,
                    }
                }
                None => error(404, "no calls on this board")?,
            },
            (Method::Post, action) if action.starts_with("/api/") => self.act(req, &url, &action["/api/".len()..]).await?,
            _ => error(404, "no such board route")?,
        };
        Ok(Some(response))
    }

    /// A page of tasks: reads of `q.limit` rows from the cursor on, until `q.limit` tasks
    /// passed the kind and id-prefix filters (which the store does not apply) or
    /// [`MAX_SCAN`] rows were read: bounded whatever the number of tasks.
    fn tasks(&self, q: &Query) -> Result<Listing> {
        let mut filter = q.filter();
        let (mut views, mut read) = (Vec::new(), 0);
        loop {
            let rows = self.alarms.list(&filter).map_err(|e| worker::Error::RustError(e.to_string()))?;
            read += rows.len();
            let full = rows.len() == q.limit;
            filter.after = rows.last().filter(|_| full).map(|t| (t.due_ms, t.seq));
            views.extend(rows.iter().map(TaskView::of).filter(|v| q.passes(&v.id, v.kind.as_deref())));
            if filter.after.is_none() || views.len() >= q.limit || read >= MAX_SCAN {
                break;
            }
        }
        if views.len() > q.limit {
            views.truncate(q.limit);
            filter.after = views.last().map(|v| v.key);
        }
        Ok((views, read, filter.after))
    }

    fn page(&self, query: &str) -> Result<Response> {
        let q = Query::parse(query);
        let (tasks, read, next) = self.tasks(&q)?;
        let ring = self.ring.borrow();
        let events: Vec<&Seen> = ring.newest_first().collect();
        let mut lateness: Vec<i64> = events.iter().filter(|e| e.kind == "started").filter_map(|e| e.lateness_ms).collect();
        lateness.reverse();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let now = now_ms();
        let calls = self.calls_section(query, &q, now);
        let html = render(&PageData { calls: &calls, now_ms: now, counts: self.alarms.counts().map_err(|e| worker::Error::RustError(e.to_string()))?, query: &q, tasks: &tasks, read, next, events: &events, lateness: &lateness, nonce: &nonce });
        let h = secure_headers()?;
        h.set("content-security-policy", &format!("default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"))?;
        Ok(Response::from_html(html)?.with_headers(merge(h, "content-type", "text/html; charset=utf-8")?))
    }

    /// The page's section of pending calls (`calls_after` pages it), if calls are mounted.
    #[cfg(feature = "calls")]
    fn calls_section(&self, query: &str, q: &Query, now_ms: i64) -> String {
        let Some(calls) = &self.calls else { return String::new() };
        let after = Some(param(query, "calls_after")).filter(|a| !a.is_empty());
        let back = q.to_query(q.status, q.after);
        let read = calls.page(after.as_deref().map(|a| crate::escape::clip(a, MAX_CURSOR).0), crate::query::DEFAULT_PAGE);
        let (views, next, error) = match read {
            Ok((page, next)) => (page.iter().map(crate::calls::CallView::of).collect(), next, None),
            Err(e) => (Vec::new(), None, Some(e.to_string())),
        };
        crate::calls::section(&crate::calls::CallsSection { calls: &views, next: next.as_deref(), later: after.is_some(), error: error.as_deref(), back: &back, now_ms })
    }

    #[cfg(not(feature = "calls"))]
    #[allow(clippy::unused_self)]
    fn calls_section(&self, _: &str, _: &Query, _: i64) -> String {
        String::new()
    }

    /// Cancels call `id`: its new state, `null` once gone.
    #[cfg(feature = "calls")]
    async fn cancel_call(&self, id: &str, form: bool, body: &str) -> Result<Response> {
        let Some(calls) = &self.calls else { return error(404, "no calls on this board") };
        let view = |calls: &dyn crate::calls::CallsSource| calls.get(id).map(|c| c.as_ref().map(crate::calls::CallView::of));
        match calls.cancel(id).await {
            Ok(false) => error(404, "no such call"),
            Ok(true) if form => back_to(body, "../../"),
            Ok(true) => match view(&**calls) {
                Ok(call) => json(&serde_json::json!({ "call": call })),
                Err(e) => error(500, &e.to_string()),
            },
            Err(e) => Ok(json(&serde_json::json!({ "error": e.to_string(), "call": view(&**calls).ok().flatten() }))?.with_status(500)),
        }
    }

    /// A state-changing route: refused across sites; otherwise the action, answered with the
    /// task's new state (or, for the page's forms, a redirect back to it).
    async fn act(&self, req: &Request, url: &worker::Url, op: &str) -> Result<Response> {
        let headers = req.headers();
        let host = headers.get("host")?.or_else(|| url.host_str().map(|h| format!("{h}{}", url.port().map(|p| format!(":{p}")).unwrap_or_default()))).unwrap_or_default();
        if !same_origin(headers.get("sec-fetch-site")?.as_deref(), headers.get("origin")?.as_deref(), &host) {
            return error(403, "cross-site request refused");
        }
        let form = headers.get("content-type")?.is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        let body = if form { req.clone()?.text().await? } else { String::new() };
        let id = Some(param(&body, "id")).filter(|s| !s.is_empty()).unwrap_or_else(|| param(url.query().unwrap_or(""), "id"));
        let alarms = &self.alarms;
        #[cfg(feature = "calls")]
        if op == "calls/cancel" {
            return self.cancel_call(&id, form, &body).await;
        }
        let outcome = match op {
            "cancel" => alarms.cancel(&id).and_then(|t| t.map(|_| None).ok_or_else(|| Error::NotFound(id.clone()))),
            "run_now" => alarms.run_now(&id).await.map(Some),
            "pause" => alarms.pause(&id).map(Some),
            "resume" => alarms.resume(&id).await.map(Some),
            "requeue" => alarms.requeue(&id).await.map(Some),
            "requeue_dead" => {
                let n = alarms.requeue_dead(&Filter::default().status(Status::Dead)).await;
                return match n {
                    Ok(_) if form => back(&body),
                    Ok(n) => json(&serde_json::json!({ "requeued": n, "counts": counts(&alarms.counts().map_err(|e| worker::Error::RustError(e.to_string()))?) })),
                    Err(e) => lib_error(&e),
                };
            }
            _ => return error(404, "no such action"),
        };
        match outcome {
            Ok(_) if form => back(&body),
            Ok(task) => json(&serde_json::json!({ "task": task.as_ref().map(TaskView::of) })),
            Err(e) => lib_error(&e),
        }
    }
}

/// The longest cursor of calls kept (lumenize-call's ids are at most 512 bytes).
#[cfg(feature = "calls")]
const MAX_CURSOR: usize = 512;

/// The most rows one filtered page reads, looking for tasks of a kind or id prefix.
const MAX_SCAN: usize = 1_000;

/// A page of tasks: those that passed, how many rows were read, the next page's cursor.
type Listing = (Vec<TaskView>, usize, Option<(i64, i64)>);

fn record(ring: &RefCell<Ring>, event: &lumenize_alarms::core::Event<'_>) {
    if let (Some(seen), Ok(mut ring)) = (Seen::of(event, now_ms()), ring.try_borrow_mut()) {
        ring.push(seen);
    }
}

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

/// The first value of `key` in a query string or form body.
fn param(query: &str, key: &str) -> String {
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned()).unwrap_or_default()
}

fn counts(c: &lumenize_alarms::Counts) -> serde_json::Value {
    serde_json::json!({ "pending": c.pending, "running": c.running, "paused": c.paused, "dead": c.dead })
}

/// Headers every answer carries: not cached, not sniffed, not framed, no referrer.
fn secure_headers() -> Result<Headers> {
    let h = Headers::new();
    h.set("cache-control", "no-store")?;
    h.set("x-content-type-options", "nosniff")?;
    h.set("x-frame-options", "DENY")?;
    h.set("referrer-policy", "no-referrer")?;
    h.set("content-security-policy", "default-src 'none'; frame-ancestors 'none'")?;
    Ok(h)
}

fn merge(h: Headers, key: &str, value: &str) -> Result<Headers> {
    h.set(key, value)?;
    Ok(h)
}

fn json(value: &impl Serialize) -> Result<Response> {
    Ok(Response::from_json(value)?.with_headers(merge(secure_headers()?, "content-type", "application/json")?))
}

fn error(status: u16, message: &str) -> Result<Response> {
    Ok(json(&serde_json::json!({ "error": message }))?.with_status(status))
}

fn lib_error(e: &Error) -> Result<Response> {
    let status = match e {
        Error::NotFound(_) => 404,
        Error::NotDead(_) | Error::WrongStatus { .. } | Error::Unreadable { .. } => 409,
        _ => 500,
    };
    Ok(json(&serde_json::json!({ "error": e.to_string() }))?.with_status(status))
}

/// Back to the page the form was on (its filters re-read, so nothing else is reflected).
fn back(body: &str) -> Result<Response> {
    back_to(body, "../")
}

/// [`back`] from a route `up` below the page (`../` for `api/<op>`).
fn back_to(body: &str, up: &str) -> Result<Response> {
    let q = Query::parse(&param(body, "back"));
    let h = secure_headers()?;
    h.set("location", &format!("{up}?{}", q.to_query(q.status, q.after)))?;
    Ok(Response::empty()?.with_status(303).with_headers(h))
}
