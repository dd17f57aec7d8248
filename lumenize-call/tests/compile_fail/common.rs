// Shared by the compile-fail cases (included with `include!`): two operations, each with
// its continuation.
use lumenize_call::{CallError, Continuation, Ctx, Operation};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Shout(pub String);

impl Operation for Shout {
    const NAME: &'static str = "shout";
    type Reply = String;
}

#[derive(Serialize, Deserialize)]
pub struct Add(pub i64, pub i64);

impl Operation for Add {
    const NAME: &'static str = "add";
    type Reply = i64;
}

#[derive(Serialize, Deserialize)]
pub struct Shouted;

impl Continuation for Shouted {
    type Op = Shout;
    const NAME: &'static str = "shouted";
    async fn on_reply(self, _ctx: Ctx, _reply: Result<String, CallError>) -> worker::Result<()> {
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
pub struct Summed;

impl Continuation for Summed {
    type Op = Add;
    const NAME: &'static str = "summed";
    async fn on_reply(self, _ctx: Ctx, _reply: Result<i64, CallError>) -> worker::Result<()> {
        Ok(())
    }
}
