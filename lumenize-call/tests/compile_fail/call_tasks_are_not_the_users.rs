// lumenize-call's tasks are the library's: a user's task type cannot embed them, and a
// handler cannot be handed one (there is no `CallTask` to name, no `Calls::run`).
use lumenize_call::CallTask;

fn main() {}
