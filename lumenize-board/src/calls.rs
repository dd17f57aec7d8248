//! The pending calls of lumenize-call (feature `calls`): a type-erased handle over the
//! object's [`Calls`], the call as the board shows it, and its section of the page.

use std::fmt::Write;
use std::future::Future;
use std::pin::Pin;

use lumenize_call::{CallId, CallState, Calls, Continuations, Dispatch, Object, PendingCall};
use serde::Serialize;

use crate::escape::{clip, html};
use crate::page::{relative, time};
use crate::view::{variant, ERROR_CHARS, PREVIEW_CHARS};

/// The most characters of a target's binding or object shown (lumenize-call stores at most
/// 512 bytes of each; a row written by hand may hold more).
const TARGET_CHARS: usize = 512;

/// What the board needs of an object's [`Calls`], whatever its continuations: `Calls<L>`
/// is generic over them, the board is not.
pub(crate) trait CallsSource {
    /// A page of pending calls and the next page's cursor ([`Calls::pending_page`]).
    fn page(&self, after: Option<&str>, limit: usize) -> lumenize_call::Result<(Vec<PendingCall>, Option<String>)>;
    /// One pending call ([`Calls::get`]).
    fn get(&self, id: &str) -> lumenize_call::Result<Option<PendingCall>>;
    /// Cancels a call; whether it was pending ([`Calls::cancel`]).
    fn cancel<'a>(&'a self, id: &'a str) -> Pin<Box<dyn Future<Output = lumenize_call::Result<bool>> + 'a>>;
}

impl<L: Continuations> CallsSource for Calls<L> {
    fn page(&self, after: Option<&str>, limit: usize) -> lumenize_call::Result<(Vec<PendingCall>, Option<String>)> {
        let (calls, next) = self.pending_page(after.map(CallId::from).as_ref(), limit)?;
        Ok((calls, next.map(|id| id.to_string())))
    }

    fn get(&self, id: &str) -> lumenize_call::Result<Option<PendingCall>> {
        Calls::get(self, &CallId::from(id))
    }

    fn cancel<'a>(&'a self, id: &'a str) -> Pin<Box<dyn Future<Output = lumenize_call::Result<bool>> + 'a>> {
        let id = CallId::from(id);
        Box::pin(async move { Calls::cancel(self, &id).await })
    }
}

/// One pending call, as the JSON API answers it and the page shows it: bounded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct CallView {
    pub(crate) id: String,
    /// The target's binding.
    pub(crate) binding: String,
    /// `name` or `id`: how the target object is addressed.
    pub(crate) object_by: &'static str,
    /// The target object's name or hex id.
    pub(crate) object: String,
    /// The operation's name ([`Operation::NAME`](lumenize_call::Operation::NAME)), while
    /// the operation is stored (it is dropped once the result is in).
    pub(crate) operation: Option<String>,
    /// The size of the operation's JSON.
    pub(crate) operation_bytes: usize,
    /// The first [`PREVIEW_CHARS`] characters of the operation's JSON.
    pub(crate) operation_preview: String,
    pub(crate) operation_cut: bool,
    pub(crate) dispatch: Dispatch,
    pub(crate) state: CallState,
    /// Transient failures so far.
    pub(crate) failures: u32,
    pub(crate) last_error: Option<String>,
    pub(crate) deadline_ms: Option<i64>,
    pub(crate) created_ms: i64,
    /// Why its row does not decode (quarantined calls).
    pub(crate) unreadable: Option<String>,
}

fn clipped(s: &str, max: usize) -> String {
    let (s, cut) = clip(s, max);
    if cut {
        format!("{s}…")
    } else {
        s.to_owned()
    }
}

impl CallView {
    pub(crate) fn of(call: &PendingCall) -> CallView {
        let op = call.op.as_ref().map(|op| serde_json::to_string(op).unwrap_or_default()).unwrap_or_default();
        let (preview, cut) = clip(&op, PREVIEW_CHARS);
        let (object_by, object) = match &call.target.object {
            Object::Name(name) => ("name", name.as_str()),
            Object::Id(hex) => ("id", hex.as_str()),
            _ => ("object", ""),
        };
        CallView {
            id: call.id.to_string(),
            binding: clipped(&call.target.binding, TARGET_CHARS),
            object_by,
            object: clipped(object, TARGET_CHARS),
            operation: variant(&op),
            operation_bytes: op.len(),
            operation_preview: preview.to_owned(),
            operation_cut: cut,
            dispatch: call.dispatch,
            state: call.state(),
            failures: call.failures,
            last_error: call.last_error.as_deref().map(|e| clip(e, ERROR_CHARS).0.to_owned()),
            deadline_ms: call.deadline_ms,
            created_ms: call.created_ms,
            unreadable: call.unreadable.as_deref().map(|e| clip(e, ERROR_CHARS).0.to_owned()),
        }
    }
}

/// What the page's section of calls shows: a page of them, or why they could not be read.
pub(crate) struct CallsSection<'a> {
    pub(crate) calls: &'a [CallView],
    /// The `calls_after` of the next page, if this one is full.
    pub(crate) next: Option<&'a str>,
    /// Whether this is a later page (`calls_after` was given).
    pub(crate) later: bool,
    /// Why the calls could not be read (lumenize-call did not open, a storage error).
    pub(crate) error: Option<&'a str>,
    /// The page's own query string (its task filters), for the links and the forms' way back.
    pub(crate) back: &'a str,
    pub(crate) now_ms: i64,
}

fn dispatch(d: Dispatch) -> &'static str {
    match d {
        Dispatch::Direct => "direct",
        Dispatch::Alarm => "alarm",
        _ => "other",
    }
}

/// The section of the page: a table of pending calls with a Cancel button each.
pub(crate) fn section(d: &CallsSection<'_>) -> String {
    let mut s = String::with_capacity(2_048 + d.calls.len() * 1_024);
    s.push_str(r#"<h2 id="calls">Pending calls</h2>"#);
    if let Some(e) = d.error {
        let _ = write!(s, r#"<p class="error calls-error">The calls could not be read: {}</p>"#, html(e));
        return s;
    }
    s.push_str(r#"<table class="calls"><thead><tr><th>Call</th><th>Target</th><th>State</th><th>Dispatch</th><th>Failures</th><th>Deadline</th><th>Made</th><th>Operation</th><th>Last error</th><th></th></tr></thead><tbody>"#);
    if d.calls.is_empty() {
        s.push_str(r#"<tr><td colspan="10" class="muted empty">No pending calls.</td></tr>"#);
    }
    for c in d.calls {
        let deadline = c.deadline_ms.map_or_else(
            || r#"<span class="muted">none</span>"#.to_owned(),
            |ms| format!(r#"<div title="{ms}">{}</div><div class="muted">{}</div>"#, html(&time(ms)), html(&relative(ms, d.now_ms))),
        );
        let operation = match (&c.operation, c.state) {
            (_, CallState::Quarantined) => String::new(),
            (None, _) => r#"<span class="muted">result in</span>"#.to_owned(),
            (Some(name), _) => format!(
                r#"<div class="kind">{}</div><div class="muted">{} B</div><code class="payload">{}{}</code>"#,
                html(name),
                c.operation_bytes,
                html(&c.operation_preview),
                if c.operation_cut { "…" } else { "" }
            ),
        };
        let error = [c.unreadable.as_deref(), c.last_error.as_deref()].into_iter().flatten().map(html).collect::<Vec<_>>().join("\n");
        let _ = write!(
            s,
            r#"<tr data-id="{id}" data-state="{st}"><td class="id">{id}</td><td><div class="kind">{binding}</div><div class="muted">{by} <span class="id">{object}</span></div></td><td><span class="badge {st}">{st}</span></td><td>{dispatch}</td><td>{failures}</td><td class="nowrap">{deadline}</td><td class="nowrap"><div title="{created_ms}">{created}</div></td><td>{operation}</td><td class="error">{error}</td><td class="actions"><form method="post" action="api/calls/cancel"><input type="hidden" name="id" value="{id}"><input type="hidden" name="back" value="{back}"><button class="cancel" data-op="cancel_call">Cancel</button></form></td></tr>"#,
            id = html(&c.id),
            st = c.state.as_str(),
            binding = html(&c.binding),
            by = c.object_by,
            object = html(&c.object),
            dispatch = dispatch(c.dispatch),
            failures = c.failures,
            created_ms = c.created_ms,
            created = html(&time(c.created_ms)),
            back = html(d.back),
        );
    }
    s.push_str("</tbody></table>");
    let _ = write!(s, r#"<p class="pager muted">{} calls shown"#, d.calls.len());
    let sep = if d.back.is_empty() { "" } else { "&amp;" };
    if d.later {
        let _ = write!(s, r##" · <a href="?{}#calls">first page</a>"##, html(d.back));
    }
    if let Some(next) = d.next {
        let after: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
        let _ = write!(s, r##" · <a href="?{}{sep}calls_after={}#calls" class="next-calls">next calls →</a>"##, html(d.back), html(&after));
    }
    s.push_str("</p>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use lumenize_call::{CallError, Target};
    use serde_json::json;

    const HOSTILE: [&str; 5] = ["<script>alert(1)</script>", r#""><img src=x onerror=alert(1)>"#, "</script><script>alert(2)</script>", "x\u{202e}txt.exe\u{0}\u{1b}", "' onmouseover='alert(3)"];

    fn pending(s: &str) -> PendingCall {
        lumenize_call::core::new_call(s.into(), Target::named(s, s), json!({ "op": { "key": s } }), json!({ "then": s }), &lumenize_call::CallOptions::default(), 1_800_000_000_000)
            .map(|(mut c, _)| {
                c.last_error = Some(s.into());
                c
            })
            .expect("a call")
    }

    fn page(calls: &[CallView], next: Option<&str>) -> String {
        section(&CallsSection { calls, next, later: true, error: None, back: "status=dead", now_ms: 1_800_000_000_000 })
    }

    #[test]
    fn hostile_strings_render_as_text() {
        let views: Vec<CallView> = HOSTILE.iter().map(|h| CallView::of(&pending(h))).collect();
        let html = page(&views, Some(HOSTILE[1]));
        assert!(!html.to_lowercase().contains("<script"), "{html}");
        assert!(!html.contains("<img") && !html.contains("onerror=alert(1)>"));
        assert!(!html.contains("' onmouseover"));
        assert!(!html.contains('\u{202e}') && !html.contains('\u{0}') && !html.contains('\u{1b}'));
        assert!(html.contains("x\\u{202e}txt.exe"), "shown as what it is");
        let error = section(&CallsSection { calls: &[], next: None, later: false, error: Some(HOSTILE[0]), back: "", now_ms: 0 });
        assert!(!error.contains("<script"), "{error}");
    }

    #[test]
    fn a_call_shows_its_state_target_operation_and_a_cancel_button() {
        let mut c = pending("abc");
        c.failures = 2;
        let v = CallView::of(&c);
        assert_eq!((v.state, v.operation.as_deref(), v.binding.as_str(), v.object_by, v.object.as_str()), (CallState::Awaiting, Some("op"), "abc", "name", "abc"));
        let html = page(std::slice::from_ref(&v), Some("abc"));
        assert!(html.contains(r#"<tr data-id="abc" data-state="awaiting">"#), "{html}");
        assert!(html.contains(r#"action="api/calls/cancel""#) && html.contains(r#"name="id" value="abc""#));
        assert!(html.contains(r#"<td>2</td>"#), "failures");
        assert!(html.contains(r##"href="?status=dead&amp;calls_after=abc#calls""##), "{html}");
        assert!(html.contains("2027-01-15 08:00:00.000Z"), "made");
        // The result in: the operation is gone, the state says so.
        c.result = Some(Err(CallError::Cancelled));
        c.op = None;
        let v = CallView::of(&c);
        assert_eq!((v.state, v.operation, v.operation_bytes), (CallState::Delivering, None, 0));
        // Bounded: a long operation is cut.
        let long = lumenize_call::core::new_call("l".into(), Target::named("B", "o"), json!({ "op": "x".repeat(10_000) }), json!(1), &lumenize_call::CallOptions::default(), 0).expect("a call").0;
        let v = CallView::of(&long);
        assert!(v.operation_cut && v.operation_preview.chars().count() == PREVIEW_CHARS && v.operation_bytes > 10_000);
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!((json["state"].as_str(), json["dispatch"].as_str()), (Some("awaiting"), Some("direct")));
    }
}
