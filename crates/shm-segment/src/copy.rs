//! Copies between a private buffer and memory that other threads or
//! processes may write at the same time.
//!
//! In Rust's memory model a plain `memcpy` that overlaps a concurrent write is
//! a data race, which is undefined behaviour even when the bytes are thrown
//! away. So every access to the shared side here is atomic (the "byte-wise
//! atomic memcpy" of RFC 3301): each byte is read or written whole, and
//! concurrent copies may interleave at byte or word granularity but never
//! race. The private side is an ordinary Rust buffer that nobody else can see.
//!
//! - Short copies use relaxed `AtomicU64` accesses where the shared address is
//!   8-aligned and `AtomicU8` at the edges. LLVM does not vectorise atomics, so
//!   this loop moves about 8 bytes a cycle: enough below a kilobyte.
//! - From [`ASM_THRESHOLD`] bytes on, x86-64 uses `rep movsb`/`rep stosb` in
//!   inline assembly, which runs at `memcpy` speed on CPUs with ERMS/FSRM. The
//!   hardware executes it as a sequence of byte-or-wider atomic accesses, and
//!   inline assembly is modelled as whatever Rust operations it could be: here
//!   relaxed atomic byte accesses, so it is race-free as well.
//! - Miri cannot run inline assembly, so under Miri every copy takes the
//!   atomic loop, which Miri checks.
//!
//! What stays outside Rust's model: two copies that overlap *at different
//! alignments*, or a copy over a structure's own `AtomicU32`, are "mixed-size"
//! atomic accesses. The hardware makes every byte atomic, but the model
//! (inherited from C++) does not define mixed sizes, and Miri reports them.
//! Copies of the same ranges, which is what readers and writers of one record
//! do, are fully defined.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

/// From this many bytes on, x86-64 copies with `rep movsb`/`rep stosb`
/// (measured crossover on Zen 3 with FSRM: between 512 and 1024 bytes).
const ASM_THRESHOLD: usize = 1024;

const WORD: usize = std::mem::size_of::<u64>();

/// Bytes from `addr` up to the next multiple of 8, at most `len`.
fn head_len(addr: usize, len: usize) -> usize {
    addr.wrapping_neg().rem_euclid(WORD).min(len)
}

/// Copies `out.len()` bytes from shared memory at `src` into `out`.
///
/// # Safety
///
/// `src` is valid for reads of `out.len()` bytes for the whole call, and every
/// concurrent access to those bytes is atomic (another call of this module or
/// an atomic type).
pub(crate) unsafe fn copy_from_shared(src: *const u8, out: &mut [u8]) {
    let len = out.len();
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if len >= ASM_THRESHOLD {
        // SAFETY: `src` is readable and `out` writable for `len` bytes (caller
        // and `&mut`), and they cannot overlap (`out` is a private Rust
        // buffer). `rep movsb` touches exactly those bytes, each atomically;
        // the direction flag is clear on entry to inline assembly.
        unsafe {
            std::arch::asm!(
                "rep movsb",
                inout("rcx") len => _,
                inout("rsi") src => _,
                inout("rdi") out.as_mut_ptr() => _,
                options(nostack, preserves_flags)
            );
        }
        return;
    }
    let dst = out.as_mut_ptr();
    let head = head_len(src as usize, len);
    let mut i = 0;
    while i < head {
        // SAFETY: `i < len`: in range (caller); u8 needs no alignment.
        unsafe { *dst.add(i) = AtomicU8::from_ptr(src.add(i).cast_mut()).load(Relaxed) };
        i += 1;
    }
    while i + WORD <= len {
        // SAFETY: `src + i` is 8-aligned (past the head) and the 8 bytes are in
        // range; the load only reads. `dst + i .. + 8` is inside `out`, written
        // unaligned.
        unsafe {
            let word = AtomicU64::from_ptr(src.add(i).cast_mut().cast::<u64>()).load(Relaxed);
            dst.add(i).cast::<u64>().write_unaligned(word);
        }
        i += WORD;
    }
    while i < len {
        // SAFETY: `i < len`: in range.
        unsafe { *dst.add(i) = AtomicU8::from_ptr(src.add(i).cast_mut()).load(Relaxed) };
        i += 1;
    }
}

/// Copies `data` into shared memory at `dst`.
///
/// # Safety
///
/// `dst` is valid for writes of `data.len()` bytes for the whole call, and
/// every concurrent access to those bytes is atomic.
pub(crate) unsafe fn copy_to_shared(data: &[u8], dst: *mut u8) {
    let len = data.len();
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if len >= ASM_THRESHOLD {
        // SAFETY: `dst` is writable and `data` readable for `len` bytes; a
        // Rust slice does not overlap the shared memory (safe code never holds
        // one over it). Each byte is written atomically.
        unsafe {
            std::arch::asm!(
                "rep movsb",
                inout("rcx") len => _,
                inout("rsi") data.as_ptr() => _,
                inout("rdi") dst => _,
                options(nostack, preserves_flags)
            );
        }
        return;
    }
    let src = data.as_ptr();
    let head = head_len(dst as usize, len);
    let mut i = 0;
    while i < head {
        // SAFETY: in range (caller); u8 needs no alignment.
        unsafe { AtomicU8::from_ptr(dst.add(i)).store(*src.add(i), Relaxed) };
        i += 1;
    }
    while i + WORD <= len {
        // SAFETY: `dst + i` is 8-aligned past the head and the 8 bytes are in
        // range; the source is read unaligned from `data`.
        unsafe {
            let word = src.add(i).cast::<u64>().read_unaligned();
            AtomicU64::from_ptr(dst.add(i).cast::<u64>()).store(word, Relaxed);
        }
        i += WORD;
    }
    while i < len {
        // SAFETY: in range.
        unsafe { AtomicU8::from_ptr(dst.add(i)).store(*src.add(i), Relaxed) };
        i += 1;
    }
}

/// Sets `len` bytes of shared memory at `dst` to `byte`.
///
/// # Safety
///
/// As [`copy_to_shared`].
pub(crate) unsafe fn fill_shared(dst: *mut u8, byte: u8, len: usize) {
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

    /// Every length and both alignments of each side, against `copy_from_slice`.
    #[test]
    fn matches_a_plain_copy_at_every_offset_and_length() {
        let lens: &[usize] = if cfg!(miri) {
            &[0, 1, 7, 8, 9, 17, 40]
        } else {
            &[0, 1, 7, 8, 9, 17, 40, 1023, 1024, 1025, 5000]
        };
        let src: Vec<u8> = (0..6000u32).map(|i| (i * 7 + 3) as u8).collect();
        for &len in lens {
            for shift in 0..9 {
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
                // SAFETY: as above.
                unsafe { fill_shared(shared.as_mut_ptr().add(shift), 0xAB, len) };
                assert!(shared[shift..shift + len].iter().all(|&b| b == 0xAB));
                assert!(shared[shift + len..].iter().all(|&b| b == 0));
            }
        }
    }
}
