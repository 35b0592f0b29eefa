//! [`WriteChunk`] and [`ReadChunk`]: slots of an [`SpscRing`](super::SpscRing)
//! filled or read in place.

use bytemuck::Pod;
use shm_segment::Segment;

use super::{forked_bulk, Consumer, Producer};
use crate::error::BulkError;
use crate::sync::ValueCell;

/// Slots reserved by [`Producer::write_chunk`], filled in place.
///
/// Elements are written in order: [`write`](WriteChunk::write) or
/// [`write_bytes`](WriteChunk::write_bytes) of element `i` needs elements
/// `0..i` written first (rewriting one already written is fine), and a
/// commit publishes only the written prefix. So a slot reserved but never
/// written is never published: it would hold whatever an earlier lap left
/// there. [`as_mut_slices`](WriteChunk::as_mut_slices) zeroes the unwritten
/// slots and counts them all as written.
///
/// A chunk that lives across a `fork` is inert in the child, like its
/// producer: [`write`](WriteChunk::write) and [`commit`](WriteChunk::commit)
/// do nothing there, [`write_bytes`](WriteChunk::write_bytes) fails with
/// [`BulkError::ForkedHandle`], and
/// [`as_mut_slices`](WriteChunk::as_mut_slices) gives empty slices.
///
/// # Examples
///
/// ```
/// let (mut tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
/// let mut chunk = tx.write_chunk(1)?;
/// chunk.write(0, &1);
/// chunk.commit_all();
/// assert_eq!(rx.pop(), Ok(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct WriteChunk<'a, T, R = Segment> {
    pub(super) producer: &'a mut Producer<T, R>,
    pub(super) len: usize,
    /// Elements `0..written` were written and may be published.
    pub(super) written: usize,
}

impl<T: Pod, R> WriteChunk<'_, T, R> {
    /// Reserved slots.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, _rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
    /// assert_eq!(tx.write_chunk(3)?.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no slot is reserved.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, _rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
    /// assert!(tx.write_chunk(0)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot(&self, i: usize) -> *mut ValueCell<T> {
        assert!(
            i < self.len,
            "slot {i} is outside the {}-slot chunk",
            self.len
        );
        self.producer
            .cell(self.producer.tail.wrapping_add(i as u64))
    }

    /// Checks that element `i` may be written now (its predecessors are)
    /// and returns whether it is new to the written prefix.
    fn in_order(&self, i: usize) -> bool {
        assert!(
            i <= self.written,
            "element {i} of the chunk written before element {}: fill a WriteChunk in order",
            self.written
        );
        i == self.written
    }

    /// How many elements, from the first, were written and will be
    /// published by [`commit_all`](WriteChunk::commit_all).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, _rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
    /// let mut chunk = tx.write_chunk(3)?;
    /// chunk.write(0, &1);
    /// chunk.write(1, &2);
    /// chunk.write(0, &3); // rewriting counts once
    /// assert_eq!(chunk.written(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn written(&self) -> usize {
        self.written
    }

    /// Counts the first `n` elements as written without writing them, for
    /// a producer that filled them in place through the slices of an
    /// earlier chunk's [`as_mut_slices`](WriteChunk::as_mut_slices) over the
    /// same slots (nothing was published since, so this chunk starts where
    /// that one did): how a binding that hands out the slots across calls,
    /// such as the Python package's write chunks, publishes them later
    /// without zeroing them again. An element counted but never written
    /// publishes whatever the slot held (an earlier lap's data, or zeroes):
    /// wrong data, never undefined behaviour (`T` is `Pod`).
    ///
    /// # Panics
    ///
    /// If `n > len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u32>::new_heap(4)?;
    /// let mut chunk = tx.write_chunk(2)?;
    /// // SAFETY: only this process uses the ring.
    /// let (a, _) = unsafe { chunk.as_mut_slices() };
    /// let first = a.as_mut_ptr();
    /// drop(chunk); // nothing published
    /// // SAFETY: the slots are still the producer's: nothing was published.
    /// unsafe { first.write(7) };
    /// let mut chunk = tx.write_chunk(1)?;
    /// chunk.mark_written(1);
    /// chunk.commit_all();
    /// assert_eq!(rx.pop(), Ok(7));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mark_written(&mut self, n: usize) {
        assert!(
            n <= self.len,
            "WriteChunk::mark_written({n}) on a chunk of {} slots",
            self.len
        );
        self.written = self.written.max(n);
    }

    /// Writes the whole element `i` of the chunk.
    ///
    /// # Panics
    ///
    /// If `i >= len()`, or if element `i - 1` was not written yet (elements
    /// are written in order; see [`WriteChunk`]).
    ///
    /// # Examples
    ///
    /// See [`Producer::write_chunk`].
    pub fn write(&mut self, i: usize, value: &T) {
        if !self.producer.epoch.is_current() {
            return; // the parent's reserved slot: not ours to write
        }
        let slot = self.slot(i);
        let new = self.in_order(i);
        // SAFETY: a reserved slot (bounds asserted, pointer masked) that only
        // the producer touches until commit; T is Pod.
        unsafe { ValueCell::write(slot, *value) }
        self.written += usize::from(new);
    }

    /// Appends elements after the written prefix, as many of `values` as the
    /// chunk still has room for, with one copy (two when the chunk wraps
    /// around the end of the ring); returns how many. The fast way to fill a
    /// chunk from a slice, as rtrb's `fill_from_iter`. 0 from a chunk
    /// inherited across `fork`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u32>::new_heap(8)?;
    /// let mut chunk = tx.write_chunk(4)?;
    /// chunk.write(0, &1);
    /// assert_eq!(chunk.write_slice(&[2, 3, 4, 5, 6]), 3); // the chunk is full
    /// assert_eq!(chunk.commit_all(), 4);
    /// let mut out = [0; 4];
    /// assert_eq!(rx.pop_into(&mut out), 4);
    /// assert_eq!(out, [1, 2, 3, 4]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_slice(&mut self, values: &[T]) -> usize {
        if !self.producer.epoch.is_current() {
            return 0;
        }
        let n = values.len().min(self.len - self.written);
        self.producer.copy_to_free(self.written, &values[..n]);
        self.written += n;
        n
    }

    /// Writes `bytes` into element `i` at byte `offset`, straight into the
    /// slot (no intermediate `T`): how large elements are filled without an
    /// extra copy. The first write to an element zeroes the rest of it, so
    /// no byte of an earlier lap is published; later writes to the same
    /// element leave its other bytes alone.
    ///
    /// # Panics
    ///
    /// As [`write`](WriteChunk::write): `i >= len()`, or element `i - 1`
    /// not written yet.
    ///
    /// # Examples
    ///
    /// See [`Producer::write_chunk`].
    pub fn write_bytes(&mut self, i: usize, offset: usize, bytes: &[u8]) -> Result<(), BulkError> {
        if !self.producer.epoch.is_current() {
            return Err(forked_bulk());
        }
        let size = std::mem::size_of::<T>();
        if offset.checked_add(bytes.len()).is_none_or(|end| end > size) {
            return Err(BulkError::TooFew {
                requested: offset.saturating_add(bytes.len()),
                available: size,
            });
        }
        let slot = self.slot(i);
        let new = self.in_order(i);
        let end = offset + bytes.len();
        // SAFETY: as in `write`, and `offset + len <= size_of::<T>()`, so
        // every range written lies inside the element.
        unsafe {
            ValueCell::with_mut(slot, |p| {
                let p = p.cast::<u8>();
                if new {
                    std::ptr::write_bytes(p, 0, offset);
                    std::ptr::write_bytes(p.add(end), 0, size - end);
                }
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.add(offset), bytes.len())
            })
        };
        self.written += usize::from(new);
        Ok(())
    }

    /// The reserved slots as two mutable slices (the second is non-empty
    /// when the chunk wraps around), for filling in place. The slots not
    /// written yet are zeroed first (never an earlier lap's data), and
    /// every slot of the chunk counts as written from then on.
    ///
    /// # Safety
    ///
    /// No other process may read or write these slots while the slices
    /// live. Under the ring protocol nobody does; a peer that breaks the
    /// protocol (or writes the memory directly) would make this a data race.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u32>::new_heap(4)?;
    /// let mut chunk = tx.write_chunk(4)?;
    /// // SAFETY: only this process uses the ring.
    /// let (a, b) = unsafe { chunk.as_mut_slices() };
    /// a.iter_mut().chain(b).enumerate().for_each(|(i, x)| *x = i as u32);
    /// chunk.commit_all();
    /// assert_eq!(rx.pop(), Ok(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(loom))]
    pub unsafe fn as_mut_slices(&mut self) -> (&mut [T], &mut [T]) {
        if !self.producer.epoch.is_current() {
            return (&mut [], &mut []);
        }
        for i in self.written..self.len {
            // SAFETY: as in `write`.
            unsafe { ValueCell::write(self.slot(i), T::zeroed()) }
        }
        self.written = self.len;
        let [(a, a_len), (b, b_len)] = self.as_mut_ptrs();
        // SAFETY: both runs lie in the slot array and are reserved for the
        // producer (`as_mut_ptrs`); exclusivity against other processes is
        // the caller's promise; T is Pod so any bytes are valid.
        unsafe {
            (
                std::slice::from_raw_parts_mut(a, a_len),
                std::slice::from_raw_parts_mut(b, b_len),
            )
        }
    }

    /// The reserved slots as raw runs `(first element, elements)`: from the
    /// chunk's start, then (empty unless the chunk wraps) from the ring's
    /// first slot. Nothing is zeroed and nothing counts as written: write
    /// through them, then [`mark_written`](WriteChunk::mark_written). For
    /// code that must not make a Rust reference over the slots, because a
    /// buffer it copies from may alias them (Python's, say). Two empty runs
    /// (dangling, aligned pointers) in a `fork`ed child.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u32>::new_heap(4)?;
    /// let mut chunk = tx.write_chunk(2)?;
    /// let [(a, n), (_, m)] = chunk.as_mut_ptrs();
    /// assert_eq!(n + m, 2);
    /// // SAFETY: reserved slots, only this process uses the ring.
    /// unsafe { a.write(7) };
    /// chunk.mark_written(1);
    /// chunk.commit(1);
    /// assert_eq!(rx.pop(), Ok(7));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(loom))]
    pub fn as_mut_ptrs(&mut self) -> [(*mut T, usize); 2] {
        if !self.producer.epoch.is_current() {
            return [(std::ptr::NonNull::dangling().as_ptr(), 0); 2];
        }
        let cap = self.producer.shared.capacity as usize;
        let start = (self.producer.tail & self.producer.shared.mask) as usize;
        let first = self.len.min(cap - start);
        let base = self.producer.cell(0).cast::<T>();
        // SAFETY: `start < capacity`: inside the slot array.
        let at = unsafe { base.add(start) };
        [(at, first), (base, self.len - first)]
    }

    /// Publishes the first `n` elements, which must have been written. The
    /// rest of the reservation is given back unpublished.
    ///
    /// # Panics
    ///
    /// If `n > len()`, or if `n` is more than the elements written
    /// ([`written`](WriteChunk::written)): publishing an unwritten slot
    /// would show the consumer an earlier lap's data. Nothing is published
    /// then.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
    /// let mut c = tx.write_chunk(3)?;
    /// c.write(0, &9);
    /// c.commit(1);
    /// assert_eq!(rx.slots(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit(self, n: usize) {
        assert!(
            n <= self.len,
            "WriteChunk::commit({n}) on a chunk of {} slots",
            self.len
        );
        if !self.producer.epoch.is_current() {
            return;
        }
        assert!(
            n <= self.written,
            "WriteChunk::commit({n}) with only {} of the chunk's {} slots written",
            self.written,
            self.len
        );
        self.producer.publish(n as u64);
    }

    /// Publishes every element written (the prefix
    /// [`written`](WriteChunk::written) counts) and returns how many; a
    /// slot reserved but never written is given back unpublished. 0 from a
    /// chunk inherited across `fork`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
    /// let mut chunk = tx.write_chunk(3)?;
    /// chunk.write(0, &7);
    /// assert_eq!(chunk.commit_all(), 1); // slots 1 and 2 were never written
    /// assert_eq!((rx.pop(), rx.slots()), (Ok(7), 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit_all(self) -> usize {
        if !self.producer.epoch.is_current() {
            return 0;
        }
        let n = self.written;
        self.commit(n);
        n
    }
}

/// Ready elements borrowed by [`Consumer::read_chunk`].
///
/// A chunk that lives across a `fork` is inert in the child, like its
/// consumer: [`commit`](ReadChunk::commit) releases nothing there,
/// [`read_bytes`](ReadChunk::read_bytes) fails with
/// [`BulkError::ForkedHandle`], and [`as_slices`](ReadChunk::as_slices)
/// gives empty slices. ([`read`](ReadChunk::read), which cannot fail, still
/// copies the slot: reading changes nothing the parent relies on.)
///
/// # Examples
///
/// ```
/// let (mut tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
/// tx.push(6).unwrap();
/// let chunk = rx.read_chunk(1)?;
/// assert_eq!(chunk.read(0), 6);
/// chunk.commit_all();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ReadChunk<'a, T, R = Segment> {
    pub(super) consumer: &'a mut Consumer<T, R>,
    pub(super) len: usize,
}

impl<T: Pod, R> ReadChunk<'_, T, R> {
    /// Elements in the chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
    /// tx.push_slice(&[1, 2]);
    /// assert_eq!(rx.read_chunk(2)?.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the chunk is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
    /// assert!(rx.read_chunk(0)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot(&self, i: usize) -> *const ValueCell<T> {
        assert!(
            i < self.len,
            "element {i} is outside the {}-element chunk",
            self.len
        );
        self.consumer
            .cell(self.consumer.head.wrapping_add(i as u64))
    }

    /// A copy of element `i`. Panics if `i >= len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
    /// tx.push(4).unwrap();
    /// assert_eq!(rx.read_chunk(1)?.read(0), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read(&self, i: usize) -> T {
        // SAFETY: a ready slot (bounds asserted, pointer masked) the producer
        // does not touch until we commit; T is Pod.
        unsafe { ValueCell::read(self.slot(i)) }
    }

    /// Copies the chunk's first elements into `out`, as many as both hold,
    /// with one copy (two when the chunk wraps around the end of the ring);
    /// returns how many. 0 from a chunk inherited across `fork`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u32>::new_heap(8)?;
    /// tx.push_slice(&[1, 2, 3]);
    /// let chunk = rx.read_chunk(3)?;
    /// let mut out = [0; 8];
    /// assert_eq!(chunk.read_slice(&mut out), 3);
    /// chunk.commit_all();
    /// assert_eq!(&out[..3], &[1, 2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_slice(&self, out: &mut [T]) -> usize {
        if !self.consumer.epoch.is_current() {
            return 0;
        }
        let n = out.len().min(self.len);
        self.consumer.copy_from_ready(0, &mut out[..n]);
        n
    }

    /// Copies bytes of element `i` from byte `offset` into `out`.
    ///
    /// # Examples
    ///
    /// See [`Consumer::read_chunk`].
    pub fn read_bytes(&self, i: usize, offset: usize, out: &mut [u8]) -> Result<(), BulkError> {
        if !self.consumer.epoch.is_current() {
            return Err(forked_bulk());
        }
        let size = std::mem::size_of::<T>();
        if offset.checked_add(out.len()).is_none_or(|end| end > size) {
            return Err(BulkError::TooFew {
                requested: offset.saturating_add(out.len()),
                available: size,
            });
        }
        // SAFETY: as in `read`, and `offset + len <= size_of::<T>()`.
        unsafe {
            ValueCell::with(self.slot(i), |p| {
                std::ptr::copy_nonoverlapping(
                    p.cast::<u8>().add(offset),
                    out.as_mut_ptr(),
                    out.len(),
                )
            })
        };
        Ok(())
    }

    /// The ready elements as two slices (the second non-empty when the chunk wraps).
    ///
    /// # Safety
    ///
    /// No other process may write these slots while the slices live. Under
    /// the ring protocol nobody does; a peer that breaks it would make this
    /// a data race.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
    /// tx.push_slice(&[1, 2, 3]);
    /// let chunk = rx.read_chunk(3)?;
    /// // SAFETY: only this process uses the ring.
    /// let (a, b) = unsafe { chunk.as_slices() };
    /// assert_eq!([a, b].concat(), [1, 2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(loom))]
    pub unsafe fn as_slices(&self) -> (&[T], &[T]) {
        if !self.consumer.epoch.is_current() {
            return (&[], &[]);
        }
        let [(a, a_len), (b, b_len)] = self.as_ptrs();
        // SAFETY: both runs lie in the slot array and hold complete elements
        // (`as_ptrs`); no writer while they live is the caller's promise.
        unsafe {
            (
                std::slice::from_raw_parts(a, a_len),
                std::slice::from_raw_parts(b, b_len),
            )
        }
    }

    /// The ready elements as raw runs `(first element, elements)`, as
    /// [`as_slices`](ReadChunk::as_slices) without making references: for
    /// code whose destination buffer may alias the slots. Two empty runs
    /// (dangling, aligned pointers) in a `fork`ed child.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
    /// tx.push_slice(&[1, 2, 3]);
    /// let chunk = rx.read_chunk(3)?;
    /// let [(a, n), (_, m)] = chunk.as_ptrs();
    /// assert_eq!(n + m, 3);
    /// // SAFETY: ready slots, only this process uses the ring.
    /// assert_eq!(unsafe { a.read() }, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(loom))]
    pub fn as_ptrs(&self) -> [(*const T, usize); 2] {
        if !self.consumer.epoch.is_current() {
            return [(std::ptr::NonNull::<T>::dangling().as_ptr().cast_const(), 0); 2];
        }
        let cap = self.consumer.shared.capacity as usize;
        let start = (self.consumer.head & self.consumer.shared.mask) as usize;
        let first = self.len.min(cap - start);
        let base = self.consumer.cell(0).cast::<T>().cast_const();
        // SAFETY: `start < capacity`: inside the slot array.
        let at = unsafe { base.add(start) };
        [(at, first), (base, self.len - first)]
    }

    /// Releases the first `n` elements; the rest stay in the ring, first
    /// in line for the next read.
    ///
    /// # Panics
    ///
    /// If `n > len()` (nothing is released then).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
    /// tx.push_slice(&[1, 2]);
    /// rx.read_chunk(2)?.commit(1);
    /// assert_eq!(rx.pop(), Ok(2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit(self, n: usize) {
        assert!(
            n <= self.len,
            "ReadChunk::commit({n}) on a chunk of {} elements",
            self.len
        );
        if !self.consumer.epoch.is_current() {
            return;
        }
        self.consumer.release(n as u64);
    }

    /// Releases every element of the chunk.
    ///
    /// # Examples
    ///
    /// See [`Consumer::read_chunk`].
    pub fn commit_all(self) {
        let n = self.len;
        self.commit(n);
    }
}
