// A call can only be given a continuation its object's `Calls<(..)>` lists: otherwise its
// result would come back to nothing that can run it.
include!("common.rs");

async fn demo(calls: &lumenize_call::Calls<(Shouted,)>) {
    let _ = calls.call(lumenize_call::Target::named("CALC", "calc"), &Add(1, 2), Summed).await;
}

fn main() {
    let _ = demo;
}
