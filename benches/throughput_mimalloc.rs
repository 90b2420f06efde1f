//! The throughput benchmark under mimalloc, for both sides; see `harness/mod.rs`.
//!
//! Batches keep a batch's records alive together and free them together, which glibc malloc
//! serves through its slow path far more often than a loop that frees each record's unused
//! fields at once; mimalloc does not care. This target shows the difference.

#[path = "harness/mod.rs"]
mod harness;

#[global_allocator]
static ALLOC: harness::Counting<mimalloc::MiMalloc> = harness::Counting(mimalloc::MiMalloc);

fn main() {
    harness::main("mimalloc");
}
