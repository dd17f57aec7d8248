//! A chaos run in progress: the worker, the HTTP client and the model; runs the plan's
//! steps one at a time (one request each), with kills, restarts and lost alarms between
//! or in the middle of them.

use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::chaos::call_plan::{CallOp, MakeCall};
use crate::chaos::calls::{self, CallPrepared};
use crate::chaos::exec::{self, Prepared};
use crate::chaos::model::{Kill, Model};
use crate::chaos::now_ms;
use crate::chaos::plan::{Action, Step};
use crate::http::Client;
use crate::target::Target;
use crate::Result;

/// Every request ends within this (a request left hanging counts as unanswered).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The worker, the client and the record of one run.
pub(crate) struct Session<'t> {
    pub(crate) target: &'t mut Target,
    pub(crate) http: Client,
    pub(crate) model: Model,
    /// Steps done.
    pub(crate) steps: u64,
}

impl<'t> Session<'t> {
    pub(crate) fn new(target: &'t mut Target, model: Model) -> Self {
        Session { target, http: Client::new(REQUEST_TIMEOUT), model, steps: 0 }
    }

    /// Sends `p` and takes its answer into the model; the answer's JSON, if 2xx.
    pub(crate) fn send(&mut self, p: &Prepared) -> Option<Value> {
        let name = self.model.objects[p.object].name.clone();
        let sent = now_ms();
        let (outcome, value) = exec::send(&self.http, &self.target.url(), &name, p);
        exec::absorb(&mut self.model, p, sent, now_ms(), outcome, value.clone());
        value
    }

    /// Sends the call request `p` to its origin and takes its answer into the model; the
    /// answer's JSON, if 2xx.
    pub(crate) fn send_call(&mut self, p: &CallPrepared) -> Option<Value> {
        let name = self.model.calls.origins[p.origin].clone();
        let sent = now_ms();
        let (outcome, value) = exec::post(&self.http, &format!("{}/calls/{name}/{}", self.target.url(), p.route), &p.body);
        calls::absorb(&mut self.model, p, sent, now_ms(), outcome, value.as_ref());
        value
    }

    /// [`send_call`](Self::send_call) until it gets an answer that is not a failure, at
    /// most `tries` times.
    pub(crate) fn send_call_until_answered(&mut self, p: &CallPrepared, tries: u32) -> Option<Value> {
        self.until_answered(tries, |s| s.send_call(p))
    }

    /// Runs `send` (which logs one request) until its request was not cut off, at most
    /// `tries` times, half a second apart; the last answer.
    fn until_answered(&mut self, tries: u32, mut send: impl FnMut(&mut Self) -> Option<Value>) -> Option<Value> {
        for _ in 0..tries.max(1) {
            let value = send(self);
            let failed = self.model.requests.last().is_some_and(|r| r.outcome.cut_off());
            if !failed {
                return value;
            }
            thread::sleep(Duration::from_millis(500));
        }
        None
    }

    /// Reads `route` of remote `remote` (`effects`, `applied`), with a few tries; logged
    /// like any request.
    pub(crate) fn read_remote(&mut self, step: u64, remote: usize, route: &str, tries: u32) -> Option<Value> {
        let name = self.model.calls.remotes[remote].clone();
        self.until_answered(tries, |s| {
            let sent = now_ms();
            let (outcome, value) = exec::post(&s.http, &format!("{}/remote/{name}/{route}", s.target.url()), "{}");
            s.model.requests.push(crate::chaos::model::Request {
                step,
                object: remote,
                calls: true,
                what: format!("remote: {route} (drain)"),
                sent_ms: sent,
                done_ms: now_ms(),
                expect: crate::chaos::model::Expect::Ok,
                outcome,
            });
            value
        })
    }

    /// Sends `p` until it gets an answer that is not a failure, at most `tries` times
    /// (every try is logged and checked like any request).
    pub(crate) fn send_until_answered(&mut self, p: &Prepared, tries: u32) -> Option<Value> {
        self.until_answered(tries, |s| s.send(p))
    }

    /// Runs one step of the plan, then pauses as the plan says.
    ///
    /// # Errors
    /// Killing or restarting the runtime failed.
    pub(crate) fn step(&mut self, step: &Step) -> Result<()> {
        self.steps += 1;
        match &step.action {
            Action::Op { object, op } => {
                let p = exec::prepare(&mut self.model, step.index, *object, op);
                self.send(&p);
            }
            Action::Call { origin, op } => {
                let p = calls::prepare(&mut self.model, step.index, *origin, op);
                self.send_call(&p);
                if let CallOp::Make(MakeCall { cancel: true, .. }) = op {
                    let cancel = CallOp::Cancel { step: step.index, index: 0 };
                    let mut p = calls::prepare(&mut self.model, step.index, *origin, &cancel);
                    p.what = "call: cancel at once".into();
                    self.send_call(&p);
                }
            }
            Action::LoseAlarm { object } => {
                self.model.lost_alarms += 1;
                self.send(&exec::lose_alarm(step.index, *object));
            }
            Action::Kill { mid_request, down_ms } => {
                let cut = mid_request.as_ref().map(|m| (m.after_ms, exec::prepare(&mut self.model, step.index, m.object, &m.op)));
                self.kill(cut, *down_ms)?;
            }
        }
        thread::sleep(Duration::from_millis(step.pause_ms));
        Ok(())
    }

    /// SIGKILL of the runtime (`after_ms` into the request `p`, if given), `down_ms` down,
    /// then a restart on the same storage.
    fn kill(&mut self, cut: Option<(u64, Prepared)>, down_ms: u64) -> Result<()> {
        let in_flight = cut.map(|(after_ms, p)| {
            let (http, url, name) = (self.http.clone(), self.target.url(), self.model.objects[p.object].name.clone());
            let sender = thread::spawn(move || {
                let sent = now_ms();
                let (outcome, value) = exec::send(&http, &url, &name, &p);
                (p, sent, now_ms(), outcome, value)
            });
            thread::sleep(Duration::from_millis(after_ms));
            sender
        });
        let killed_ms = now_ms();
        let killed = self.target.kill();
        let mid_request = in_flight.is_some();
        if let Some(sender) = in_flight {
            // The request ends: answered before the kill, or cut off by it (bounded by the
            // client's timeout).
            match sender.join() {
                Ok((p, sent, done, outcome, value)) => exec::absorb(&mut self.model, &p, sent, done, outcome, value),
                Err(_) => self.model.problem(0, "the request thread of a mid-request kill panicked".into()),
            }
        }
        killed?;
        thread::sleep(Duration::from_millis(down_ms));
        self.target.restart()?;
        self.model.kills.push(Kill { killed_ms, up_ms: now_ms(), mid_request });
        Ok(())
    }
}
