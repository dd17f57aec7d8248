//! `Router`: the operations a remote serves, each with its typed handler.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use crate::Operation;

/// A handler's work, once its operation decoded: the reply as JSON, or the error's message.
pub(crate) type Work<'a> = Pin<Box<dyn Future<Output = std::result::Result<Value, String>> + 'a>>;

type Route<'a> = Box<dyn FnOnce(Value) -> std::result::Result<Work<'a>, String> + 'a>;

/// The operations an object serves, each with its handler, for
/// [`Server::serve`](crate::Server::serve): like axum's router, by the operation's
/// [`NAME`](Operation::NAME). A handler is an async closure (it may borrow `self`) that
/// takes the operation and returns its [`Reply`](Operation::Reply) or an error: the
/// compiler checks the reply type. A call of an operation with no route is refused with
/// 404, one that does not decode with 400: the caller's continuation gets
/// [`CallError::Rejected`](crate::CallError::Rejected).
///
/// ```
/// use std::convert::Infallible;
/// use lumenize_call::{Operation, Router};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct Shout(String);
/// # impl Operation for Shout { const NAME: &'static str = "shout"; type Reply = String; }
/// # #[derive(Serialize, Deserialize)] struct Add(i64, i64);
/// # impl Operation for Add { const NAME: &'static str = "add"; type Reply = i64; }
/// let router = Router::new()
///     .route(async |Shout(text)| Ok::<_, Infallible>(text.to_uppercase()))
///     .route(async |Add(a, b)| a.checked_add(b).ok_or("overflow"));
/// ```
#[must_use]
#[derive(Default)]
pub struct Router<'a> {
    routes: Vec<(&'static str, Route<'a>)>,
}

impl<'a> Router<'a> {
    /// A router with no routes.
    pub fn new() -> Self {
        Router::default()
    }

    /// Serves `Op` with `handler`: `Ok` is the reply, `Err` reaches the caller as
    /// [`CallError::Remote`](crate::CallError::Remote) with the error's text (so does a
    /// panic). A second route for the same operation replaces the first.
    pub fn route<Op, E>(mut self, handler: impl AsyncFnOnce(Op) -> std::result::Result<Op::Reply, E> + 'a) -> Self
    where
        Op: Operation,
        E: Display + 'a,
    {
        let route: Route<'a> = Box::new(move |op: Value| {
            let op = serde_json::from_value::<Op>(op).map_err(|e| format!("the operation {:?} does not decode: {e}", Op::NAME))?;
            let work: Work<'a> = Box::pin(async move {
                let reply = handler(op).await.map_err(|e| e.to_string())?;
                serde_json::to_value(reply).map_err(|e| format!("the reply could not be encoded: {e}"))
            });
            Ok(work)
        });
        self.routes.retain(|(name, _)| *name != Op::NAME);
        self.routes.push((Op::NAME, route));
        self
    }

    /// The work of the handler of operation `name`: `None` if no route serves it, `Err`
    /// if `op` does not decode as its type.
    pub(crate) fn dispatch(self, name: &str, op: Value) -> Option<std::result::Result<Work<'a>, String>> {
        let (_, route) = self.routes.into_iter().find(|(n, _)| *n == name)?;
        Some(route(op))
    }
}
