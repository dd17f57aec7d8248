// The same types used as intended compile: an object that calls two operations, each with
// its continuation, and serves both with one router.
include!("../compile_fail/common.rs");

async fn calls(calls: &lumenize_call::Calls<(Shouted, Summed)>) -> lumenize_call::Result<()> {
    let target = lumenize_call::Target::named("CALC", "calc");
    calls.call(target.clone(), &Shout("hi".into()), Shouted).await?;
    calls.call(target, &Add(1, 2), Summed).await?;
    Ok(())
}

async fn serves(server: &lumenize_call::Server, req: worker::Request) -> lumenize_call::Result<worker::Response> {
    let router = lumenize_call::Router::new()
        .route(async |Shout(text)| Ok::<_, std::convert::Infallible>(text.to_uppercase()))
        .route(async |Add(a, b)| a.checked_add(b).ok_or("overflow"));
    server.serve(req, router).await
}

fn main() {
    let _ = (calls, serves);
}
