//! One request of a chaos run: built from the plan's [`Op`] and the model (which turns the
//! tasks the plan names into ids, and reads the clock for absolute times), sent, and its
//! answer taken into the model.

use serde_json::{json, Value};

use crate::chaos::invalid::MAX_TIME_MS;
use crate::chaos::model::{End, Expect, Model, Outcome, Request, Task, MAX_ATTEMPTS};
use crate::chaos::plan::{Burst, Handler, Many, Op, Retry, Schedule, TaskRef, When, FAR_MS};
use crate::chaos::wire::Stored;
use crate::chaos::now_ms;
use crate::http::Client;
use crate::Error;

/// The typed refusals of `requeue` the driver cannot foresee (it does not know whether a
/// task is dead at that moment).
const REQUEUE_REFUSALS: &[&str] = &["is not dead, so it cannot be requeued", "no task with id"];

/// A request ready to send.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) step: u64,
    pub(crate) object: usize,
    pub(crate) route: &'static str,
    pub(crate) body: String,
    pub(crate) what: String,
    pub(crate) expect: Expect,
    effect: Effect,
}

/// What the answer means for the model.
#[derive(Debug, Clone)]
enum Effect {
    /// Task `task` (already in the model) was scheduled as `when` said.
    Schedule { task: usize, when: Due, id: Option<String>, keep_existing: bool },
    /// Tasks `first .. first + n` were scheduled in one burst.
    Burst { first: usize, n: u32 },
    /// Tasks `first .. first + n` were scheduled in one `schedule_many` under `ids`; those
    /// at `stored` are the ones that must be stored.
    Many { first: usize, n: u32, ids: Vec<String>, stored: Vec<usize> },
    /// A cancel of `id`.
    Cancel { id: String },
    /// A requeue of `id`.
    Requeue { id: String },
    /// A `get` or `list`: what it shows must be known.
    Inspect,
    /// Nothing to learn (the test hook, a lost alarm, an invalid input).
    None,
}

/// What the scheduling answer's due time must be.
#[derive(Debug, Clone, Copy)]
enum Due {
    /// `created_ms + delay`.
    After(i64),
    /// This time exactly.
    At(i64),
    /// A cron tick: a whole second after `created_ms`.
    Cron,
    /// `created_ms + interval`.
    Every(i64),
}

/// Builds the request of `op` for `object`, adding the tasks it asks for to the model.
pub(crate) fn prepare(model: &mut Model, step: u64, object: usize, op: &Op) -> Prepared {
    let base = |route: &'static str, what: String, body: Value, expect: Expect, effect: Effect| Prepared {
        step,
        object,
        route,
        body: body.to_string(),
        what,
        expect,
        effect,
    };
    match op {
        Op::Schedule(s) => schedule(model, step, object, s),
        Op::Burst(b) => burst(model, step, object, b),
        Op::Many(m) => many(model, step, object, m),
        Op::Cancel(target) => {
            let id = resolve(&model.objects[object], target);
            base("cancel", "cancel".into(), json!({ "id": id }), Expect::Ok, Effect::Cancel { id })
        }
        Op::Requeue(target) => {
            let id = resolve(&model.objects[object], target);
            base("requeue", "requeue".into(), json!({ "id": id }), Expect::OkOr(REQUEUE_REFUSALS), Effect::Requeue { id })
        }
        Op::Get(target) => {
            let id = resolve(&model.objects[object], target);
            base("get", "get".into(), json!({ "id": id }), Expect::Ok, Effect::Inspect)
        }
        Op::List { kind, status, due, limit } => {
            let mut body = json!({ "kind": kind, "status": status, "limit": limit });
            if let Some((from, before)) = due {
                (body["due_from"], body["due_before"]) = (json!(from), json!(before));
            }
            base("list", "list".into(), body, Expect::Ok, Effect::Inspect)
        }
        Op::RunAt { behind_ms } => {
            let at = now_ms() - i64::try_from(*behind_ms).unwrap_or(0);
            base("run_at", "run_at".into(), json!({ "now_ms": at }), Expect::Ok, Effect::None)
        }
        Op::Invalid(invalid) => {
            let label = format!("bad-s{step}");
            model.objects[object].add_invalid(label.clone());
            let mut p = base(invalid.route(), format!("invalid: {}", invalid.name()), Value::Null, Expect::Refused(invalid.expected()), Effect::None);
            p.body = invalid.body(&label);
            p
        }
    }
}

/// The request that deletes an object's alarm behind the scheduler's back.
pub(crate) fn lose_alarm(step: u64, object: usize) -> Prepared {
    Prepared { step, object, route: "lose_alarm", body: "{}".into(), what: "lose_alarm".into(), expect: Expect::Ok, effect: Effect::None }
}

/// A request that only reads (`fired`, `list`), for the drain.
pub(crate) fn read(step: u64, object: usize, route: &'static str) -> Prepared {
    let effect = if route == "list" { Effect::Inspect } else { Effect::None };
    Prepared { step, object, route, body: "{}".into(), what: format!("{route} (drain)"), expect: Expect::Ok, effect }
}

/// A zero-delay `Record` task the drain schedules to see that the object still works.
pub(crate) fn probe(model: &mut Model, step: u64, object: usize, label: &str) -> Prepared {
    model.objects[object].add_probe(label.to_owned());
    let body = json!({ "when": { "after_ms": 0 }, "task": { "type": "record", "label": label } });
    Prepared { step, object, route: "schedule", body: body.to_string(), what: "probe".into(), expect: Expect::Ok, effect: Effect::None }
}

/// A cancel the drain sends to clear what was meant to remain: the drain reads its answer
/// itself (the model keeps what it expected of the task).
pub(crate) fn drain_cancel(step: u64, object: usize, id: &str) -> Prepared {
    let body = json!({ "id": id }).to_string();
    Prepared { step, object, route: "cancel", body, what: "cancel (drain)".into(), expect: Expect::Ok, effect: Effect::None }
}

/// The id a [`TaskRef`] stands for now (an id no task has, if its step got no answer).
fn resolve(o: &crate::chaos::model::ObjectModel, target: &TaskRef) -> String {
    match target {
        TaskRef::Id(id) => id.clone(),
        TaskRef::Step { step, index } => o.id_of_step(*step, *index).map_or_else(|| format!("unknown-{step}-{index}"), str::to_owned),
    }
}

/// The sandbox payload of a handler.
fn payload(label: &str, handler: &Handler, o: &crate::chaos::model::ObjectModel) -> Value {
    match handler {
        Handler::Record => json!({ "type": "record", "label": label }),
        Handler::Fail { times } => json!({ "type": "fail", "label": label, "times": times }),
        Handler::Panic => json!({ "type": "panic", "label": label }),
        Handler::Slow { wait_ms } => json!({ "type": "slow", "label": label, "wait_ms": wait_ms }),
        Handler::Reschedule { delay_ms } => json!({ "type": "reschedule", "label": label, "delay_ms": delay_ms }),
        Handler::Spawn { count } => json!({ "type": "spawn", "label": label, "count": count }),
        Handler::Cancel { target } => json!({ "type": "cancel", "label": label, "id": resolve(o, target) }),
        Handler::Undecodable => json!({ "type": "renamed_since", "label": label }),
    }
}

fn schedule(model: &mut Model, step: u64, object: usize, s: &Schedule) -> Prepared {
    let now = now_ms();
    let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let (when, due, not_before) = match s.when {
        When::AfterMs(d) => (json!({ "after_ms": d }), Due::After(ms(d)), now + ms(d)),
        When::AtPastMs(d) => (json!({ "at_ms": now - ms(d) }), Due::At(now - ms(d)), now - ms(d)),
        When::AtEpoch => (json!({ "at_ms": 0 }), Due::At(0), 0),
        When::AtFutureMs(d) => (json!({ "at_ms": now + ms(d) }), Due::At(now + ms(d)), now + ms(d)),
        When::AtMax => (json!({ "at_ms": MAX_TIME_MS }), Due::At(MAX_TIME_MS), MAX_TIME_MS),
        When::Cron(expr) => (json!({ "cron": expr }), Due::Cron, now),
        When::EveryMs(i) => (json!({ "every_ms": i }), Due::Every(ms(i)), now + ms(i)),
    };
    let o = &mut model.objects[object];
    let mut body = json!({ "when": when, "task": payload(&s.label, &s.handler, o), "keep_existing": s.keep_existing, "burst": s.burst_missed });
    if let Some(id) = &s.id {
        body["id"] = json!(id);
        if !s.keep_existing {
            // Whatever the answer, the task under this id may be replaced from now on.
            o.touch(id);
        }
    }
    if let Some(a) = s.attempts {
        body["attempts"] = json!(a);
    }
    if let Some(b) = s.backoff_ms {
        body["backoff_ms"] = json!(b);
    }
    if let Some(r) = &s.retry {
        body["retry"] = json!(r);
    }
    if let Handler::Cancel { target } = &s.handler {
        let target = resolve(o, target);
        o.doom(&target);
    }
    let mut task = Task::new(s.label.clone(), step, s.handler.clone(), End::Succeeds, not_before);
    task.recurring = s.when.recurring();
    task.far = s.when.far();
    if let Some(a) = s.attempts {
        // The sandbox applies `backoff_ms` (default 100) only with explicit attempts, capped
        // at 8 times it.
        let backoff = s.backoff_ms.unwrap_or(100);
        (task.attempts, task.backoff_ms, task.max_backoff_ms) = (a.clamp(1, MAX_ATTEMPTS), backoff, backoff.saturating_mul(8));
    }
    if let Some(r) = &s.retry {
        apply_retry(&mut task, r);
    }
    let failures = if let Handler::Fail { times } = s.handler { times } else { 0 };
    task.end = End::of(&task, failures);
    if let When::EveryMs(i) = s.when {
        task.interval_ms = Some(ms(i));
    }
    let task = o.add(task);
    let route = if s.handler == Handler::Undecodable { "schedule_raw" } else { "schedule" };
    let what = match (s.when, &s.id) {
        (When::Cron(_), _) => "schedule cron",
        (When::EveryMs(_), _) => "schedule interval",
        (When::AtMax | When::AtEpoch, _) => "schedule at an edge",
        (When::AtPastMs(_) | When::AtFutureMs(_), None) => "schedule at a time",
        (_, Some(_)) if s.keep_existing => "schedule keep_existing",
        (_, Some(_)) => "schedule upsert",
        (When::AfterMs(_), None) => "schedule after a delay",
    };
    Prepared {
        step,
        object,
        route,
        body: body.to_string(),
        what: what.into(),
        expect: Expect::Ok,
        effect: Effect::Schedule { task, when: due, id: s.id.clone(), keep_existing: s.keep_existing },
    }
}

/// A whole retry policy, as the library keeps it (attempts in `1 ..= MAX_ATTEMPTS`; the
/// backoffs and the factor are clamped where the delays are computed, `Task::delay_after`).
fn apply_retry(task: &mut Task, r: &Retry) {
    (task.attempts, task.backoff_ms, task.max_backoff_ms, task.factor) = (r.max_attempts.clamp(1, MAX_ATTEMPTS), r.initial_backoff_ms, r.max_backoff_ms, r.factor);
}

/// `schedule_many` of far tasks under explicit ids, some repeated: each task is in the model;
/// the one stored under an id is the last that does not keep an earlier one (as one schedule
/// after another would do), the others are never stored.
fn many(model: &mut Model, step: u64, object: usize, m: &Many) -> Prepared {
    let now = now_ms();
    let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let o = &mut model.objects[object];
    let first = o.tasks.len();
    let mut items = Vec::with_capacity(m.items.len());
    let mut winner: Vec<(String, usize)> = Vec::new();
    for (i, item) in m.items.iter().enumerate() {
        let at = match item.when {
            When::AtMax => MAX_TIME_MS,
            When::AtFutureMs(d) => now + ms(d),
            _ => now + ms(FAR_MS),
        };
        let label = format!("{}-{i}", m.label);
        let mut body = json!({ "when": { "at_ms": at }, "id": item.id, "keep_existing": item.keep_existing, "burst": item.burst_missed, "task": { "type": "record", "label": label } });
        let mut task = Task::new(label, step, Handler::Record, End::Remains, at);
        task.far = true;
        task.due_ms = Some(at);
        if let Some(r) = &item.retry {
            body["retry"] = json!(r);
            apply_retry(&mut task, r);
        }
        items.push(body);
        let index = o.add(task);
        match winner.iter_mut().find(|(id, _)| *id == item.id) {
            Some(w) if !item.keep_existing => w.1 = index,
            Some(_) => {}
            None => winner.push((item.id.clone(), index)),
        }
    }
    let n = u32::try_from(m.items.len()).unwrap_or(u32::MAX);
    let ids: Vec<String> = m.items.iter().map(|i| i.id.clone()).collect();
    let stored: Vec<usize> = winner.into_iter().map(|(_, i)| i).collect();
    let body = json!({ "tasks": items });
    Prepared { step, object, route: "schedule_many", body: body.to_string(), what: "schedule_many (explicit ids)".into(), expect: Expect::Ok, effect: Effect::Many { first, n, ids, stored } }
}

fn burst(model: &mut Model, step: u64, object: usize, b: &Burst) -> Prepared {
    let now = now_ms();
    let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let at = b.at_future_ms.map(|d| now + ms(d));
    let o = &mut model.objects[object];
    let first = o.tasks.len();
    for i in 0..b.n {
        let mut task = Task::new(format!("{}-{i}", b.label), step, Handler::Record, End::Succeeds, at.unwrap_or(now + ms(b.delay_ms)));
        task.due_ms = at;
        task.burst = Some((step, i));
        o.add(task);
    }
    let mut body = json!({ "n": b.n, "label": b.label, "delay_ms": b.delay_ms, "many": b.many });
    if let Some(at) = at {
        body["at_ms"] = json!(at);
    }
    let what = if b.many { "burst (schedule_many)" } else { "burst (one schedule each)" };
    Prepared { step, object, route: "burst", body: body.to_string(), what: what.into(), expect: Expect::Ok, effect: Effect::Burst { first, n: b.n } }
}

/// Sends `p` to the object's route at the worker `url`. Bounded by the client's timeout.
pub(crate) fn send(http: &Client, url: &str, object: &str, p: &Prepared) -> (Outcome, Option<Value>) {
    post(http, &format!("{url}/alarms/{object}/{}", p.route), &p.body)
}

/// Posts `body` to `url`, and classifies the answer. Bounded by the client's timeout.
pub(crate) fn post(http: &Client, url: &str, body: &str) -> (Outcome, Option<Value>) {
    match http.post_text::<Value>(url, body) {
        Ok(value) => (Outcome::Ok, Some(value)),
        Err(Error::Status { status, body, .. }) if (400..500).contains(&status) => (Outcome::Refused { status, body: cut(&body) }, None),
        Err(Error::Status { status, body, .. }) => (Outcome::Failed { status, body: cut(&body) }, None),
        Err(Error::Decode { reason, .. }) => (Outcome::Failed { status: 200, body: cut(&reason) }, None),
        Err(e) => (Outcome::NoAnswer(cut(&e.to_string())), None),
    }
}

/// How much of an answer's body is kept: enough for any typed error of the library whole,
/// which may name an id of `MAX_ID_BYTES` (512) twice, so that the check that the refusal
/// is the one expected sees its reason (300 characters cut a requeue's "is not dead" off a
/// 512-byte id).
const KEPT_CHARS: usize = 2_000;

fn cut(text: &str) -> String {
    text.chars().take(KEPT_CHARS).collect()
}

/// Takes the answer of `p` into the model, and logs the request.
pub(crate) fn absorb(model: &mut Model, p: &Prepared, sent_ms: i64, done_ms: i64, outcome: Outcome, value: Option<Value>) {
    match (&p.effect, value) {
        (Effect::Schedule { task, when, id, keep_existing }, Some(v)) => scheduled(model, p, *task, *when, id.as_deref(), *keep_existing, sent_ms, done_ms, v),
        (Effect::Schedule { task, .. }, None) => model.objects[p.object].tasks[*task].certain = false,
        (Effect::Burst { first, n }, Some(v)) => bursted(model, p, *first, *n, &v),
        (Effect::Burst { first, n }, None) => {
            for t in &mut model.objects[p.object].tasks[*first..*first + *n as usize] {
                t.certain = false;
            }
        }
        (Effect::Many { first, n, ids, stored }, v) => batched(model, p, *first, *n, ids, stored, v.as_ref()),
        (Effect::Cancel { id }, v) => cancelled(model, p, id, v, done_ms),
        (Effect::Requeue { id }, v) => requeued(model, p, id, v, sent_ms, &outcome),
        (Effect::Inspect, Some(v)) => {
            let shown: Vec<Value> = match v {
                Value::Array(all) => all,
                Value::Null => Vec::new(),
                one => vec![one],
            };
            for s in shown {
                if let Some(stored) = stored(model, p, s) {
                    known(model, p.object, &stored, "get/list");
                }
            }
        }
        _ => {}
    }
    model.requests.push(Request { step: p.step, object: p.object, calls: false, what: p.what.clone(), sent_ms, done_ms, expect: p.expect, outcome });
}

fn stored(model: &mut Model, p: &Prepared, v: Value) -> Option<Stored> {
    match serde_json::from_value::<Stored>(v.clone()) {
        Ok(s) => Some(s),
        Err(e) => {
            model.problem(p.object, format!("step {}: {} answered something that is not a task ({e}): {}", p.step, p.route, cut(&v.to_string())));
            None
        }
    }
}

/// A task an answer showed must be one the run asked for, under the id it was given.
fn known(model: &mut Model, object: usize, s: &Stored, context: &str) {
    let o = &model.objects[object];
    let problem = match s.label().as_deref().map(|l| (l, o.role(l))) {
        None => Some(format!("{context} showed a task without a label: {}", cut(&s.payload))),
        Some((label, None)) => Some(format!("{context} showed task {} labelled {label:?}, which the run never asked for", s.id)),
        Some((label, Some(crate::chaos::model::Role::Invalid))) => {
            Some(format!("{context} showed task {} labelled {label:?}: an invalid input was stored", s.id))
        }
        Some((label, Some(crate::chaos::model::Role::Task(i)))) => match &o.tasks[i].id {
            Some(id) if *id != s.id => Some(format!("{context} showed {label:?} under id {}, but it was stored under {id}", s.id)),
            _ => None,
        },
        Some(_) => None,
    };
    if let Some(problem) = problem {
        model.problem(object, problem);
    }
}

#[allow(clippy::too_many_arguments)]
fn scheduled(model: &mut Model, p: &Prepared, task: usize, when: Due, id: Option<&str>, keep_existing: bool, sent_ms: i64, done_ms: i64, v: Value) {
    let Some(s) = stored(model, p, v) else { return };
    let object = p.object;
    let label = model.objects[object].tasks[task].label.clone();
    if s.label().as_deref() != Some(label.as_str()) {
        // keep_existing kept the task already under that id; this one was never stored.
        if keep_existing && id == Some(s.id.as_str()) {
            let t = &mut model.objects[object].tasks[task];
            t.never_stored = true;
            t.certain = false;
            known(model, object, &s, "schedule (keep_existing)");
        } else {
            model.problem(object, format!("step {}: scheduling {label:?} answered task {} labelled {:?}", p.step, s.id, s.label()));
        }
        return;
    }
    let mut problems = Vec::new();
    if s.status != "pending" || s.attempts != 0 {
        problems.push(format!("a new task is {} with {} attempts", s.status, s.attempts));
    }
    if s.created_ms < sent_ms || s.created_ms > done_ms {
        problems.push(format!("created at {} ms, outside its request ({sent_ms} ..= {done_ms} ms, driver's clock)", s.created_ms));
    }
    let due_ok = match when {
        Due::After(d) => s.due_ms == s.created_ms.saturating_add(d),
        Due::At(at) => s.due_ms == at,
        Due::Cron => s.due_ms > s.created_ms && s.due_ms % 1000 == 0,
        Due::Every(i) => s.due_ms == s.created_ms.saturating_add(i),
    };
    if !due_ok {
        problems.push(format!("due at {} ms, not as asked ({when:?}, created at {} ms)", s.due_ms, s.created_ms));
    }
    if let Some(id) = id {
        if s.id != id {
            problems.push(format!("stored under id {}, not {id}", s.id));
        }
        // It replaced whatever was stored under that id.
        let replaced: Vec<usize> = model.objects[object].with_id(id).into_iter().filter(|&i| i != task).collect();
        for i in replaced {
            let t = &mut model.objects[object].tasks[i];
            if t.removed_ms.is_none() {
                t.removed_ms = Some(done_ms);
            }
        }
    }
    for problem in problems {
        model.problem(object, format!("step {}: schedule {label:?}: {problem}", p.step));
    }
    let o = &mut model.objects[object];
    o.set_id(task, &s.id, Some((p.step, 0)));
    let t = &mut o.tasks[task];
    t.due_ms = Some(s.due_ms);
    t.not_before_ms = t.not_before_ms.max(s.due_ms);
}

fn bursted(model: &mut Model, p: &Prepared, first: usize, n: u32, v: &Value) {
    let ids: Vec<String> = v.as_array().map(|a| a.iter().filter_map(|id| id.as_str().map(str::to_owned)).collect()).unwrap_or_default();
    if ids.len() != n as usize {
        model.problem(p.object, format!("step {}: a burst of {n} answered {} ids: {}", p.step, ids.len(), cut(&v.to_string())));
        for t in &mut model.objects[p.object].tasks[first..first + n as usize] {
            t.certain = false;
        }
        return;
    }
    let o = &mut model.objects[p.object];
    for (i, id) in ids.iter().enumerate() {
        o.set_id(first + i, id, Some((p.step, u32::try_from(i).unwrap_or(u32::MAX))));
    }
}

/// The answer of a `schedule_many`: the ids in order. The tasks it did not store are never
/// stored; without an answer, none is certain.
fn batched(model: &mut Model, p: &Prepared, first: usize, n: u32, ids: &[String], stored: &[usize], v: Option<&Value>) {
    let o = &mut model.objects[p.object];
    for i in first..first + n as usize {
        let t = &mut o.tasks[i];
        if !stored.contains(&i) {
            t.never_stored = true;
        }
        if v.is_none() {
            t.certain = false;
        }
    }
    let Some(v) = v else { return };
    let answered: Vec<&str> = v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    if answered != ids.iter().map(String::as_str).collect::<Vec<_>>() {
        model.problem(p.object, format!("step {}: schedule_many of ids {ids:?} answered {}", p.step, cut(&v.to_string())));
        return;
    }
    let o = &mut model.objects[p.object];
    for &w in stored {
        let id = &ids[w - first];
        // Every reference of the step to this id names the task stored under it.
        for (k, _) in ids.iter().enumerate().filter(|(_, other)| *other == id) {
            o.set_id(w, id, Some((p.step, u32::try_from(k).unwrap_or(u32::MAX))));
        }
    }
}

fn cancelled(model: &mut Model, p: &Prepared, id: &str, v: Option<Value>, done_ms: i64) {
    match v {
        None => model.objects[p.object].touch(id),
        Some(Value::Null) => {}
        Some(v) => {
            let Some(s) = stored(model, p, v) else { return };
            known(model, p.object, &s, "cancel");
            if s.id != id {
                model.problem(p.object, format!("step {}: cancel of {id} removed task {}", p.step, s.id));
            }
            let o = &mut model.objects[p.object];
            if let Some((i, _)) = s.label().and_then(|l| o.task(&l)) {
                let t = &mut o.tasks[i];
                t.certain = false;
                t.removed_ms = Some(done_ms);
                t.removed_unstarted = !t.recurring && s.status == "pending" && s.attempts == 0 && t.requeued.is_empty() && t.blind_from.is_none();
            }
        }
    }
}

fn requeued(model: &mut Model, p: &Prepared, id: &str, v: Option<Value>, sent_ms: i64, outcome: &Outcome) {
    match v {
        Some(v) => {
            let Some(s) = stored(model, p, v) else { return };
            known(model, p.object, &s, "requeue");
            if s.status != "pending" || s.attempts != 0 || s.id != id {
                model.problem(p.object, format!("step {}: requeue of {id} answered {} {} with {} attempts", p.step, s.id, s.status, s.attempts));
            }
            let o = &mut model.objects[p.object];
            if let Some((i, _)) = s.label().and_then(|l| o.task(&l)) {
                o.tasks[i].requeued.push(s.due_ms);
            }
        }
        None if outcome.cut_off() => {
            let o = &mut model.objects[p.object];
            for i in o.with_id(id) {
                o.tasks[i].blind_from.get_or_insert(sent_ms);
            }
            o.touch(id);
        }
        None => {}
    }
}
