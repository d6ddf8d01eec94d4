//! The C allocator's knobs (glibc): how many arenas it keeps, and giving
//! freed memory back to the system after a burst.

/// Bounds the allocator's arenas to `arenas` (`M_ARENA_MAX`), so that
/// memory freed by one thread is reused by the next instead of growing a
/// heap per thread. False when the allocator refused (or is not glibc's).
pub fn limit_arenas(arenas: usize) -> bool {
    #[cfg(target_env = "gnu")]
    {
        let arenas = libc::c_int::try_from(arenas.max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX
        // takes any positive count.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
    }
    #[cfg(not(target_env = "gnu"))]
    {
        let _ = arenas;
        false
    }
}

/// Returns the free memory at the top of the heaps and the free pages
/// inside them to the system (`malloc_trim(0)`). True when some was
/// released.
pub fn trim() -> bool {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: malloc_trim has no preconditions; it takes the
        // allocator's own locks.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(target_env = "gnu"))]
    {
        false
    }
}

/// The resident set size of this process now and at its peak
/// (`VmRSS`, `VmHWM` of `/proc/self/status`), in KiB.
pub fn resident_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_after_a_burst_gives_memory_back() {
        assert!(limit_arenas(2));
        let (before, _) = resident_kib().unwrap();
        // Many small blocks (below the mmap threshold, so on the heap).
        let blocks: Vec<Vec<u8>> = (0..200_000).map(|i| vec![i as u8; 512]).collect();
        let (during, peak) = resident_kib().unwrap();
        assert!(during > before + 50_000, "{before} -> {during}");
        assert!(peak >= during);
        drop(blocks);
        trim();
        let (after, _) = resident_kib().unwrap();
        assert!(after < during - 50_000, "{during} -> {after}");
    }
}
