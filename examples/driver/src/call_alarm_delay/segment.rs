//! One segment of the experiment: `count` operations of one mode over one socket, with at
//! most `in_flight` outstanding, each timed from send to answer on the driver's clock.
//! Bounded: an operation with no answer after `deadline` is counted lost and frees its slot.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::Result;
use serde::Serialize;

use super::client::{Answer, Client, Mode};

/// How long one read waits for an answer before the loop checks its deadlines again.
const READ_SLICE: Duration = Duration::from_millis(20);

/// What one segment does.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    /// The mode of every operation.
    pub mode: Mode,
    /// How many operations.
    pub count: u64,
    /// The first operation id (ids are unique over the whole experiment, so a late answer
    /// of an earlier segment is recognised as such).
    pub first_id: u64,
    /// At most this many outstanding; `count` or more sends them all at once (batch).
    pub in_flight: u64,
    /// After this long without an answer, an operation is lost.
    pub deadline: Duration,
}

/// What one segment measured.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The mode.
    pub mode: Mode,
    /// Operations sent.
    pub sent: u64,
    /// Send-to-answer times of the completed operations, in milliseconds, in id order.
    pub latencies_ms: Vec<f64>,
    /// Operations answered with `call-error`: (id, error).
    pub errors: Vec<(u64, String)>,
    /// Operations with no answer within the deadline.
    pub lost: u64,
    /// Answers for an operation already answered (a continuation that ran twice).
    pub duplicates: u64,
    /// Answers for operations of earlier segments (late, after their deadline).
    pub late: u64,
    /// Other messages from the origin (refusals), first few kept.
    pub other: Vec<String>,
    /// From the first send to the last answer (or the last deadline), milliseconds.
    pub wall_ms: f64,
}

impl Outcome {
    /// Completed operations per second over the segment's wall time.
    pub fn ops_per_s(&self) -> f64 {
        if self.wall_ms > 0.0 {
            self.latencies_ms.len() as f64 * 1000.0 / self.wall_ms
        } else {
            0.0
        }
    }
}

/// Runs `segment` on `client`. `on_answer` is called once per operation settled (answered,
/// failed or lost), for a progress bar.
pub(super) fn run(client: &mut Client, segment: &Segment, mut on_answer: impl FnMut()) -> Result<Outcome> {
    let ids = segment.first_id..segment.first_id + segment.count;
    let in_flight = segment.in_flight.max(1);
    let mut sent_at: HashMap<u64, Instant> = HashMap::new();
    let mut done: HashSet<u64> = HashSet::new();
    let mut latencies: Vec<(u64, f64)> = Vec::with_capacity(segment.count as usize);
    let mut out = Outcome {
        mode: segment.mode,
        sent: 0,
        latencies_ms: Vec::new(),
        errors: Vec::new(),
        lost: 0,
        duplicates: 0,
        late: 0,
        other: Vec::new(),
        wall_ms: 0.0,
    };
    let mut next = ids.start;
    let started = Instant::now();
    let mut last_event = started;
    // Bounded in time: every operation is settled by its deadline, and operations start at
    // most `count / in_flight` deadlines apart. Bounded in count: a read waits up to
    // READ_SLICE and every other iteration settles or sends something.
    let cap = segment.deadline * u32::try_from(segment.count.div_ceil(in_flight) + 1).unwrap_or(u32::MAX);
    let max_iterations = cap.as_millis() / READ_SLICE.as_millis() + 4 * segment.count as u128 + 16;
    for _ in 0..max_iterations {
        // Send what the bound allows.
        let mut queued = false;
        while next < ids.end && (sent_at.len() as u64) < in_flight {
            client.queue(segment.mode.message(next))?;
            sent_at.insert(next, Instant::now());
            out.sent += 1;
            next += 1;
            queued = true;
        }
        if queued {
            client.flush()?;
        }
        if next == ids.end && sent_at.is_empty() {
            break;
        }
        // Wait for one answer.
        let wait = sent_at.values().min().map_or(READ_SLICE, |oldest| {
            (*oldest + segment.deadline).saturating_duration_since(Instant::now()).min(READ_SLICE)
        });
        if let Some(answer) = client.next(wait)? {
            let now = Instant::now();
            let id = match &answer {
                Answer::Complete(id) | Answer::Failed(id, _) => *id,
                Answer::Other(text) => {
                    if out.other.len() < 10 {
                        out.other.push(text.clone());
                    }
                    continue;
                }
            };
            if let Some(at) = sent_at.remove(&id) {
                done.insert(id);
                last_event = now;
                match answer {
                    Answer::Failed(_, error) => out.errors.push((id, error)),
                    _ => latencies.push((id, (now - at).as_secs_f64() * 1000.0)),
                }
                on_answer();
            } else if done.contains(&id) {
                out.duplicates += 1;
            } else if !ids.contains(&id) {
                out.late += 1;
            }
        }
        // Give up on operations past their deadline.
        let now = Instant::now();
        let expired: Vec<u64> = sent_at.iter().filter(|(_, at)| now - **at >= segment.deadline).map(|(id, _)| *id).collect();
        for id in expired {
            sent_at.remove(&id);
            done.insert(id);
            out.lost += 1;
            last_event = now;
            on_answer();
        }
    }
    // The iteration cap is a safety net: whatever is still outstanding is lost.
    out.lost += sent_at.len() as u64 + (ids.end - next);
    latencies.sort_by_key(|(id, _)| *id);
    out.latencies_ms = latencies.into_iter().map(|(_, ms)| ms).collect();
    out.wall_ms = (last_event - started).as_secs_f64() * 1000.0;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::thread;

    use serde_json::{json, Value};
    use tungstenite::Message;

    use super::*;

    /// A fake origin on 127.0.0.1: answers odd ids twice, leaves even ids unanswered, and
    /// first sends an answer for an id of an earlier segment.
    fn fake_origin(expected: usize) -> (String, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut ws = tungstenite::accept(stream).unwrap();
            ws.send(Message::text(json!({"type": "call-complete", "id": 1}).to_string())).unwrap();
            for _ in 0..expected {
                let Ok(Message::Text(text)) = ws.read() else { break };
                let message: Value = serde_json::from_str(text.as_str()).unwrap();
                let id = message["id"].as_u64().unwrap();
                if id % 2 == 1 {
                    let answer = json!({"type": "call-complete", "id": id}).to_string();
                    ws.send(Message::text(answer.clone())).unwrap();
                    ws.send(Message::text(answer)).unwrap();
                }
            }
            // Keep the socket open until the client gives up on the rest.
            let _ = ws.read();
        });
        (base, server)
    }

    #[test]
    fn unanswered_operations_are_lost_after_the_deadline_and_the_segment_ends() {
        let (base, server) = fake_origin(6);
        let mut client = Client::connect(&base, "o").unwrap();
        let segment = Segment { mode: Mode::Direct, count: 6, first_id: 101, in_flight: 2, deadline: Duration::from_millis(300) };
        let started = Instant::now();
        let mut settled = 0;
        let out = run(&mut client, &segment, || settled += 1).unwrap();
        assert_eq!(out.sent, 6);
        assert_eq!(out.latencies_ms.len(), 3, "{out:?}");
        assert_eq!(out.lost, 3, "{out:?}");
        assert_eq!(settled, 6);
        assert_eq!(out.late, 1, "{out:?}");
        assert!(out.duplicates >= 1, "{out:?}");
        // Slots free up as operations are lost: 3 losses, 2 in flight, about 2 deadlines.
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        client.close();
        server.join().unwrap();
    }
}
