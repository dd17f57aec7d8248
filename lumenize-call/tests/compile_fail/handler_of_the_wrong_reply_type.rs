// A remote's handler of `Add` must return `Add::Reply` (an `i64`).
include!("common.rs");

fn main() {
    let _ = lumenize_call::Router::new().route(async |Add(a, b)| Ok::<String, std::convert::Infallible>(format!("{a}{b}")));
}
