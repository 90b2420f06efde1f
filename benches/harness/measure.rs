//! What every benchmark measures with: a counting global allocator (live and peak heap
//! bytes) and the kernel's CPU seconds. Benchmarks include it with
//! `#[path = "harness/measure.rs"] mod measure;` and install the allocator with
//! `#[global_allocator] static ALLOC: measure::Counting<std::alloc::System> = measure::Counting(std::alloc::System);`.

#![allow(dead_code)] // each benchmark uses what it needs

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Wraps the global allocator of a bench binary to count live and peak heap bytes.
pub struct Counting<A>(pub A);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.0.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let live = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

/// Start a new peak at the bytes live now; returns them.
pub fn reset_peak() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

/// The most bytes live since the last [`reset_peak`].
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// CPU seconds (user + system) of this process so far.
pub fn cpu_seconds() -> f64 {
    cpu_seconds_of(libc::RUSAGE_SELF)
}

/// CPU seconds (user + system) of this process (`RUSAGE_SELF`) or of its waited-for children
/// (`RUSAGE_CHILDREN`).
pub fn cpu_seconds_of(who: i32) -> f64 {
    // SAFETY: getrusage writes into the struct we pass; RUSAGE_SELF and RUSAGE_CHILDREN are valid.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(who, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// One side of a comparison: its wall and CPU seconds and its peak heap.
pub struct Side {
    pub wall: f64,
    pub cpu: f64,
    pub heap: usize,
}

/// Run `work`, measuring its wall and CPU seconds and the heap it peaked at.
pub async fn side<F: std::future::Future<Output = ()>>(work: F) -> Side {
    let live = reset_peak();
    let cpu = cpu_seconds();
    let started = std::time::Instant::now();
    work.await;
    Side { wall: started.elapsed().as_secs_f64(), cpu: cpu_seconds() - cpu, heap: peak().saturating_sub(live) }
}

/// The faster of two measurements of one side (`None`: the first round).
pub fn best(a: Option<Side>, b: Side) -> Option<Side> {
    match a {
        Some(a) if a.wall <= b.wall => Some(a),
        _ => Some(b),
    }
}

/// `ETL_BENCH_ROUNDS`, else `default`: how many rounds a benchmark keeps the best of.
pub fn rounds(default: usize) -> usize {
    std::env::var("ETL_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(default)
}

/// A Markdown row: `| label | records/s | wall s | CPU s | peak heap | ratio to base |`.
pub fn row(label: &str, n: u64, side: &Side, base: &Side) {
    println!(
        "| {label} | {:.0} | {:.2} | {:.2} | {:.1} MiB | **{:.2}** |",
        n as f64 / side.wall,
        side.wall,
        side.cpu,
        side.heap as f64 / (1 << 20) as f64,
        base.wall / side.wall
    );
}
