//! Race-free copies between private buffers and memory that other threads or
//! processes may write at the same time.
//!
//! In Rust's memory model a plain `memcpy` (`ptr::copy`,
//! `ptr::copy_nonoverlapping`, `<[u8]>::copy_from_slice`) that overlaps a
//! concurrent write is a data race, which is undefined behaviour even when
//! the bytes are thrown away. So every access to a shared side here is atomic
//! (the "byte-wise atomic memcpy" of RFC 3301): each byte is read or written
//! whole, and concurrent copies may interleave at byte or word granularity but
//! never race. A private side is ordinary memory that nobody else touches
//! during the call.
//!
//! | function | from | to |
//! |---|---|---|
//! | [`copy_from_shared`] | shared pointer | private `&mut [u8]` |
//! | [`copy_from_shared_raw`] | shared pointer | private pointer, may be uninitialised |
//! | [`copy_to_shared`] | private `&[u8]` | shared pointer |
//! | [`copy_shared_to_shared`] | shared pointer | shared pointer, may overlap (`memmove`) |
//! | [`fill_shared`] | a byte | shared pointer |
//!
//! Use them wherever either side may be memory someone else can write: a
//! mapping, a pool block, a ring slot, or a buffer lent by foreign code (a
//! Python buffer may itself be a view of shared memory). The checked, safe
//! forms are [`Region::read_at`](crate::Region::read_at),
//! [`write_at`](crate::Region::write_at) and [`fill`](crate::Region::fill);
//! these are the raw building blocks under them.
//!
//! How:
//!
//! - Short copies use relaxed `AtomicU64` accesses where the shared address is
//!   8-aligned and `AtomicU8` at the edges. LLVM does not vectorise atomics, so
//!   this loop moves about 8 bytes a cycle: enough below a kilobyte.
//! - From 1024 bytes on, x86-64 uses `rep movsb`/`rep stosb` in
//!   inline assembly, which runs at `memcpy` speed on CPUs with ERMS/FSRM. The
//!   hardware executes it as a sequence of byte-or-wider atomic accesses, and
//!   inline assembly is modelled as whatever Rust operations it could be: here
//!   relaxed atomic byte accesses, so it is race-free as well.
//! - Shared to shared, where both sides need atomic accesses at their own
//!   alignment: one forward `rep movsb` when that is also correct for an
//!   overlap (x86-64, long copies), otherwise through a private bounce buffer
//!   in chunks, ordered like `memmove` so an overlap copies right.
//! - Miri cannot run inline assembly, so under Miri every copy takes the
//!   atomic loop, which Miri checks.
//!
//! What stays outside Rust's model: two *concurrent* copies that overlap *at
//! different alignments*, or a copy over a structure's own `AtomicU32`, are
//! "mixed-size" atomic accesses. The hardware makes every byte atomic, but the
//! model (inherited from C++) does not define mixed sizes, and Miri reports
//! them. Copies of the same ranges, which is what readers and writers of one
//! record do, are fully defined.
//!
//! A copy is not a snapshot: while someone writes, it may see a mix of old
//! and new bytes. Synchronise through atomics (a sequence number, a ring
//! index) to know when the bytes are whole.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

/// From this many bytes on, x86-64 copies with `rep movsb`/`rep stosb`
/// (measured crossover on Zen 3 with FSRM: between 512 and 1024 bytes).
#[cfg_attr(any(miri, not(target_arch = "x86_64")), allow(dead_code))]
const ASM_THRESHOLD: usize = 1024;

const WORD: usize = std::mem::size_of::<u64>();

/// The private bounce buffer of [`copy_shared_to_shared`] (on the stack).
const BOUNCE: usize = 4096;

/// `rep movsb`: copies `len` bytes forward, one byte at a time as far as the
/// architecture is concerned (each byte read and written whole), at `memcpy`
/// speed on CPUs with ERMS/FSRM. Inline assembly is modelled as the Rust
/// operations it could be: relaxed atomic byte accesses here.
///
/// # Safety
///
/// `src` is readable and `dst` writable for `len` bytes; if they overlap,
/// `dst` is not above `src` (the copy runs forward).
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[inline]
unsafe fn rep_movsb(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: the caller's promise; the direction flag is clear on entry to
    // inline assembly, so the copy runs forward.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rsi") src => _,
            inout("rdi") dst => _,
            options(nostack, preserves_flags)
        );
    }
}

/// Bytes from `addr` up to the next multiple of 8, at most `len`.
fn head_len(addr: usize, len: usize) -> usize {
    addr.wrapping_neg().rem_euclid(WORD).min(len)
}

/// Copies `out.len()` bytes from shared memory at `src` into `out`.
///
/// # Safety
///
/// - `src` is valid for reads of `out.len()` bytes for the whole call;
/// - every concurrent access to those bytes is atomic (a function of this
///   module, an atomic type, or another process doing the same); plain
///   reads by others are fine only if nobody writes.
///
/// `out` cannot overlap `src`: a `&mut [u8]` is never over shared memory.
///
/// # Examples
///
/// ```
/// use shm_segment::copy::{copy_from_shared, copy_to_shared};
/// use shm_segment::{HeapRegion, Region};
///
/// let region = HeapRegion::new(64); // stands in for a mapping
/// // SAFETY: 3 bytes at offset 8 are inside the region, and every access
/// // to it is atomic (these functions and `Region`'s methods).
/// unsafe { copy_to_shared(b"abc", region.as_ptr().add(8)) };
/// let mut out = [0u8; 3];
/// // SAFETY: as above.
/// unsafe { copy_from_shared(region.as_ptr().add(8), &mut out) };
/// assert_eq!(&out, b"abc");
/// ```
pub unsafe fn copy_from_shared(src: *const u8, out: &mut [u8]) {
    // SAFETY: the caller's promise for `src`; `out` is writable for its
    // length and is private (a `&mut`), so it does not overlap `src`.
    unsafe { copy_from_shared_raw(src, out.as_mut_ptr(), out.len()) }
}

/// Copies `len` bytes from shared memory at `src` to private memory at
/// `dst`, which may be uninitialised (a fresh allocation, a Python `bytes`
/// made without contents); afterwards those `len` bytes are initialised.
///
/// # Safety
///
/// - `src` is valid for reads of `len` bytes for the whole call, and every
///   concurrent access to them is atomic (as [`copy_from_shared`]);
/// - `dst` is valid for writes of `len` bytes, and nobody else reads or
///   writes them during the call (private memory);
/// - the two ranges do not overlap (use [`copy_shared_to_shared`] when the
///   destination may be shared memory too).
///
/// # Examples
///
/// ```
/// use shm_segment::copy::copy_from_shared_raw;
/// use shm_segment::{HeapRegion, Region};
///
/// let region = HeapRegion::new(64);
/// region.write_at(0, b"hello")?;
/// let mut v: Vec<u8> = Vec::with_capacity(5);
/// // SAFETY: 5 bytes of the region are readable and accessed only
/// // atomically; `v` has room for 5 bytes, is private, and does not overlap.
/// unsafe {
///     copy_from_shared_raw(region.as_ptr(), v.as_mut_ptr(), 5);
///     v.set_len(5); // all 5 written above
/// }
/// assert_eq!(v, b"hello");
/// # Ok::<(), shm_segment::Error>(())
/// ```
pub unsafe fn copy_from_shared_raw(src: *const u8, dst: *mut u8, len: usize) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if len >= ASM_THRESHOLD {
        // SAFETY: `src` is readable and `dst` writable for `len` bytes, and
        // they do not overlap (caller). `rep movsb` touches exactly those
        // bytes, each atomically; the direction flag is clear on entry to
        // inline assembly.
        unsafe { rep_movsb(src, dst, len) };
        return;
    }
    let head = head_len(src as usize, len);
    let mut i = 0;
    while i < head {
        // SAFETY: `i < len`: in range on both sides (caller); u8 needs no
        // alignment; `dst` is private, written plainly.
        unsafe {
            dst.add(i)
                .write(AtomicU8::from_ptr(src.add(i).cast_mut()).load(Relaxed))
        };
        i += 1;
    }
    while i + WORD <= len {
        // SAFETY: `src + i` is 8-aligned (past the head) and the 8 bytes are in
        // range; the atomic load only reads. `dst + i .. + 8` is in range and
        // private, written unaligned.
        unsafe {
            let word = AtomicU64::from_ptr(src.add(i).cast_mut().cast::<u64>()).load(Relaxed);
            dst.add(i).cast::<u64>().write_unaligned(word);
        }
        i += WORD;
    }
    while i < len {
        // SAFETY: `i < len`: in range.
        unsafe {
            dst.add(i)
                .write(AtomicU8::from_ptr(src.add(i).cast_mut()).load(Relaxed))
        };
        i += 1;
    }
}

/// Copies `data` into shared memory at `dst`.
///
/// # Safety
///
/// - `dst` is valid for writes of `data.len()` bytes for the whole call;
/// - every concurrent access to those bytes is atomic (as
///   [`copy_from_shared`]).
///
/// `data` cannot overlap `dst`: a `&[u8]` is never over memory that is
/// written during the call.
///
/// # Examples
///
/// ```
/// use shm_segment::copy::copy_to_shared;
/// use shm_segment::{HeapRegion, Region};
///
/// let region = HeapRegion::new(16);
/// // SAFETY: 4 bytes at offset 12 are inside the region, which is only
/// // accessed atomically.
/// unsafe { copy_to_shared(&[1, 2, 3, 4], region.as_ptr().add(12)) };
/// assert_eq!(region.to_vec()[12..], [1, 2, 3, 4]);
/// ```
pub unsafe fn copy_to_shared(data: &[u8], dst: *mut u8) {
    // SAFETY: the caller's promise for `dst`; `data` is readable for its
    // length, and a shared slice is not over memory written during the call.
    unsafe { to_shared_raw(data.as_ptr(), dst, data.len()) }
}

/// [`copy_to_shared`] from a raw private source: `src` readable for `len`
/// bytes and not written during the call, `dst` as [`copy_to_shared`], no
/// overlap.
unsafe fn to_shared_raw(src: *const u8, dst: *mut u8, len: usize) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if len >= ASM_THRESHOLD {
        // SAFETY: `dst` is writable and `src` readable for `len` bytes, not
        // overlapping (caller). Each byte is written atomically.
        unsafe { rep_movsb(src, dst, len) };
        return;
    }
    let head = head_len(dst as usize, len);
    let mut i = 0;
    while i < head {
        // SAFETY: in range (caller); u8 needs no alignment.
        unsafe { AtomicU8::from_ptr(dst.add(i)).store(src.add(i).read(), Relaxed) };
        i += 1;
    }
    while i + WORD <= len {
        // SAFETY: `dst + i` is 8-aligned past the head and the 8 bytes are in
        // range; the private source is read unaligned.
        unsafe {
            let word = src.add(i).cast::<u64>().read_unaligned();
            AtomicU64::from_ptr(dst.add(i).cast::<u64>()).store(word, Relaxed);
        }
        i += WORD;
    }
    while i < len {
        // SAFETY: in range.
        unsafe { AtomicU8::from_ptr(dst.add(i)).store(src.add(i).read(), Relaxed) };
        i += 1;
    }
}

/// Copies `len` bytes from `src` to `dst` where both may be shared memory,
/// even the same mapping with overlapping ranges: the result is `memmove`'s
/// (as [`std::ptr::copy`]), as if the source were first read whole, provided
/// nobody else writes the ranges meanwhile. Both sides are accessed only
/// atomically.
///
/// Use it when the source or destination is a buffer you do not control (a
/// Python buffer may be a memoryview of a mapping, even of the destination).
///
/// # Safety
///
/// - `src` is valid for reads and `dst` for writes of `len` bytes for the
///   whole call;
/// - every concurrent access to either range is atomic (as
///   [`copy_from_shared`]).
///
/// # Examples
///
/// ```
/// use shm_segment::copy::copy_shared_to_shared;
/// use shm_segment::{HeapRegion, Region};
///
/// let region = HeapRegion::new(8);
/// region.write_at(0, b"abcdef")?;
/// // SAFETY: both ranges (0..6 and 2..8) are inside the region, which is
/// // only accessed atomically; they may overlap.
/// unsafe { copy_shared_to_shared(region.as_ptr(), region.as_ptr().add(2), 6) };
/// assert_eq!(region.to_vec(), b"ababcdef");
/// # Ok::<(), shm_segment::Error>(())
/// ```
pub unsafe fn copy_shared_to_shared(src: *const u8, dst: *mut u8, len: usize) {
    if len == 0 || std::ptr::eq(src, dst) {
        // Copying a range onto itself changes nothing; storing the bytes
        // back could undo a concurrent writer's work.
        return;
    }
    let (s, d) = (src as usize, dst as usize);
    // The destination starts inside the source: copy from the end, as
    // `memmove` does, so that no byte is overwritten before it is read.
    let backward = d > s && d - s < len;
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if len >= ASM_THRESHOLD && !backward {
        // SAFETY: `src` readable and `dst` writable for `len` bytes (caller).
        // Forward `rep movsb` is architecturally a byte-by-byte forward
        // copy, so it is also right when `dst` is below an overlapping `src`
        // (glibc's `memmove` relies on the same); each byte is read and
        // written atomically; the direction flag is clear on entry.
        unsafe { rep_movsb(src, dst, len) };
        return;
    }
    let mut bounce = [MaybeUninit::<u8>::uninit(); BOUNCE];
    let buf = bounce.as_mut_ptr().cast::<u8>();
    let mut done = 0;
    while done < len {
        let k = (len - done).min(BOUNCE);
        // The chunk's offset: from the start going forward, from the end
        // going backward. Forward, each chunk writes only bytes at or below
        // the source bytes already read (d < s) or outside the source; backward,
        // only bytes at or above them: no unread source byte is overwritten.
        let at = if backward { len - done - k } else { done };
        // SAFETY: `at + k <= len`: in range on both sides (caller). The
        // bounce buffer is a private local with room for `k <= BOUNCE`
        // bytes, and overlaps neither side. Each side is accessed
        // atomically by the two copies, each at its own alignment.
        unsafe {
            copy_from_shared_raw(src.add(at), buf, k);
            to_shared_raw(buf, dst.add(at), k);
        }
        done += k;
    }
}

/// Sets `len` bytes of shared memory at `dst` to `byte`.
///
/// # Safety
///
/// As [`copy_to_shared`]: `dst` is valid for writes of `len` bytes for the
/// whole call, and every concurrent access to them is atomic.
///
/// # Examples
///
/// ```
/// use shm_segment::copy::fill_shared;
/// use shm_segment::{HeapRegion, Region};
///
/// let region = HeapRegion::new(4);
/// // SAFETY: bytes 1..3 are inside the region, only accessed atomically.
/// unsafe { fill_shared(region.as_ptr().add(1), 0xff, 2) };
/// assert_eq!(region.to_vec(), [0, 0xff, 0xff, 0]);
/// ```
pub unsafe fn fill_shared(dst: *mut u8, byte: u8, len: usize) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if len >= ASM_THRESHOLD {
        // SAFETY: `dst` is writable for `len` bytes (caller); each byte is
        // written atomically.
        unsafe {
            std::arch::asm!(
                "rep stosb",
                inout("rcx") len => _,
                inout("rdi") dst => _,
                in("al") byte,
                options(nostack, preserves_flags)
            );
        }
        return;
    }
    let head = head_len(dst as usize, len);
    let word = u64::from_ne_bytes([byte; WORD]);
    let mut i = 0;
    while i < head {
        // SAFETY: in range (caller).
        unsafe { AtomicU8::from_ptr(dst.add(i)).store(byte, Relaxed) };
        i += 1;
    }
    while i + WORD <= len {
        // SAFETY: 8-aligned past the head, in range.
        unsafe { AtomicU64::from_ptr(dst.add(i).cast::<u64>()).store(word, Relaxed) };
        i += WORD;
    }
    while i < len {
        // SAFETY: in range.
        unsafe { AtomicU8::from_ptr(dst.add(i)).store(byte, Relaxed) };
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HeapRegion, Region};

    /// Lengths around the word size, the assembly threshold and the bounce
    /// buffer; Miri runs them too (the atomic loop), with fewer alignments
    /// for the long ones.
    const LENS: &[usize] = &[0, 1, 7, 8, 9, 17, 40, 1023, 1024, 1025, 4096, 5000];

    fn shifts(len: usize) -> &'static [usize] {
        if cfg!(miri) && len > 64 {
            &[0, 1, 7]
        } else {
            &[0, 1, 2, 3, 4, 5, 6, 7, 8]
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len as u32).map(|i| (i * 7 + 3) as u8).collect()
    }

    /// Every length and both alignments of each side, against `copy_from_slice`.
    #[test]
    fn matches_a_plain_copy_at_every_offset_and_length() {
        let src = pattern(6000);
        for &len in LENS {
            for &shift in shifts(len) {
                let mut shared = vec![0u8; len + 16];
                let mut out = vec![0u8; len + 16];
                let data = &src[shift..shift + len];
                // SAFETY: `shared` is ours alone and long enough.
                unsafe { copy_to_shared(data, shared.as_mut_ptr().add(shift)) };
                assert_eq!(
                    &shared[shift..shift + len],
                    data,
                    "to_shared len {len} shift {shift}"
                );
                assert!(shared[..shift].iter().all(|&b| b == 0));
                assert!(shared[shift + len..].iter().all(|&b| b == 0));
                // SAFETY: as above.
                unsafe { copy_from_shared(shared.as_ptr().add(shift), &mut out[1..1 + len]) };
                assert_eq!(
                    &out[1..1 + len],
                    data,
                    "from_shared len {len} shift {shift}"
                );
                assert_eq!(out[0], 0);
                assert!(out[1 + len..].iter().all(|&b| b == 0));
                // SAFETY: as above.
                unsafe { fill_shared(shared.as_mut_ptr().add(shift), 0xAB, len) };
                assert!(shared[shift..shift + len].iter().all(|&b| b == 0xAB));
                assert!(shared[..shift].iter().all(|&b| b == 0));
                assert!(shared[shift + len..].iter().all(|&b| b == 0));
            }
        }
    }

    /// Into uninitialised memory: every byte is written (Miri would report
    /// a read of an uninitialised one), at every alignment of the source.
    #[test]
    fn from_shared_raw_fills_uninitialised_memory() {
        let src = pattern(6000);
        for &len in LENS {
            for &shift in shifts(len) {
                let mut out: Vec<u8> = Vec::with_capacity(len + 1);
                // SAFETY: `src[shift..shift + len]` is readable and not
                // written; `out` has room for `len + 1` bytes, is ours, and
                // does not overlap. All `len` bytes are written, so
                // `set_len` exposes no uninitialised byte.
                unsafe {
                    copy_from_shared_raw(src.as_ptr().add(shift), out.as_mut_ptr().add(1), len);
                    out.as_mut_ptr().write(0xEE);
                    out.set_len(len + 1);
                }
                assert_eq!(out[0], 0xEE);
                assert_eq!(
                    &out[1..],
                    &src[shift..shift + len],
                    "len {len} shift {shift}"
                );
            }
        }
    }

    /// Shared to shared against `copy_within` (`memmove`): apart, and
    /// overlapping in both directions by a byte, a word and more, at
    /// different alignments of the two sides.
    #[test]
    fn shared_to_shared_is_memmove() {
        // 9000: more than two bounce buffers. Miri takes fewer cases of the
        // long lengths (it runs about a million times slower).
        let lens = LENS
            .iter()
            .chain(if cfg!(miri) { &[][..] } else { &[9000][..] });
        for &len in lens {
            let gap = len + 16;
            let long_under_miri = cfg!(miri) && len > 64;
            let deltas: Vec<isize> = if long_under_miri {
                vec![-9, -1, 1, 8, len as isize - 1, gap as isize]
            } else {
                [-9, -8, -7, -1, 0, 1, 7, 8, 9, len as isize - 1]
                    .into_iter()
                    .chain([-(gap as isize), gap as isize])
                    .collect()
            };
            let base = gap + 9;
            let orig = pattern(base * 2 + len + 32);
            for &shift in shifts(len) {
                for &delta in &deltas {
                    let s = base + shift;
                    let Some(d) = s.checked_add_signed(delta) else {
                        continue;
                    };
                    let mut mem = orig.clone();
                    let mut want = orig.clone();
                    want.copy_within(s..s + len, d);
                    let p = mem.as_mut_ptr();
                    // SAFETY: both ranges are inside `mem`, which is ours
                    // alone; overlap is allowed.
                    unsafe { copy_shared_to_shared(p.add(s), p.add(d), len) };
                    assert!(
                        mem == want,
                        "len {len} shift {shift} delta {delta}: differs from memmove"
                    );
                }
            }
        }
    }

    /// Under Miri: a writer and readers of the same bytes in two threads are
    /// not a data race, and each byte read is one that was written whole.
    #[test]
    fn concurrent_copies_do_not_race_and_keep_bytes_whole() {
        let len = if cfg!(miri) { 40 } else { 4096 + 3 };
        let rounds = if cfg!(miri) { 6 } else { 2000 };
        let shared = HeapRegion::new(len + 8);
        let other = HeapRegion::new(len + 8);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for r in 0..rounds {
                    let byte = if r % 2 == 0 { 0x11 } else { 0x22 };
                    let data = vec![byte; len];
                    // SAFETY: in range; every access to `shared` is atomic.
                    unsafe { copy_to_shared(&data, shared.as_ptr().add(1)) };
                }
            });
            scope.spawn(|| {
                let mut out = vec![0u8; len];
                for _ in 0..rounds {
                    // SAFETY: in range; every access to `shared` and `other`
                    // is atomic, and only this thread writes `other`.
                    unsafe {
                        copy_from_shared(shared.as_ptr().add(1), &mut out);
                        copy_shared_to_shared(shared.as_ptr().add(1), other.as_ptr().add(3), len);
                    }
                    assert!(out.iter().all(|&b| matches!(b, 0 | 0x11 | 0x22)));
                }
            });
        });
        let after = other.to_vec();
        assert!(after[3..3 + len]
            .iter()
            .all(|&b| matches!(b, 0 | 0x11 | 0x22)));
    }
}
