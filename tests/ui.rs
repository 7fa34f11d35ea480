//! Compile-time behaviour of `#[e2e::test]` and `e2e::workload!`: every diagnostic, and a case
//! that must compile. Regenerate the expected output with `TRYBUILD=overwrite cargo test --test ui`
//! and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
