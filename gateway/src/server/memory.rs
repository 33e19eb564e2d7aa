//! glibc malloc settings that keep the resident size near `limits.inflight_bytes`.
//!
//! Message buffers are large (up to `limits.max_message_size`) and short-lived. glibc serves
//! an allocation above its mmap threshold with its own mapping, returned to the kernel on
//! free, but it *raises* that threshold to the size of every such block freed (up to 32 MiB
//! on 64-bit): after the first large message is freed, later ones come from the heap
//! arenas, which keep freed memory. Measured before this setting: 30 concurrent 24 MB
//! messages left 860 MB resident with the queue empty. A fixed threshold turns the dynamic
//! adjustment off, so every buffer of 128 KiB or more is unmapped when it is freed.

/// Allocations of this size or more get their own mapping (glibc's initial default).
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Applies the settings; called once at start, before the runtime's threads exist.
pub fn tune_allocator() {
    // SAFETY: mallopt only changes malloc's parameters; it is called before any other
    // thread of ours runs and takes no pointers.
    let set = unsafe { nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
    if set != 1 {
        log::warn!("mallopt(M_MMAP_THRESHOLD) failed; freed message memory may stay resident");
    }
}
