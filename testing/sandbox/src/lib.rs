//! The sandbox worker: Durable Objects that expose the libraries' behaviour over HTTP, so
//! the integration tests in `testing/harness/tests` can check each guarantee in workerd.
//! One module per feature.

use worker::*;

mod alarms;
mod calls;

pub use alarms::{AlarmsDO, KvDO};
pub use calls::{CallerDO, RemoteDO};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let url = req.url()?;
    let segments: Vec<String> = url.path_segments().map(|s| s.filter(|s| !s.is_empty()).map(str::to_owned).collect()).unwrap_or_default();
    match segments.as_slice() {
        [] => Response::ok("lumenize sandbox"),
        [feature, object, rest @ ..] => {
            let binding = match feature.as_str() {
                "alarms" => "ALARMS",
                "kv" => "KV",
                "calls" => "CALLER",
                "remote" => "REMOTE",
                _ => return Response::error("unknown feature", 404),
            };
            let stub = env.durable_object(binding)?.id_from_name(object)?.get_stub()?;
            let mut init = RequestInit::new();
            // Manual: a redirect of the object (lumenize-board's) goes back to the client as it is.
            init.with_method(req.method()).with_headers(req.headers().clone()).with_redirect(RequestRedirect::Manual);
            let mut req = req;
            let body = req.text().await?;
            if !body.is_empty() {
                init.with_body(Some(body.into()));
            }
            // The rest of the path, with its trailing slash and query (lumenize-board's page is at `board/`).
            let slash = if url.path().ends_with('/') && !rest.is_empty() { "/" } else { "" };
            let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
            let inner = Request::new_with_init(&format!("https://do/{}{slash}{query}", rest.join("/")), &init)?;
            stub.fetch_with_request(inner).await
        }
        _ => Response::error("not found", 404),
    }
}
