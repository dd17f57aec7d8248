//! The page: one self-contained HTML document (inline CSS under a nonce, no script, no
//! external asset), drawn on the server from bounded inputs. Every stored string goes
//! through [`html`].

use std::fmt::Write;

use chrono::{DateTime, Datelike, Timelike, Utc};
use lumenize_alarms::{Counts, Schedule, Status};

use crate::escape::html;
use crate::events::Seen;
use crate::query::Query;
use crate::view::TaskView;

/// The most recent events the page lists (`api/events` has all those kept).
const EVENTS_SHOWN: usize = 15;

/// What one page shows.
pub(crate) struct PageData<'a> {
    /// The section of pending calls, drawn already (empty without calls).
    pub(crate) calls: &'a str,
    pub(crate) now_ms: i64,
    pub(crate) counts: Counts,
    pub(crate) query: &'a Query,
    /// The tasks that passed, of the rows read.
    pub(crate) tasks: &'a [TaskView],
    /// How many rows the page read.
    pub(crate) read: usize,
    /// The cursor of the next page, if the read was full.
    pub(crate) next: Option<(i64, i64)>,
    /// Recent events, newest first.
    pub(crate) events: &'a [&'a Seen],
    /// Lateness of recent starts, oldest first.
    pub(crate) lateness: &'a [i64],
    /// The nonce the Content-Security-Policy allows the stylesheet under.
    pub(crate) nonce: &'a str,
}

/// A Unix-millisecond time as `2026-12-04 18:50:01.250Z`.
pub(crate) fn time(ms: i64) -> String {
    // Fields rather than `format`: chrono's format strings cost the worker about 100 KB.
    DateTime::from_timestamp_millis(ms).map_or_else(|| format!("{ms} ms"), |t| format!("{} {}.{:03}Z", date(&t), clock(&t), t.timestamp_subsec_millis()))
}

/// `2026-12-04`.
fn date(t: &DateTime<Utc>) -> String {
    format!("{:04}-{:02}-{:02}", t.year(), t.month(), t.day())
}

/// `18:50:01`.
fn clock(t: &DateTime<Utc>) -> String {
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
}

/// A duration in milliseconds, short: `850 ms`, `12.5 s`, `3 min`, `2 h`, `4 d`.
pub(crate) fn duration(ms: i64) -> String {
    let a = ms.unsigned_abs();
    match a {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{}.{} s", ms / 1_000, (ms % 1_000).abs() / 100),
        60_000..=3_599_999 => format!("{} min", ms / 60_000),
        3_600_000..=86_399_999 => format!("{} h", ms / 3_600_000),
        _ => format!("{} d", ms / 86_400_000),
    }
}

/// `in 5 s` or `3 min ago`.
pub(crate) fn relative(ms: i64, now_ms: i64) -> String {
    let d = ms.saturating_sub(now_ms);
    if d >= 0 {
        format!("in {}", duration(d))
    } else {
        format!("{} ago", duration(d.saturating_neg()))
    }
}

fn schedule(s: &Schedule) -> String {
    match s {
        Schedule::Once => "once".into(),
        Schedule::Cron { expr, zone } => format!("cron <code>{}</code> {}", html(expr), html(zone.as_deref().unwrap_or("UTC"))),
        Schedule::Every { interval_ms } => format!("every {}", duration(*interval_ms)),
        other => html(&format!("{other:?}")),
    }
}

/// The buttons for a task in `status`: each a form that POSTs to `api/<op>`.
fn actions(t: &TaskView, back: &str) -> String {
    let ops: &[(&str, &str)] = match t.status {
        Status::Pending => &[("run_now", "Run now"), ("pause", "Pause"), ("cancel", "Cancel")],
        Status::Paused => &[("resume", "Resume"), ("run_now", "Run now"), ("cancel", "Cancel")],
        Status::Dead => &[("requeue", "Requeue"), ("cancel", "Cancel")],
        _ => &[("cancel", "Cancel")],
    };
    let mut out = String::new();
    for (op, label) in ops {
        let _ = write!(
            out,
            r#"<form method="post" action="api/{op}"><input type="hidden" name="id" value="{}"><input type="hidden" name="back" value="{}"><button class="{op}" data-op="{op}">{label}</button></form>"#,
            html(&t.id),
            html(back)
        );
    }
    out
}

/// The whole page.
pub(crate) fn render(d: &PageData<'_>) -> String {
    let q = d.query;
    let back = q.to_query(q.status, q.after);
    let mut s = String::with_capacity(16_384 + d.tasks.len() * 1_024);
    let _ = write!(s, r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer"><title>lumenize board</title><style nonce="{}">{CSS}</style></head><body>"#, html(d.nonce));
    let _ = write!(s, r#"<header><h1>lumenize board</h1><span class="muted">{}</span></header><main>"#, html(&time(d.now_ms)));

    // Tabs by status, with counts read without reading rows.
    let c = d.counts;
    s.push_str(r#"<nav class="tabs">"#);
    for (status, label, n) in [(None, "All", c.total()), (Some(Status::Pending), "Pending", c.pending), (Some(Status::Running), "Running", c.running), (Some(Status::Paused), "Paused", c.paused), (Some(Status::Dead), "Dead", c.dead)] {
        let current = if status == q.status { r#" class="current""# } else { "" };
        let _ = write!(s, r#"<a href="?{}"{current} data-status="{}">{label} <b>{n}</b></a>"#, html(&q.to_query(status, None)), status.map_or("all", Status::as_str));
    }
    s.push_str("</nav>");

    // Filters: a GET form (the status travels as a hidden field).
    let value = |v: &Option<String>| v.as_deref().map(html).unwrap_or_default();
    let at = |v: Option<i64>| v.and_then(DateTime::from_timestamp_millis).map(|t| format!("{}T{}", date(&t), clock(&t))).unwrap_or_default();
    let _ = write!(
        s,
        r#"<form class="filters" method="get" action="">{}<label>Kind <input name="kind" value="{}" placeholder="enum variant"></label><label>Id prefix <input name="prefix" value="{}"></label><label>Due from (UTC) <input type="datetime-local" step="1" name="from" value="{}"></label><label>before <input type="datetime-local" step="1" name="before" value="{}"></label><button>Filter</button></form>"#,
        q.status.map(|st| format!(r#"<input type="hidden" name="status" value="{}">"#, st.as_str())).unwrap_or_default(),
        value(&q.kind),
        value(&q.prefix),
        at(q.from),
        at(q.before)
    );
    if c.dead > 0 {
        let _ = write!(s, r#"<form class="bulk" method="post" action="api/requeue_dead"><input type="hidden" name="back" value="{}"><button class="requeue" data-op="requeue_dead">Requeue all {} dead</button></form>"#, html(&back), c.dead);
    }

    // The tasks.
    s.push_str(r#"<table class="tasks"><thead><tr><th>Task</th><th>Schedule</th><th>Status</th><th>Due</th><th>Attempts</th><th>Payload</th><th>Last error</th><th></th></tr></thead><tbody>"#);
    if d.tasks.is_empty() {
        s.push_str(r#"<tr><td colspan="8" class="muted empty">No tasks here.</td></tr>"#);
    }
    for t in d.tasks {
        let next = if t.schedule == Schedule::Once {
            String::new()
        } else {
            // In the task's zone when the board can tell (the `timezone` feature), UTC beside it.
            let runs: String = t
                .next_runs
                .iter()
                .enumerate()
                .map(|(i, &ms)| match t.next_runs_local.get(i) {
                    Some(local) => format!(r#"<li>{} <span class="muted">{}</span></li>"#, html(local), html(&time(ms))),
                    None => format!("<li>{}</li>", html(&time(ms))),
                })
                .collect();
            format!(r#"<details class="next"><summary>next runs</summary><ol>{runs}</ol></details>"#)
        };
        let _ = write!(
            s,
            r#"<tr data-id="{id}" data-status="{st}"><td><div class="id">{id}</div><div class="kind">{kind}</div></td><td>{sched}</td><td><span class="badge {st}">{st}</span></td><td class="nowrap"><div title="{due_ms}">{due}</div><div class="muted">{rel}</div>{next}</td><td>{att} / {max}</td><td><div class="muted">{bytes} B</div><code class="payload">{preview}{cut}</code></td><td class="error">{err}</td><td class="actions">{actions}</td></tr>"#,
            id = html(&t.id),
            kind = t.kind.as_deref().map(html).unwrap_or_default(),
            sched = schedule(&t.schedule),
            st = t.status.as_str(),
            due_ms = t.due_ms,
            due = html(&time(t.due_ms)),
            rel = html(&relative(t.due_ms, d.now_ms)),
            att = t.attempts,
            max = t.max_attempts,
            bytes = t.payload_bytes,
            preview = html(&t.payload_preview),
            cut = if t.payload_cut { "…" } else { "" },
            err = t.last_error.as_deref().map(html).unwrap_or_default(),
            actions = actions(t, &back),
        );
    }
    s.push_str("</tbody></table>");
    let _ = write!(s, r#"<p class="pager muted">{} tasks shown"#, d.tasks.len());
    if d.read != d.tasks.len() {
        let _ = write!(s, " (of {} looked at)", d.read);
    }
    if q.after.is_some() {
        let _ = write!(s, r#" · <a href="?{}">first page</a>"#, html(&q.to_query(q.status, None)));
    }
    if let Some(next) = d.next {
        let _ = write!(s, r#" · <a href="?{}" class="next-page">next page →</a>"#, html(&q.to_query(q.status, Some(next))));
    }
    s.push_str("</p>");
    s.push_str(d.calls);

    // Lateness and events, side by side.
    let _ = write!(s, r#"<section class="side"><div><h2>Lateness of recent starts</h2>{}</div><div><h2>Recent events</h2><table class="events"><tbody>"#, crate::chart::lateness_svg(d.lateness));
    if d.events.is_empty() {
        s.push_str(r#"<tr><td class="muted">Nothing yet: events are kept from the moment the board is mounted.</td></tr>"#);
    }
    for e in d.events.iter().take(EVENTS_SHOWN) {
        let detail = match (e.lateness_ms, e.error.as_deref(), e.next_ms) {
            (Some(l), _, _) => format!("{} late", duration(l)),
            (_, Some(err), _) => html(err),
            (_, _, Some(n)) => format!("next {}", html(&time(n))),
            _ => String::new(),
        };
        let clock = time(e.at_ms);
        let _ = write!(s, r#"<tr><td class="muted nowrap" title="{}">{}</td><td><span class="badge ev-{k}">{k}</span></td><td class="id">{}</td><td class="detail">{detail}</td></tr>"#, html(&clock), html(clock.get(11..23).unwrap_or(&clock)), html(&e.task_id), k = e.kind);
    }
    if d.events.len() > EVENTS_SHOWN {
        let _ = write!(s, r#"<tr><td colspan="4" class="muted">{} more in <code>api/events</code></td></tr>"#, d.events.len() - EVENTS_SHOWN);
    }
    s.push_str("</tbody></table></div></section></main></body></html>");
    s
}

const CSS: &str = "
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2330;background:#f5f6f8}
header{display:flex;align-items:baseline;gap:16px;padding:14px 24px;background:#1d2330;color:#fff}h1{font-size:18px;margin:0;font-weight:600}
header .muted{color:#aab2c0}main{padding:16px 24px}h2{font-size:15px;margin:20px 0 8px}
.muted{color:#6b7385}.tabs{display:flex;gap:6px;margin-bottom:12px}.tabs a{padding:6px 12px;border-radius:6px;background:#fff;border:1px solid #d9dde4;color:#1d2330;text-decoration:none}
.tabs a.current{background:#2f6fed;border-color:#2f6fed;color:#fff}.filters{display:flex;flex-wrap:wrap;gap:12px;align-items:end;margin-bottom:12px}
.filters label{display:flex;flex-direction:column;font-size:12px;color:#6b7385}.filters input{font:inherit;padding:4px 6px;border:1px solid #c8ccd4;border-radius:4px}
button{font:inherit;font-size:12px;padding:3px 9px;border-radius:4px;border:1px solid #c8ccd4;background:#fff;cursor:pointer}button:hover{background:#eef2fb}
button.cancel{color:#b42318}button.requeue,button.run_now,button.resume{color:#1d5bd6}.bulk{margin-bottom:12px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #e1e4ea;border-radius:6px}th{text-align:left;font-size:12px;color:#6b7385;font-weight:600;background:#fafbfc}
th,td{padding:7px 10px;border-bottom:1px solid #eef0f3;vertical-align:top}.id{font-family:ui-monospace,Menlo,monospace;font-size:12px;word-break:break-all;max-width:260px}
.kind{font-weight:600}code{font-family:ui-monospace,Menlo,monospace;font-size:12px}.payload{display:block;max-width:300px;white-space:pre-wrap;word-break:break-all;color:#444b5a}
.error{color:#b42318;max-width:260px;word-break:break-word;white-space:pre-wrap;font-size:12px}.actions form{display:inline-block;margin:0 4px 4px 0}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;background:#e7eaf0}.badge.pending{background:#e3edff;color:#1d4fb8}.badge.running{background:#fff2d6;color:#8a5a00}
.badge.paused{background:#ecebf7;color:#4b3fa6}.badge.awaiting{background:#e3edff;color:#1d4fb8}.badge.delivering{background:#fff2d6;color:#8a5a00}.badge.quarantined{background:#fde4e1;color:#b42318}.badge.dead{background:#fde4e1;color:#b42318}.ev-succeeded{background:#dff5e6;color:#17693a}.ev-dead,.ev-cut_short{background:#fde4e1;color:#b42318}.ev-retrying{background:#fff2d6;color:#8a5a00}
.next summary{cursor:pointer;color:#1d5bd6;font-size:12px}.next ol{margin:4px 0 0;padding-left:18px;font-size:12px}.empty{padding:18px}.pager{margin:8px 0}
.chart{background:#fff;border:1px solid #e1e4ea;border-radius:6px;padding:6px;max-width:100%;height:auto}.chart .bar{fill:#2f6fed}.chart text{font-size:11px;fill:#6b7385}
.events td{font-size:12px;padding:4px 8px}.events .id{max-width:300px}.events .detail{color:#444b5a;max-width:380px;word-break:break-word}
.side{display:grid;grid-template-columns:minmax(0,620px) minmax(0,1fr);gap:24px;align-items:start}.nowrap{white-space:nowrap}.next li{white-space:nowrap}
";

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: [&str; 5] = ["<script>alert(1)</script>", r#""><img src=x onerror=alert(1)>"#, "</script><script>alert(2)</script>", "x\u{202e}txt.exe\u{0}\u{1b}", "' onmouseover='alert(3)"];

    fn task(id: &str) -> TaskView {
        TaskView {
            id: id.into(),
            kind: Some(id.into()),
            schedule: Schedule::Cron { expr: id.into(), zone: Some(id.into()) },
            status: Status::Dead,
            due_ms: 1_800_000_000_000,
            attempts: 3,
            max_attempts: 3,
            last_error: Some(id.into()),
            payload_bytes: id.len(),
            payload_preview: id.into(),
            payload_cut: false,
            next_runs: vec![1_800_000_000_000, 1_800_000_060_000],
            next_runs_local: Vec::new(),
            cursor: "1.2".into(),
            key: (1, 2),
        }
    }

    fn page(tasks: &[TaskView], events: &[&Seen], query: &Query) -> String {
        let mut counts = Counts::default();
        (counts.pending, counts.dead) = (1, 4);
        render(&PageData { calls: "", now_ms: 1_799_999_000_000, counts, query, tasks, read: tasks.len(), next: Some((5, 6)), events, lateness: &[3, 40, 7], nonce: "n0nce" })
    }

    #[test]
    fn hostile_strings_render_as_text() {
        let tasks: Vec<TaskView> = HOSTILE.iter().map(|h| task(h)).collect();
        let seen: Vec<Seen> = HOSTILE.iter().map(|h| Seen { at_ms: 0, kind: "dead", task_id: (*h).into(), lateness_ms: None, error: Some((*h).into()), next_ms: None }).collect();
        let events: Vec<&Seen> = seen.iter().collect();
        let query = Query::parse(&format!("kind={}&prefix={}", url::form_urlencoded::byte_serialize(HOSTILE[1].as_bytes()).collect::<String>(), url::form_urlencoded::byte_serialize(HOSTILE[0].as_bytes()).collect::<String>()));
        let html = page(&tasks, &events, &query);
        // The only elements are the page's own: no script, no img, no injected attribute.
        assert!(!html.to_lowercase().contains("<script"), "{html}");
        assert!(!html.contains("<img"));
        assert!(!html.contains("\"><img") && !html.contains("onerror=alert(1)>"));
        assert!(!html.contains("' onmouseover"));
        assert!(!html.contains('\u{202e}') && !html.contains('\u{0}') && !html.contains('\u{1b}'));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("x\\u{202e}txt.exe\\u{0}\\u{1b}"));
        assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"), "shown as text");
    }

    #[test]
    fn the_page_shows_tasks_actions_next_runs_and_paging() {
        let mut paused = task("p");
        paused.status = Status::Paused;
        let q = Query::parse("status=paused");
        let html = page(&[paused], &[], &q);
        assert!(html.contains(r#"action="api/resume""#) && html.contains(r#"action="api/cancel""#) && !html.contains(r#"action="api/pause""#));
        assert!(html.contains("<li>2027-01-15 08:01:00.000Z</li>"), "next runs after the due time");
        let mut zoned = task("z");
        zoned.next_runs_local = vec!["2027-01-15 09:00:00 CET +01:00".into(), "2027-01-15 09:01:00 CET +01:00".into()];
        let html = page(&[zoned], &[], &q);
        assert!(html.contains(r#"<li>2027-01-15 09:01:00 CET +01:00 <span class="muted">2027-01-15 08:01:00.000Z</span></li>"#), "in the task's zone, UTC beside it");
        assert!(html.contains(r#"href="?status=paused&amp;after=5.6""#), "next page keeps the status");
        assert!(html.contains(r#"<style nonce="n0nce">"#));
        assert!(html.contains("Requeue all 4 dead"));
    }

    #[test]
    fn durations_and_times() {
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(12_500), "12.5 s");
        assert_eq!(duration(-180_000), "-3 min");
        assert_eq!(duration(i64::MIN), format!("{} d", i64::MIN / 86_400_000));
        assert_eq!(time(0), "1970-01-01 00:00:00.000Z");
        assert_eq!(time(i64::MAX), format!("{} ms", i64::MAX));
        assert_eq!(relative(0, i64::MAX), format!("{} ago", duration(i64::MAX)));
    }
}
