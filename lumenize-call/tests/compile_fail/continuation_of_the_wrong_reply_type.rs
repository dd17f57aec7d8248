// A continuation of `Shout` (whose reply is a `String`) cannot take a `u64`.
use lumenize_call::{CallError, Continuation, Ctx, Operation};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Shout(String);

impl Operation for Shout {
    const NAME: &'static str = "shout";
    type Reply = String;
}

#[derive(Serialize, Deserialize)]
struct Shouted;

impl Continuation for Shouted {
    type Op = Shout;
    const NAME: &'static str = "shouted";
    async fn on_reply(self, _ctx: Ctx, _reply: Result<u64, CallError>) -> worker::Result<()> {
        Ok(())
    }
}

fn main() {}
