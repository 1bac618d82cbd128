//! Large zeroed arrays on transparent huge pages: the flow table's entries and index.
//!
//! At a million flows and more, nearly every lookup lands on a page of its own; on 4 KiB
//! pages each also misses the TLB and walks the page tables. A [`HugeSlice`] of 2 MiB or
//! more is mapped on its own, aligned to 2 MiB, and marked `MADV_HUGEPAGE` before any
//! page of it is touched, so the kernel backs it with 2 MiB pages where transparent huge
//! pages are `always` or `madvise` (`/sys/kernel/mm/transparent_hugepage/enabled`), and
//! with ordinary pages where they are `never`. It draws on ordinary memory, not on the
//! hugetlbfs pool that DPDK reserves.
use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;

const HUGE_PAGE: usize = 2 << 20;

/// Types for which all-zero bytes are a valid value (the mapping starts zeroed).
///
/// # Safety
/// Implement only for types whose every field is an integer or an atomic integer.
pub unsafe trait ZeroValid {}

// SAFETY: an atomic integer's zero bytes are the value 0.
unsafe impl ZeroValid for core::sync::atomic::AtomicU64 {}

/// A fixed-length zeroed slice of `T` in its own anonymous mapping.
pub struct HugeSlice<T> {
    ptr: NonNull<T>,
    len: usize,
    map: *mut libc::c_void,
    map_len: usize,
    _owns: PhantomData<T>,
}

// SAFETY: a HugeSlice owns its elements as a Box<[T]> would.
unsafe impl<T: Send> Send for HugeSlice<T> {}
// SAFETY: as above; shared access only hands out &[T].
unsafe impl<T: Sync> Sync for HugeSlice<T> {}

impl<T: ZeroValid> HugeSlice<T> {
    /// `len` zeroed elements (at least one). Panics, as an allocation does, when the
    /// system has no memory to map.
    pub fn zeroed(len: usize) -> HugeSlice<T> {
        let len = len.max(1);
        let bytes = len
            .checked_mul(core::mem::size_of::<T>())
            .expect("HugeSlice size overflows")
            .max(1);
        assert!(core::mem::align_of::<T>() <= HUGE_PAGE);
        let huge = bytes >= HUGE_PAGE;
        let map_len = if huge { bytes + HUGE_PAGE } else { bytes };
        // SAFETY: a fresh private anonymous mapping; no existing memory is involved.
        let map = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(
            map != libc::MAP_FAILED,
            "cannot map {map_len} bytes: {}",
            std::io::Error::last_os_error()
        );
        // mmap returns page-aligned memory (at least T's alignment, which is at most 64
        // here); a huge one starts at the first 2 MiB boundary inside the mapping.
        let start = if huge {
            (map as usize).next_multiple_of(HUGE_PAGE)
        } else {
            map as usize
        };
        if huge {
            // SAFETY: [start, start + bytes) lies inside the mapping. Advice only: where
            // transparent huge pages are off it fails and ordinary pages serve.
            unsafe { libc::madvise(start as *mut libc::c_void, bytes, libc::MADV_HUGEPAGE) };
        }
        HugeSlice {
            ptr: NonNull::new(start as *mut T).expect("mmap returned null"),
            len,
            map,
            map_len,
            _owns: PhantomData,
        }
    }
}

impl<T> Deref for HugeSlice<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: ptr points to len zero-initialized (valid, by ZeroValid) elements that
        // live as long as the mapping, i.e. as long as self.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for HugeSlice<T> {
    fn drop(&mut self) {
        // SAFETY: the elements are ours and dropped once; then the mapping goes, which
        // nothing references any more.
        unsafe {
            core::ptr::drop_in_place(core::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                self.len,
            ));
            libc::munmap(self.map, self.map_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

    #[test]
    fn small_and_huge_slices_start_zeroed_and_hold_writes() {
        for len in [1, 1000, (4 << 20) / 8 + 3] {
            let s: HugeSlice<AtomicU64> = HugeSlice::zeroed(len);
            assert_eq!(s.len(), len);
            assert!(s.iter().all(|a| a.load(Relaxed) == 0));
            s[len - 1].store(7, Relaxed);
            assert_eq!(s[len - 1].load(Relaxed), 7);
            if len * 8 >= HUGE_PAGE {
                assert_eq!(
                    s.as_ptr() as usize % HUGE_PAGE,
                    0,
                    "huge slices are 2 MiB aligned"
                );
            }
        }
    }
}
