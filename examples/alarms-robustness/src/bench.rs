//! `POST /<object>/bench {"n": 1000, "rounds": 5}`: what each scheduler operation costs, by
//! the runtime's clock, with no handler work: lumenize-alarms (`schedule` one by one,
//! `schedule_many`, a run) against the floor (`INSERT` one by one, a run), interleaved in
//! one request on one object, `rounds` times. The costs per task, with what the handler
//! itself does left out, are the "scheduler overhead" of issue 11's targets.

use lumenize_alarms::{Alarms, Filter, When};
use worker::*;

use crate::api::{BenchReply, BenchRequest};
use crate::baselines::Floor;
use crate::object::now_ms;

/// Far enough ahead that nothing falls due by itself while measuring.
const AHEAD_MS: i64 = 3_600_000;

fn per_task(started: i64, n: u32) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let elapsed = (now_ms() - started) as f64;
    elapsed * 1_000.0 / f64::from(n)
}

/// Runs the measurements. Leaves nothing behind: every task it stores, it runs. Both
/// schedulers write the native alarm as they do in use: once when a request stores tasks
/// (lumenize-alarms and the floor alike arm it for the earliest), and once when a run leaves
/// nothing pending (lumenize-alarms deletes it; the floor is given the same delete).
pub(crate) async fn run(state: &State, r: BenchRequest) -> Result<BenchReply> {
    let n = r.n.clamp(1, u32::try_from(lumenize_alarms::DEFAULT_BATCH_LIMIT).unwrap_or(u32::MAX));
    let alarms = Alarms::<u32>::open(state);
    alarms.ready()?;
    let floor = Floor::open(state)?;
    let storage = state.storage();
    let mut reply = BenchReply { n, ..BenchReply::default() };
    let idle = async |_: u32, _| Ok::<_, String>(());
    for _ in 0..r.rounds {
        let at = now_ms() + AHEAD_MS;
        let started = now_ms();
        for i in 0..n {
            alarms.schedule(When::at_unix_ms(at), i).await?;
        }
        reply.lumenize_schedule_us.push(per_task(started, n));
        let started = now_ms();
        check(alarms.run_due_at(at, idle).await?.succeeded, n, "lumenize run")?;
        reply.lumenize_run_us.push(per_task(started, n));

        let started = now_ms();
        alarms.schedule_many((0..n).map(|i| (When::at_unix_ms(at), i))).await?;
        reply.lumenize_schedule_many_us.push(per_task(started, n));
        let started = now_ms();
        check(alarms.run_due_at(at, idle).await?.succeeded, n, "lumenize run after schedule_many")?;
        reply.lumenize_run_us.push(per_task(started, n));

        let started = now_ms();
        let armed = floor.armed().await?;
        for i in 0..n {
            floor.insert(at, &i)?;
        }
        floor.arm(armed, Some(at)).await?;
        reply.floor_insert_us.push(per_task(started, n));
        let started = now_ms();
        let mut ran = 0;
        floor.run_due_at(at, |_, _, _: u32| {
            ran += 1;
            Ok(())
        })?;
        storage.delete_alarm().await?;
        reply.floor_run_us.push(per_task(started, n));
        check(ran, n, "floor run")?;
    }
    check(u32::try_from(alarms.list(&Filter::default())?.len()).unwrap_or(u32::MAX), 0, "tasks left")?;
    Ok(reply)
}

fn check(got: u32, want: u32, what: &str) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::RustError(format!("bench: {what}: {got}, not {want}")))
    }
}
