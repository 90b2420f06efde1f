//! Compile-time behaviour of the macros (trybuild): what compiles, and the diagnostics of what
//! does not (each on the user's token, with a `help:` line). Regenerate the expected output
//! with `TRYBUILD=overwrite cargo test --test ui`, then read every `.stderr`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui-tests/pass/*.rs");
    t.compile_fail("ui-tests/fail/*.rs");
}
