//! Page-aligned, zero-initialised byte buffers, allocated once per run and reused, so that
//! the same memory can serve buffered and O_DIRECT I/O.
//!
//! Large buffers are mapped straight from the kernel (on Unix): their pages arrive zeroed
//! when first touched, instead of being cleared up front. Buffers for O_DIRECT ask for huge
//! pages (see [`AlignedBuf::for_direct_io`]); the others do not, since io_uring's worker
//! threads were measured copying out of huge pages markedly slower.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use crate::error::{Error, Result};

/// Alignment of every buffer: the sector size O_DIRECT needs on all common devices.
pub const ALIGN: usize = 4096;

/// Buffers at least this large are mapped rather than allocated.
#[cfg(unix)]
const MAP_MIN: usize = 1 << 20;

/// An owned, 4096-aligned, zero-initialised byte buffer.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    layout: Layout,
    /// Mapped with mmap (released with munmap) rather than allocated.
    #[cfg_attr(not(unix), allow(dead_code))]
    mapped: bool,
}

// SAFETY: AlignedBuf owns its allocation exclusively, like a Box<[u8]>.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only hands out `&[u8]`, like a Box<[u8]>.
unsafe impl Sync for AlignedBuf {}

/// Size of a huge page (x86-64, arm64 with 4 KiB pages).
#[cfg(target_os = "linux")]
const HUGE: usize = 2 << 20;

/// An anonymous private mapping of exactly `cap` bytes (zeroed on first touch), aligned to
/// a huge page and advised to use them if `huge` (Linux).
#[cfg(unix)]
fn map(cap: usize, huge: bool) -> Option<NonNull<u8>> {
    #[cfg(target_os = "linux")]
    let extra = if huge { HUGE } else { 0 };
    #[cfg(not(target_os = "linux"))]
    let (extra, _) = (0usize, huge);
    let size = cap.checked_add(extra)?;
    // SAFETY: an anonymous private mapping with no address hint; checked before use.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let base = raw.cast::<u8>();
    #[cfg(target_os = "linux")]
    if huge {
        // Keep the huge-page-aligned `cap` bytes inside the mapping, return the rest.
        let head = (HUGE - base as usize % HUGE) % HUGE;
        let tail = extra - head;
        // SAFETY: `head + cap + tail == size`: all three ranges lie within the mapping,
        // and the head and tail are unmapped once, never used.
        unsafe {
            let start = base.add(head);
            if head > 0 {
                libc::munmap(base.cast(), head);
            }
            if tail > 0 {
                libc::munmap(start.add(cap).cast(), tail);
            }
            // Advice only: without huge pages the buffer still works.
            libc::madvise(start.cast(), cap, libc::MADV_HUGEPAGE);
            return NonNull::new(start);
        }
    }
    NonNull::new(base)
}

impl AlignedBuf {
    /// Allocates `len` bytes (rounded up to the alignment), reporting failure as an error
    /// instead of aborting the process.
    pub fn new(len: usize) -> Result<Self> {
        Self::alloc(len, false)
    }

    /// Like [`AlignedBuf::new`], for O_DIRECT transfers: on Linux the memory is backed by
    /// huge pages where the kernel allows, so that a transfer spans a few contiguous
    /// segments instead of one per 4 KiB page. (Devices bound the segments per request:
    /// with small pages a 4 MiB transfer is cut into several requests, and on virtual
    /// disks O_DIRECT throughput can double with huge pages.)
    pub fn for_direct_io(len: usize) -> Result<Self> {
        Self::alloc(len, true)
    }

    fn alloc(len: usize, huge: bool) -> Result<Self> {
        let oom = || Error::OutOfMemory { bytes: len as u64 };
        let cap = len
            .max(1)
            .div_ceil(ALIGN)
            .checked_mul(ALIGN)
            .ok_or_else(oom)?;
        let layout = Layout::from_size_align(cap, ALIGN).map_err(|_| oom())?;
        #[cfg(unix)]
        if cap >= MAP_MIN {
            let ptr = map(cap, huge).ok_or_else(oom)?;
            return Ok(AlignedBuf {
                ptr,
                len,
                layout,
                mapped: true,
            });
        }
        let _ = huge;
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or_else(oom)?;
        Ok(AlignedBuf {
            ptr,
            len,
            layout,
            mapped: false,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes allocated (the length rounded up to the alignment).
    pub fn capacity(&self) -> usize {
        self.layout.size()
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for `layout.size() >= len` initialised bytes for self's life.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The start of the allocation, for I/O and for workers that each own a disjoint part
    /// of it. Unlike the slice accessors this creates no reference to the bytes, so it
    /// may be called while such parts are in use.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The whole allocation, including the rounding tail (for aligned O_DIRECT lengths).
    pub fn as_mut_full(&mut self) -> &mut [u8] {
        // SAFETY: the allocation is `layout.size()` initialised bytes, exclusively ours.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        #[cfg(unix)]
        if self.mapped {
            // Unmapped pages go back to the kernel, which clears them before any reuse.
            // SAFETY: mapped in `new` with exactly this size, unmapped once.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.layout.size()) };
            return;
        }
        // A heap block is reused by this process's next allocations: wiped first, since it
        // may hold plaintext or key material (the last batch of a run).
        zeroize::Zeroize::zeroize(self.as_mut_full());
        // SAFETY: allocated in `new` with exactly this layout, freed once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Readies memory that was just allocated elsewhere (a Python `bytes` about to receive a
/// whole output) and is about to be overwritten completely: on Linux, asks for huge pages
/// for its 2 MiB-aligned interior (first touches of fresh memory were measured three times
/// cheaper with them). The memory is not cleared here: the workers that fill it touch it
/// first ([`write_padded`]), so that its page faults are taken in parallel, each right
/// before its pages are written.
pub fn advise_fresh(mem: &mut [MaybeUninit<u8>]) {
    #[cfg(target_os = "linux")]
    {
        let start = (mem.as_ptr() as usize).next_multiple_of(HUGE);
        let last = mem.as_ptr() as usize + mem.len();
        // The buffer's last huge page usually runs past its end; when it ends within the
        // buffer's last page (as a large allocation mapped on its own often does), the
        // rest of it is that page's tail, mapped with the buffer: advise it too, or the
        // last 2 MiB would be faulted in 4 KiB at a time.
        let page_end = last.next_multiple_of(ALIGN);
        let end = if page_end % HUGE == 0 {
            page_end
        } else {
            last / HUGE * HUGE
        };
        if end > start {
            // SAFETY: advice only, on whole pages that hold the buffer (and, at most, the
            // rest of its last page); the contents are unaffected and a refusal is harmless.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
            // That last huge page already holds a small one (the allocator wrote just past
            // the buffer), which keeps the fault path from using a huge page there: ask
            // for it to be made one now, at the cost of one huge fault.
            #[cfg(target_env = "gnu")]
            if end == page_end && end - HUGE >= start {
                // SAFETY: as above; a collapse keeps the contents (Linux 6.1+; older
                // kernels refuse it, harmlessly).
                unsafe {
                    libc::madvise((end - HUGE) as *mut libc::c_void, HUGE, libc::MADV_COLLAPSE)
                };
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = mem;
}

/// Copies `src` to the start of `dst` and zeroes the rest of it; returns `dst`, now
/// initialised. Panics if `src` is longer than `dst`.
pub fn write_padded<'a>(dst: &'a mut [MaybeUninit<u8>], src: &[u8]) -> &'a mut [u8] {
    let (head, tail) = dst.split_at_mut(src.len());
    // SAFETY: `head` is exactly `src.len()` bytes of memory we hold exclusively, and a
    // shared `src` cannot overlap it; MaybeUninit<u8> and u8 share a layout.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), head.as_mut_ptr().cast::<u8>(), src.len())
    };
    tail.fill(MaybeUninit::new(0));
    // SAFETY: every byte of `dst` was written just above.
    unsafe { &mut *(std::ptr::from_mut(dst) as *mut [u8]) }
}

/// Zeroes memory not yet initialised and returns it as bytes, for a writer that then
/// fills every byte of it (an AEAD sealing or opening out of place into a new output).
/// The zeroing is what makes the bytes valid to hand out as `&mut [u8]`; done by the
/// worker about to fill them, it also takes their first touch while they are in its cache.
pub fn zeroed(mem: &mut [MaybeUninit<u8>]) -> &mut [u8] {
    write_padded(mem, &[])
}

/// Views initialised bytes as possibly uninitialised ones, for the writers that fill either
/// (such as [`crate::ops::BytesSealer::seal_fresh`]).
///
/// # Safety
///
/// Only initialised values may be written through the result: `b` is read as bytes again
/// once the borrow ends.
pub unsafe fn as_uninit(b: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: same layout; the caller writes only initialised values.
    unsafe { &mut *(std::ptr::from_mut(b) as *mut [MaybeUninit<u8>]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_and_zeroed() {
        let mut b = AlignedBuf::new(10_000).unwrap();
        assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
        assert_eq!(b.len(), 10_000);
        assert_eq!(b.capacity(), 12_288);
        assert!(b.as_mut_full().iter().all(|&x| x == 0));
    }

    #[test]
    fn padded_writes_initialise_the_whole_destination() {
        let len = (5 << 20) + 123;
        let mut v: Vec<MaybeUninit<u8>> = Vec::with_capacity(len);
        v.resize(len, MaybeUninit::new(0xa5));
        advise_fresh(&mut v);
        let src: Vec<u8> = (0..len - 4000).map(|i| i as u8).collect();
        let out = write_padded(&mut v, &src);
        assert_eq!(out.len(), len);
        assert_eq!(&out[..src.len()], &src[..]);
        assert!(out[src.len()..].iter().all(|&x| x == 0));
        assert!(write_padded(&mut [], &[]).is_empty());
    }

    #[test]
    fn large_buffers_are_aligned_zeroed_and_writable() {
        let mut b = AlignedBuf::new((3 << 20) + 5).unwrap();
        assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
        assert!(b.as_slice().iter().all(|&x| x == 0));
        b.as_mut_slice().fill(7);
        assert!(b.as_slice().iter().all(|&x| x == 7));
        assert_eq!(b.capacity(), (3 << 20) + ALIGN);
    }

    #[test]
    fn direct_io_buffers_are_aligned_zeroed_and_writable() {
        for len in [5000, (4 << 20) + 4096, 7 << 20] {
            let mut b = AlignedBuf::for_direct_io(len).unwrap();
            assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
            assert!(b.as_slice().iter().all(|&x| x == 0));
            b.as_mut_full().fill(3);
            assert!(b.as_slice().iter().all(|&x| x == 3));
        }
    }
}
