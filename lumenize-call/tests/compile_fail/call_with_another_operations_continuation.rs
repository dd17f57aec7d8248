// The continuation names the operation it answers: `Shouted` cannot be given to a call of
// `Add`.
include!("common.rs");

async fn demo(calls: &lumenize_call::Calls<(Shouted, Summed)>) {
    let _ = calls.call(lumenize_call::Target::named("CALC", "calc"), &Add(1, 2), Shouted).await;
}

fn main() {
    let _ = demo;
}
