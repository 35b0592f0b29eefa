//! The allocator that carves pools and rings out of a `ShareMem`.
//!
//! Its state lives in the first [`ARENA_HEAD`] bytes of the anonymous
//! mapping itself, so that every process that inherited the mapping through
//! `fork(2)` allocates from the same table: a pool made in the parent after
//! the fork and a ring made in the child never overlap, and objects made
//! before the fork sit at the same offsets in both.
//!
//! Layout (little-endian words, all accessed as atomics):
//!
//! | offset | field |
//! |---|---|
//! | 0 | magic, [`MAGIC`] |
//! | 8 | lock: `ProcessId::to_word` of the holder, 0 free |
//! | 16 | top: the end of the highest extent handed out (bump pointer) |
//! | 64 + 8 i | record `i`: used (bit 63), length in units (bits 32-62), offset in units (bits 0-31); 0 empty |
//!
//! Extents are multiples of [`UNIT`] bytes at multiples of [`UNIT`] (the
//! pools' and rings' control blocks need 128-byte alignment), from
//! [`ARENA_HEAD`] up. Allocation is rare (one per pool or ring), so it takes
//! a lock: a CAS of the caller's `ProcessId` word, taken over when the
//! kernel says its holder is dead. Every change to the table is a single
//! store ordered so that a holder killed between two stores leaks space,
//! never hands one byte out twice. Every value read back is range-checked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shm_segment::{AnonShared, ProcessId, Region};

/// Bytes the allocator's own table takes at the start of a `ShareMem`.
pub(crate) const ARENA_HEAD: usize = 4096;
/// Extents start at, and are sized in, multiples of this many bytes.
pub(crate) const UNIT: usize = 128;
/// `b"PYSHMARN"` as a little-endian word.
const MAGIC: u64 = u64::from_le_bytes(*b"PYSHMARN");
const MAGIC_AT: usize = 0;
const LOCK_AT: usize = 8;
const TOP_AT: usize = 16;
const RECORDS_AT: usize = 64;
/// How many extents one `ShareMem` can hold at a time.
pub(crate) const RECORDS: usize = (ARENA_HEAD - RECORDS_AT) / 8;
const USED: u64 = 1 << 63;
/// The largest mapping whose offsets fit a record (2^32 units).
pub(crate) const MAX_LEN: usize = UNIT << 32;
/// How long a live holder may keep the lock before an allocation gives up.
const LOCK_PATIENCE: Duration = Duration::from_secs(5);

/// Why an allocation failed.
#[derive(Debug)]
pub(crate) enum ArenaError {
    /// Not enough room left (after reusing freed extents).
    NoRoom { wanted: usize, left: usize },
    /// Every record is in use.
    TooMany,
    /// A live process kept the lock for longer than [`LOCK_PATIENCE`].
    Busy { pid: u32 },
    /// A value read back from the table is out of range.
    Corrupted(String),
    /// The mapping refused an access (never, for a checked layout).
    Segment(shm_segment::Error),
}

impl std::fmt::Display for ArenaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArenaError::NoRoom { wanted, left } => write!(
                f,
                "ShareMem has no room left: {wanted} bytes wanted, {left} bytes free at its end \
                 (make the ShareMem larger, or clean up pools and rings made in it)"
            ),
            ArenaError::TooMany => write!(
                f,
                "ShareMem already holds {RECORDS} pools and rings, its most; clean some up"
            ),
            ArenaError::Busy { pid } => write!(
                f,
                "ShareMem's allocator is locked by live process {pid} for more than {}s",
                LOCK_PATIENCE.as_secs()
            ),
            ArenaError::Corrupted(what) => {
                write!(f, "ShareMem's allocator table is corrupted: {what}")
            }
            ArenaError::Segment(e) => write!(f, "ShareMem's allocator: {e}"),
        }
    }
}

impl From<shm_segment::Error> for ArenaError {
    fn from(e: shm_segment::Error) -> Self {
        ArenaError::Segment(e)
    }
}

/// The allocator over one anonymous mapping (a view of its table).
pub(crate) struct Arena<'m> {
    map: &'m AnonShared,
}

/// The lock, given back when dropped.
struct Locked<'a> {
    word: &'a AtomicU64,
    me: u64,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = self
            .word
            .compare_exchange(self.me, 0, Ordering::Release, Ordering::Relaxed);
    }
}

fn pack(off_units: u64, len_units: u64, used: bool) -> u64 {
    off_units | (len_units << 32) | if used { USED } else { 0 }
}

impl<'m> Arena<'m> {
    /// Lays out an empty table in a fresh (zeroed) mapping.
    pub(crate) fn init(map: &'m AnonShared) -> Result<Self, ArenaError> {
        let arena = Arena { map };
        map.atomic_u64(TOP_AT)?
            .store(ARENA_HEAD as u64, Ordering::Relaxed);
        map.atomic_u64(MAGIC_AT)?.store(MAGIC, Ordering::Release);
        Ok(arena)
    }

    /// The table of a mapping `init` laid out.
    pub(crate) fn of(map: &'m AnonShared) -> Result<Self, ArenaError> {
        if map.atomic_u64(MAGIC_AT)?.load(Ordering::Acquire) != MAGIC {
            return Err(ArenaError::Corrupted(
                "its magic word was overwritten".into(),
            ));
        }
        Ok(Arena { map })
    }

    fn word(&self, at: usize) -> Result<&'m AtomicU64, ArenaError> {
        Ok(self.map.atomic_u64(at)?)
    }

    fn record(&self, i: usize) -> Result<&'m AtomicU64, ArenaError> {
        debug_assert!(i < RECORDS);
        self.word(RECORDS_AT + 8 * i)
    }

    /// Takes the lock: a CAS of this process's word; a dead holder's is
    /// taken over. Gives up after [`LOCK_PATIENCE`] behind a live one.
    fn lock(&self) -> Result<Locked<'m>, ArenaError> {
        let word = self.word(LOCK_AT)?;
        let me = ProcessId::current().to_word();
        let start = Instant::now();
        let mut spins = 0u32;
        let mut expected = 0;
        loop {
            match word.compare_exchange(expected, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(Locked { word, me }),
                Err(holder) => {
                    expected = 0;
                    spins = spins.wrapping_add(1);
                    if holder == 0 {
                        continue;
                    }
                    // The holder's own process never waits on itself: the
                    // lock is held only inside `alloc`/`free`, under the GIL.
                    if spins % 64 == 0 && !ProcessId::from_word(holder).is_alive() {
                        expected = holder;
                        continue;
                    }
                    if start.elapsed() > LOCK_PATIENCE {
                        return Err(ArenaError::Busy {
                            pid: ProcessId::from_word(holder).pid,
                        });
                    }
                    std::thread::yield_now();
                }
            }
        }
    }

    /// The top (bump pointer), checked.
    fn top(&self) -> Result<usize, ArenaError> {
        let top = self.word(TOP_AT)?.load(Ordering::Acquire);
        if top < ARENA_HEAD as u64 || top > self.map.len() as u64 || top % UNIT as u64 != 0 {
            return Err(ArenaError::Corrupted(format!(
                "top {top} is outside {ARENA_HEAD}..={}",
                self.map.len()
            )));
        }
        Ok(top as usize)
    }

    /// Record `i` as (offset, length, used) in bytes, checked; `None` when empty.
    fn read(&self, i: usize) -> Result<Option<(usize, usize, bool)>, ArenaError> {
        let w = self.record(i)?.load(Ordering::Acquire);
        if w == 0 {
            return Ok(None);
        }
        let off = (w & 0xFFFF_FFFF) as usize * UNIT;
        let len = ((w >> 32) & 0x7FFF_FFFF) as usize * UNIT;
        let fits = off >= ARENA_HEAD
            && len > 0
            && off
                .checked_add(len)
                .is_some_and(|end| end <= self.map.len());
        if !fits {
            return Err(ArenaError::Corrupted(format!(
                "record {i} says {len} bytes at offset {off}, outside the mapping"
            )));
        }
        Ok(Some((off, len, w & USED != 0)))
    }

    fn write(&self, i: usize, off: usize, len: usize, used: bool) -> Result<(), ArenaError> {
        let w = pack((off / UNIT) as u64, (len / UNIT) as u64, used);
        self.record(i)?.store(w, Ordering::Release);
        Ok(())
    }

    /// Hands out `len` bytes (rounded up to [`UNIT`]), `UNIT`-aligned;
    /// returns the offset and the rounded length. Reuses the first freed
    /// extent large enough (splitting off the rest), else bumps the top.
    pub(crate) fn alloc(&self, len: usize) -> Result<(usize, usize), ArenaError> {
        let need = len
            .checked_next_multiple_of(UNIT)
            .filter(|&n| n > 0 && n < MAX_LEN)
            .ok_or(ArenaError::NoRoom {
                wanted: len,
                left: 0,
            })?;
        let _locked = self.lock()?;
        let mut empty = None;
        let mut fit = None;
        for i in 0..RECORDS {
            match self.read(i)? {
                None => empty = empty.or(Some(i)),
                Some((off, have, false)) if have >= need && fit.is_none() => {
                    fit = Some((i, off, have))
                }
                _ => {}
            }
        }
        if let Some((i, off, have)) = fit {
            // Shrink and mark used first: killed before the remainder is
            // recorded, the remainder leaks (never overlaps).
            // With no empty record for the remainder, the whole extent goes.
            let Some(j) = empty.filter(|_| have > need) else {
                self.write(i, off, have, true)?;
                return Ok((off, have));
            };
            self.write(i, off, need, true)?;
            self.write(j, off + need, have - need, false)?;
            return Ok((off, need));
        }
        let slot = empty.ok_or(ArenaError::TooMany)?;
        let top = self.top()?;
        let left = self.map.len() - top;
        if need > left {
            return Err(ArenaError::NoRoom { wanted: need, left });
        }
        // Bump first, then record: killed in between, the extent leaks.
        self.word(TOP_AT)?
            .store((top + need) as u64, Ordering::Release);
        self.write(slot, top, need, true)?;
        Ok((top, need))
    }

    /// Gives back the extent at `off` (what `alloc` returned). The top
    /// comes down over every free extent that ends at it. An offset that
    /// names no extent in use changes nothing.
    pub(crate) fn free(&self, off: usize) -> Result<(), ArenaError> {
        let _locked = self.lock()?;
        let mut found = None;
        for i in 0..RECORDS {
            if let Some((o, len, true)) = self.read(i)? {
                if o == off {
                    found = Some((i, len));
                    break;
                }
            }
        }
        let Some((i, len)) = found else {
            return Ok(());
        };
        self.write(i, off, len, false)?;
        // Lower the top over free extents that end at it: clear the record
        // first, then lower (killed in between: a leak, never an overlap).
        loop {
            let top = self.top()?;
            let mut lowered = false;
            for j in 0..RECORDS {
                if let Some((o, l, false)) = self.read(j)? {
                    if o + l == top {
                        self.record(j)?.store(0, Ordering::Release);
                        self.word(TOP_AT)?.store(o as u64, Ordering::Release);
                        lowered = true;
                        break;
                    }
                }
            }
            if !lowered {
                return Ok(());
            }
        }
    }

    /// Bytes handed out (in use) and bytes still free (freed extents and
    /// the room above the top).
    pub(crate) fn usage(&self) -> Result<(usize, usize), ArenaError> {
        let mut used = 0;
        let mut freed = 0;
        for i in 0..RECORDS {
            match self.read(i)? {
                Some((_, len, true)) => used += len,
                Some((_, len, false)) => freed += len,
                None => {}
            }
        }
        Ok((used, freed + (self.map.len() - self.top()?)))
    }
}
