//! The throughput benchmark under the system allocator (glibc malloc); see `harness/mod.rs`.

#[path = "harness/mod.rs"]
mod harness;

#[global_allocator]
static ALLOC: harness::Counting<std::alloc::System> = harness::Counting(std::alloc::System);

fn main() {
    harness::main("system allocator");
}
