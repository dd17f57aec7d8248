//! The typed guarantees of lumenize-call, held by the compiler: each case in
//! `tests/compile_fail/` must fail to compile, with the error recorded beside it (regenerate
//! with `TRYBUILD=overwrite cargo test -p lumenize-call --test typed` after a compiler
//! upgrade, and read the diff).

#![cfg(not(target_arch = "wasm32"))]

#[test]
fn the_compiler_refuses_what_the_types_forbid() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/compile_fail/continuation_of_the_wrong_reply_type.rs");
    cases.compile_fail("tests/compile_fail/call_with_an_unlisted_continuation.rs");
    cases.compile_fail("tests/compile_fail/call_with_another_operations_continuation.rs");
    cases.compile_fail("tests/compile_fail/handler_of_the_wrong_reply_type.rs");
    cases.compile_fail("tests/compile_fail/call_tasks_are_not_the_users.rs");
    cases.compile_fail("tests/compile_fail/a_call_id_is_not_a_task_id.rs");
    // The control: the same types, used as intended, compile.
    cases.pass("tests/compile_pass/two_operations.rs");
}
