//! The allocator setup of the `liverseg` binary (see `liverseg-cli`'s
//! `main.rs`), so that the benchmarks measure what the binary does.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory mapped instead of returning it to the kernel.
pub fn keep_freed_memory() {
    // SAFETY: `mi_option_set` stores one integer option; mimalloc documents
    // it as callable at any time from any thread, and 15 is
    // `mi_option_purge_delay` in the bundled mimalloc's header.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1)
    };
}

/// Hands the memory freed so far back to the kernel (and goes on keeping
/// what is freed later), so that a reference run next in the same machine
/// finds it free, as it would after this process had exited.
#[allow(dead_code)]
pub fn release_freed_memory() {
    // SAFETY: as in `keep_freed_memory`; `mi_collect` may be called at any
    // time from any thread, and only returns free pages to the system.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        libmimalloc_sys::mi_collect(true);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
    }
}
