//! The `edgemx` binary; everything it does is in [`edgemx::cli`].

/// jemalloc instead of glibc's malloc: 7–12 % less CPU per relayed message (BENCHMARKS.md,
/// "Relay with jemalloc and one-buffer log lines"). Only the binary uses it; the library's
/// own tests keep the system allocator.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Freed memory goes back to the system within about a second (jemalloc's default keeps
/// it ten), by one background thread, so also while the gateway is idle: message buffers are
/// large (up to `limits.max_message_size`) and short-lived, and resident memory with the
/// queue empty must not stay at its peak (`tests/tests/memory.rs`; glibc kept 860 MB of 30
/// concurrent 24 MB messages until its mmap threshold was fixed, which this replaces).
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8] =
    b"background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> std::process::ExitCode {
    edgemx::cli::main()
}
