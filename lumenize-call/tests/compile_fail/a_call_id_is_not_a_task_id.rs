// A call's id is not a task id: `Alarms::cancel` and `get` take task ids, and a `CallId`
// is not one, so the call's own task (the library's) cannot be cancelled by mistake.
use lumenize_alarms::Alarms;
use lumenize_call::CallId;

fn cancel_by_mistake(alarms: &Alarms<()>, id: &CallId) {
    let _ = alarms.cancel(id);
}

fn main() {}
