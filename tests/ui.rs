//! Compile-time behaviour of the macros (trybuild): what compiles, and the diagnostics of what
//! does not (each on the user's token, with a `help:` line). Regenerate the expected output
//! with `TRYBUILD=overwrite cargo test --test ui`, then read every `.stderr`; `ETL_UI=pattern`
//! runs only the cases whose file name matches the glob.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    // The expected output is rustc's with etl's default features (or more): without them
    // rustc names some types by shorter paths (`Json` for `etl::Json`), so a build without
    // `sse` runs only the feature-off cases below.
    // `ETL_UI=fork*` runs only the cases whose file name matches (while working on them).
    let only = std::env::var("ETL_UI").unwrap_or_else(|_| "*".to_owned());
    // A name without `*` that is not in a folder is left out there (trybuild would fail on it).
    let matching = |dir: &str| {
        let path = format!("ui-tests/{dir}/{only}.rs");
        (only.contains('*') || std::path::Path::new(&path).exists()).then_some(path)
    };
    if cfg!(feature = "sse") {
        if let Some(cases) = matching("pass") {
            t.pass(cases);
        }
        if let Some(cases) = matching("fail") {
            t.compile_fail(cases);
        }
    }
    // A step whose cargo feature of `etl` is off is one compile error naming the feature:
    // checked in the runs where it is off (`cargo test --test ui` for `sqs`, `s3`, `kafka`,
    // `postgres`, `file-watch`, `nats`, `rabbitmq` and `websocket`, `cargo test
    // --no-default-features --test ui` for `sse`); trybuild builds the
    // cases with the features of this run.
    #[cfg(not(feature = "sse"))]
    t.compile_fail("ui-tests/feature-off/sse.rs");
    #[cfg(not(feature = "sqs"))]
    t.compile_fail("ui-tests/feature-off/sqs.rs");
    #[cfg(not(feature = "s3"))]
    t.compile_fail("ui-tests/feature-off/s3.rs");
    #[cfg(not(feature = "kafka"))]
    t.compile_fail("ui-tests/feature-off/kafka.rs");
    #[cfg(not(feature = "postgres"))]
    t.compile_fail("ui-tests/feature-off/postgres.rs");
    #[cfg(not(feature = "file-watch"))]
    t.compile_fail("ui-tests/feature-off/file_watch.rs");
    #[cfg(not(feature = "nats"))]
    t.compile_fail("ui-tests/feature-off/nats.rs");
    #[cfg(not(feature = "rabbitmq"))]
    t.compile_fail("ui-tests/feature-off/rabbitmq.rs");
    #[cfg(not(feature = "websocket"))]
    t.compile_fail("ui-tests/feature-off/websocket.rs");
}
