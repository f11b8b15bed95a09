//! glibc's allocator tuned for the main thread's work at hand (main thread).

use std::time::Instant;

use crate::limits::{BULK_LINGER, TRIM_EVERY};

///
/// Steady (live following): buffers above 128 KiB are mapped on their own and
/// unmapped when freed, and the rest of the freed heap goes back to the
/// kernel every [`TRIM_EVERY`]. With thousands of filters every live step
/// builds and drops large requests; glibc's default threshold grows after the
/// first large free, and later large buffers then fragment the heap, where
/// they stay resident.
///
/// Bulk (backfill pieces, large catch-up steps): every buffer comes from the
/// heap and nothing is handed back, so that each piece reuses the last one's
/// pages instead of faulting fresh ones in: a fifth of the main thread's time
/// went to page faults. A second after the last large step the heap is
/// trimmed and steady again.
pub(super) struct Heap {
    bulk: bool,
    last_large: Instant,
    last_trim: Instant,
}

impl Heap {
    const STEADY_MMAP_THRESHOLD: i32 = 128 * 1024;
    /// glibc's largest mmap threshold (32 MiB on 64-bit).
    const BULK_MMAP_THRESHOLD: i32 = 32 * 1024 * 1024;
    const BULK_TRIM_THRESHOLD: i32 = 1024 * 1024 * 1024;

    pub fn steady() -> Self {
        Self::set(Self::STEADY_MMAP_THRESHOLD, Self::STEADY_MMAP_THRESHOLD);
        Heap {
            bulk: false,
            last_large: Instant::now(),
            last_trim: Instant::now(),
        }
    }

    pub fn large_step(&mut self) {
        self.last_large = Instant::now();
        if !self.bulk {
            self.bulk = true;
            Self::set(Self::BULK_MMAP_THRESHOLD, Self::BULK_TRIM_THRESHOLD);
        }
    }

    pub fn tick(&mut self) {
        if self.bulk {
            if self.last_large.elapsed() < BULK_LINGER {
                return;
            }
            self.bulk = false;
            Self::set(Self::STEADY_MMAP_THRESHOLD, Self::STEADY_MMAP_THRESHOLD);
        } else if self.last_trim.elapsed() < TRIM_EVERY {
            return;
        }
        self.last_trim = Instant::now();
        // SAFETY: malloc_trim only walks glibc's own arenas; it is thread-safe.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    fn set(mmap_threshold: i32, trim_threshold: i32) {
        // SAFETY: mallopt only sets glibc tunables; it takes the arena locks itself.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, mmap_threshold);
            libc::mallopt(libc::M_TRIM_THRESHOLD, trim_threshold);
        }
    }
}
