//! The etl side of the connector benchmarks: `source` into `sink`, 4 batches in flight,
//! signals left to the benchmark, checked to have written all `n` records. Benchmarks include
//! it with `#[path = "harness/run.rs"] mod run;`.

use etl::prelude::*;

/// Run `source → sink` to its end and check that `n` records went out.
pub async fn etl<S, K>(source: S, sink: K, n: u64)
where
    S: Source,
    S::Item: Serialize,
    K: Sink<S::Item>,
{
    let report = Pipeline::from(source).to(sink).max_in_flight(4).handle_signals(false).run().await.unwrap();
    assert_eq!(report.records_out, n);
}
