//! Memory is bounded by the batches in flight, whatever the input length (the README's
//! promise): the peak heap of a file → operator → sink pipeline is measured by a counting
//! global allocator for a short and a 100 times longer input, and must not grow with it.
//! Alone in its test binary: the allocator counts every thread of the process.

use etl::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting live and peak heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters only
// observe the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: String,
    amount_cents: i64,
    status: String,
    note: Option<String>,
}

#[derive(Debug, Clone, Record, Serialize, Deserialize)]
struct Paid {
    id: i64,
    customer: String,
    amount_cents: i64,
}

/// Records per batch; two batches in flight (the default `max_in_flight`).
const BATCH: usize = 500;

/// `n` JSONL orders of about 100 bytes each.
fn write_orders(path: &std::path::Path, n: u64) -> u64 {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let customers = ["Ada Lovelace", "O'Brien, Pat", "Zoë \"Z\" Ünïcödé", "東京 商事", "Smith & Sons"];
    for i in 0..n {
        let note = if i % 3 == 0 { r#""gift, wrap\nplease""# } else { "null" };
        let status = if i % 10 == 0 { "test" } else { "paid" };
        let customer = customers[(i % 5) as usize].replace('"', "\\\"");
        writeln!(
            out,
            r#"{{"id":{},"customer":"{customer}","amount_cents":{},"status":"{status}","note":{note}}}"#,
            1_000_000_000 + i,
            (i * 7919) % 100_000
        )
        .unwrap();
    }
    out.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// Run file → filter → map → blackhole over `n` records; (peak heap above the start, records
/// out, input bytes).
fn peak_heap(dir: &std::path::Path, n: u64) -> (usize, u64, u64) {
    let path = dir.join(format!("orders-{n}.jsonl"));
    let bytes = write_orders(&path, n);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let start = LIVE.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    let report = runtime
        .block_on(
            Pipeline::from(etl::source::file::<Order>(path.display().to_string()).batch_size(BATCH))
                .filter(|o: &Order| o.status == "paid")
                .map(|o: Order| Paid { id: o.id, customer: o.customer, amount_cents: o.amount_cents })
                .to(etl::sink::blackhole())
                .handle_signals(false)
                .dead_letters(etl::dead_letter::MemoryDeadLetters::new())
                .run(),
        )
        .unwrap();
    let peak = PEAK.load(Ordering::Relaxed) - start;
    drop(runtime);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(report.dead_lettered, 0);
    (peak, report.records_out, bytes)
}

/// How much more the 100 times longer run may peak at: four of the file source's 256 KiB read
/// chunks. Its decoding thread runs ahead of the pipeline by up to two decoded chunks in its
/// channel, plus the chunk it is decoding and the one being batched; how far ahead it is when
/// the peak is reached depends on thread timing (the 10 000-record run peaks anywhere between
/// 1.3 and 2.0 MiB from one run to the next), not on the input's length. 1 MiB over 990 000
/// more records is about one byte per record: keeping anything per record (a position, an
/// acknowledgement token, the raw line) would exceed it.
const SLACK: usize = 1 << 20;

/// The peak, whatever the input: `max_in_flight` (2) batches of 500 records plus the batch
/// being filled, and the chunks above; a few MiB, against 100 MB of input.
const BUDGET: usize = 4 << 20;

#[test]
fn peak_heap_does_not_grow_with_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (small, small_out, _) = peak_heap(dir.path(), 10_000);
    let (large, large_out, large_bytes) = peak_heap(dir.path(), 1_000_000);
    let report = format!(
        "peak heap: {small} B for 10 000 records, {large} B for 1 000 000 records ({large_bytes} B of input), in {:?}",
        started.elapsed()
    );
    eprintln!("{report}");
    assert_eq!((small_out, large_out), (9_000, 900_000), "the filter keeps 9 records in 10");
    assert!(large_bytes > 95_000_000, "records of about 100 bytes: {large_bytes} B");
    assert!(large <= small + SLACK, "the peak grew with the input: {report}");
    assert!(large <= BUDGET && small <= BUDGET, "over the {BUDGET} B budget: {report}");
}
