//! The Rust element types behind a Python ring: plain byte arrays of a
//! given size and alignment ("carriers"), one per supported `(itemsize,
//! alignment)` pair, so that a Python ring of dtype `D` has exactly the
//! header (element size and alignment) and slot layout of a Rust ring of
//! any `T` with `size_of::<T>() == D.itemsize` and
//! `align_of::<T>() == D.alignment`.
//!
//! Each carrier monomorphises the rings once, behind the object-safe
//! [`SpscCore`], [`ProducerCore`], [`ConsumerCore`] and [`MpmcCore`], whose
//! methods move elements as bytes. The list of pairs is [`LAYOUTS`]; the
//! compile time it costs is measured in the crate's notes.

use std::sync::Mutex;
use std::time::Duration;

use bytemuck::{Pod, Zeroable};
use shm_ring::{BulkError, MpmcRing, PopError, PushError, RingError, RingOptions, SpscRing};
use shm_segment::copy::{copy_from_shared, copy_shared_to_shared, copy_to_shared};
use shm_segment::Segment;

macro_rules! carrier {
    ($name:ident, $align:literal) => {
        /// `S` bytes aligned to the carrier's alignment. Instantiated only
        /// with `S` a non-zero multiple of the alignment (see [`LAYOUTS`]),
        /// so it has no padding: size `S`, alignment as declared.
        #[derive(Clone, Copy)]
        #[repr(C, align($align))]
        pub(crate) struct $name<const S: usize>([u8; S]);

        // SAFETY: a byte array: zero is a valid value.
        unsafe impl<const S: usize> Zeroable for $name<S> {}
        // SAFETY: a byte array (any bits valid, no pointers, 'static), and
        // without padding because every instantiation (the `layouts!` list
        // below, checked by its `const` assertion) has `S` a multiple of
        // the alignment.
        unsafe impl<const S: usize> Pod for $name<S> {}
    };
}

carrier!(A1, 1);
carrier!(A2, 2);
carrier!(A4, 4);
carrier!(A8, 8);
carrier!(A16, 16);
carrier!(A32, 32);
carrier!(A64, 64);

/// A push that did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushFail {
    Full,
    Forked,
    PeerGone,
}

/// A pop that took nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PopFail {
    Empty,
    Forked,
    PeerGone,
    Stalled(u64),
}

fn push_fail<T>(e: PushError<T>) -> PushFail {
    match e {
        PushError::Full(_) => PushFail::Full,
        PushError::ForkedHandle(_) => PushFail::Forked,
        PushError::PeerGone(_) => PushFail::PeerGone,
    }
}

fn pop_fail(e: PopError) -> PopFail {
    match e {
        PopError::Empty => PopFail::Empty,
        PopError::ForkedHandle => PopFail::Forked,
        PopError::PeerGone => PopFail::PeerGone,
        PopError::Stalled { position } => PopFail::Stalled(position),
    }
}

/// An element from `src` (exactly its size: the callers check).
#[inline]
fn load<T: Pod>(src: &[u8]) -> T {
    bytemuck::pod_read_unaligned(src)
}

/// An SPSC ring of some carrier, as its Python object holds it.
pub(crate) trait SpscCore: Send + Sync {
    fn producer(&self) -> Result<Box<dyn ProducerCore>, RingError>;
    fn consumer(&self) -> Result<Box<dyn ConsumerCore>, RingError>;
    fn capacity(&self) -> usize;
    fn len(&self) -> usize;
    fn segment(&self) -> &Segment;
}

/// The producer role of an SPSC ring, moving elements as bytes.
pub(crate) trait ProducerCore: Send + Sync {
    /// `src` is one element's bytes.
    fn push(&mut self, src: &[u8]) -> Result<(), PushFail>;
    fn push_blocking(&mut self, src: &[u8], timeout: Duration) -> Result<(), PushFail>;
    /// Pushes up to `n` elements from `src`, as many as there is room for;
    /// returns how many.
    ///
    /// # Safety
    ///
    /// `src` is valid for reads of `n` elements' bytes (any alignment), and
    /// nothing writes them during the call.
    unsafe fn push_raw(&mut self, src: *const u8, n: usize) -> Result<usize, BulkError>;
    /// Reserves up to `n` free slots that follow each other in memory (no
    /// wrap), zeroed; returns their first byte and how many.
    fn chunk_begin(&mut self, n: usize) -> Result<(*mut u8, usize), BulkError>;
    /// Publishes the first `n` slots of the chunk `chunk_begin` reserved.
    fn chunk_commit(&mut self, n: usize) -> Result<(), BulkError>;
    fn slots(&self) -> usize;
    fn position(&self) -> u64;
    fn is_inert(&self) -> bool;
    fn is_abandoned(&self) -> bool;
}

/// The consumer role of an SPSC ring, moving elements as bytes.
pub(crate) trait ConsumerCore: Send + Sync {
    /// `dst` is one element's bytes.
    fn pop(&mut self, dst: &mut [u8]) -> Result<(), PopFail>;
    fn pop_blocking(&mut self, dst: &mut [u8], timeout: Duration) -> Result<(), PopFail>;
    /// Takes up to `n` elements into `dst`; returns how many.
    ///
    /// # Safety
    ///
    /// `dst` is valid for writes of `n` elements' bytes (any alignment), and
    /// nothing else accesses them during the call.
    unsafe fn pop_raw(&mut self, dst: *mut u8, n: usize) -> Result<usize, BulkError>;
    /// Borrows up to `n` ready elements that follow each other in memory
    /// (no wrap); returns their first byte and how many.
    fn chunk_begin(&mut self, n: usize) -> Result<(*const u8, usize), BulkError>;
    /// Releases the first `n` elements of the chunk.
    fn chunk_commit(&mut self, n: usize) -> Result<(), BulkError>;
    fn slots(&self) -> usize;
    fn position(&self) -> u64;
    fn is_inert(&self) -> bool;
    fn is_abandoned(&self) -> bool;
}

/// An MPMC ring of some carrier.
pub(crate) trait MpmcCore: Send + Sync {
    fn push(&self, src: &[u8]) -> Result<(), PushFail>;
    fn push_blocking(&self, src: &[u8], timeout: Duration) -> Result<(), PushFail>;
    fn pop(&self, dst: &mut [u8]) -> Result<(), PopFail>;
    fn pop_blocking(&self, dst: &mut [u8], timeout: Duration) -> Result<(), PopFail>;
    /// As [`ProducerCore::push_raw`].
    ///
    /// # Safety
    ///
    /// As there.
    unsafe fn push_raw(&self, src: *const u8, n: usize) -> usize;
    /// As [`ConsumerCore::pop_raw`].
    ///
    /// # Safety
    ///
    /// As there.
    unsafe fn pop_raw(&self, dst: *mut u8, n: usize) -> usize;
    fn capacity(&self) -> usize;
    fn len(&self) -> usize;
    fn recovered(&self) -> (u64, u64);
    fn segment(&self) -> &Segment;
}

struct Spsc<T: Pod>(SpscRing<T>);

impl<T: Pod + Send + Sync> SpscCore for Spsc<T> {
    fn producer(&self) -> Result<Box<dyn ProducerCore>, RingError> {
        Ok(Box::new(Prod(self.0.producer()?)))
    }
    fn consumer(&self) -> Result<Box<dyn ConsumerCore>, RingError> {
        Ok(Box::new(Cons(self.0.consumer()?)))
    }
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn segment(&self) -> &Segment {
        self.0.region()
    }
}

struct Prod<T: Pod>(shm_ring::Producer<T>);

impl<T: Pod> Prod<T> {
    /// Free slots from the tail to the end of the slot array, at most `n`.
    fn run(&self, n: usize) -> usize {
        let cap = self.0.capacity();
        let start = (self.0.position() % cap as u64) as usize;
        n.min(cap - start).min(self.0.slots())
    }
}

impl<T: Pod + Send + Sync> ProducerCore for Prod<T> {
    #[inline]
    fn push(&mut self, src: &[u8]) -> Result<(), PushFail> {
        self.0.push(load(src)).map_err(push_fail)
    }
    fn push_blocking(&mut self, src: &[u8], timeout: Duration) -> Result<(), PushFail> {
        self.0.push_blocking(load(src), timeout).map_err(push_fail)
    }
    unsafe fn push_raw(&mut self, src: *const u8, n: usize) -> Result<usize, BulkError> {
        let k = n.min(self.0.slots());
        let mut chunk = self.0.write_chunk(k)?;
        // Counted as written before the slices are taken: they are not
        // zeroed, as the copy below fills every one of them.
        chunk.mark_written(k);
        // Raw runs, no references: a Python buffer may be anything, another
        // segment that others write (atomically), even an array left over
        // these very slots (NumPy keeps a chunk's memory as an array's base
        // after the chunk ended).
        let [(a, a_len), (b, b_len)] = chunk.as_mut_ptrs();
        let size = std::mem::size_of::<T>();
        // SAFETY: the runs are reserved slots, this producer's alone under
        // the ring protocol until the commit below; `src` holds `n >= k =
        // a_len + b_len` elements (the caller's promise); byte copies, so
        // its alignment does not matter; shared-to-shared copies, atomic on
        // both sides, allow the overlap.
        unsafe {
            copy_shared_to_shared(src, a.cast::<u8>(), a_len * size);
            copy_shared_to_shared(src.add(a_len * size), b.cast::<u8>(), b_len * size);
        }
        chunk.commit_all();
        Ok(k)
    }
    fn chunk_begin(&mut self, n: usize) -> Result<(*mut u8, usize), BulkError> {
        let k = self.run(n);
        let mut chunk = self.0.write_chunk(k)?;
        // SAFETY: reserved slots, this producer's alone until published;
        // the slices end here, only the pointer is kept (the caller fills
        // the slots through it before `chunk_commit`). Taking them zeroes
        // the slots (a new chunk never shows an earlier lap's data); no
        // other access to the slots happens while they live.
        let (a, _) = unsafe { chunk.as_mut_slices() };
        let ptr = a.as_mut_ptr().cast::<u8>();
        // The chunk ends here unpublished: `chunk_commit` takes the same
        // slots again.
        Ok((ptr, k))
    }
    fn chunk_commit(&mut self, n: usize) -> Result<(), BulkError> {
        let mut chunk = self.0.write_chunk(n)?;
        chunk.mark_written(n);
        chunk.commit(n);
        Ok(())
    }
    fn slots(&self) -> usize {
        self.0.slots()
    }
    fn position(&self) -> u64 {
        self.0.position()
    }
    fn is_inert(&self) -> bool {
        self.0.is_inert()
    }
    fn is_abandoned(&self) -> bool {
        self.0.is_abandoned()
    }
}

struct Cons<T: Pod>(shm_ring::Consumer<T>);

impl<T: Pod + Send + Sync> ConsumerCore for Cons<T> {
    #[inline]
    fn pop(&mut self, dst: &mut [u8]) -> Result<(), PopFail> {
        let v = self.0.pop().map_err(pop_fail)?;
        dst.copy_from_slice(bytemuck::bytes_of(&v));
        Ok(())
    }
    fn pop_blocking(&mut self, dst: &mut [u8], timeout: Duration) -> Result<(), PopFail> {
        let v = self.0.pop_blocking(timeout).map_err(pop_fail)?;
        dst.copy_from_slice(bytemuck::bytes_of(&v));
        Ok(())
    }
    unsafe fn pop_raw(&mut self, dst: *mut u8, n: usize) -> Result<usize, BulkError> {
        let k = n.min(self.0.slots());
        let chunk = self.0.read_chunk(k)?;
        let [(a, a_len), (b, b_len)] = chunk.as_ptrs();
        let size = std::mem::size_of::<T>();
        // SAFETY: ready slots, which the producer does not write until the
        // commit below (the ring protocol); `dst` has room for `n >= k`
        // elements (the caller's promise); byte copies; shared-to-shared,
        // atomic on both sides and allowing overlap, as in `push_raw` (the
        // destination buffer may be shared memory, even these slots).
        unsafe {
            copy_shared_to_shared(a.cast::<u8>(), dst, a_len * size);
            copy_shared_to_shared(b.cast::<u8>(), dst.add(a_len * size), b_len * size);
        }
        chunk.commit_all();
        Ok(k)
    }
    fn chunk_begin(&mut self, n: usize) -> Result<(*const u8, usize), BulkError> {
        let cap = self.0.capacity();
        let start = (self.0.position() % cap as u64) as usize;
        let k = n.min(cap - start).min(self.0.slots());
        let chunk = self.0.read_chunk(k)?;
        // Ready slots, not written by the producer until released; only the
        // pointer is kept.
        let [(a, _), _] = chunk.as_ptrs();
        Ok((a.cast::<u8>(), k))
    }
    fn chunk_commit(&mut self, n: usize) -> Result<(), BulkError> {
        self.0.read_chunk(n)?.commit_all();
        Ok(())
    }
    fn slots(&self) -> usize {
        self.0.slots()
    }
    fn position(&self) -> u64 {
        self.0.position()
    }
    fn is_inert(&self) -> bool {
        self.0.is_inert()
    }
    fn is_abandoned(&self) -> bool {
        self.0.is_abandoned()
    }
}

/// Elements moved per staged batch of the MPMC bulk calls (about 16 KiB).
const STAGE_BYTES: usize = 16 * 1024;

struct Mpmc<T: Pod> {
    ring: MpmcRing<T>,
    /// A reused staging buffer: `MpmcRing::push_slice`/`pop_into` take Rust
    /// slices, which must not be made over a Python buffer (it may be
    /// another process's shared memory).
    stage: Mutex<Vec<T>>,
}

impl<T: Pod + Send + Sync> MpmcCore for Mpmc<T> {
    fn push(&self, src: &[u8]) -> Result<(), PushFail> {
        self.ring.push(load(src)).map_err(push_fail)
    }
    fn push_blocking(&self, src: &[u8], timeout: Duration) -> Result<(), PushFail> {
        self.ring
            .push_blocking(load(src), timeout)
            .map_err(push_fail)
    }
    fn pop(&self, dst: &mut [u8]) -> Result<(), PopFail> {
        let v = self.ring.pop().map_err(pop_fail)?;
        dst.copy_from_slice(bytemuck::bytes_of(&v));
        Ok(())
    }
    fn pop_blocking(&self, dst: &mut [u8], timeout: Duration) -> Result<(), PopFail> {
        let v = self.ring.pop_blocking(timeout).map_err(pop_fail)?;
        dst.copy_from_slice(bytemuck::bytes_of(&v));
        Ok(())
    }
    unsafe fn push_raw(&self, src: *const u8, n: usize) -> usize {
        let size = std::mem::size_of::<T>();
        let per = (STAGE_BYTES / size).max(1);
        let mut stage = self.stage.lock().unwrap_or_else(|e| e.into_inner());
        let mut done = 0;
        while done < n {
            let k = (n - done).min(per);
            stage.clear();
            stage.resize(k, T::zeroed());
            // SAFETY: `src` holds `n` elements (the caller's promise), and
            // whoever else may write it (it may be shared memory) does so
            // atomically; the stage is this call's (under its lock), with
            // room for `k`, and not inside the Python buffer; byte copy.
            unsafe {
                copy_from_shared(
                    src.add(done * size),
                    bytemuck::cast_slice_mut(&mut stage[..]),
                )
            };
            let pushed = self.ring.push_slice(&stage);
            done += pushed;
            if pushed < k {
                break;
            }
        }
        done
    }
    unsafe fn pop_raw(&self, dst: *mut u8, n: usize) -> usize {
        let size = std::mem::size_of::<T>();
        let per = (STAGE_BYTES / size).max(1);
        let mut stage = self.stage.lock().unwrap_or_else(|e| e.into_inner());
        let mut done = 0;
        while done < n {
            let k = (n - done).min(per);
            stage.clear();
            stage.resize(k, T::zeroed());
            let got = self.ring.pop_into(&mut stage);
            // SAFETY: `dst` has room for `n` elements (the caller's promise),
            // and whoever else may access it (it may be shared memory) does
            // so atomically; the source is `got <= k` elements of the stage,
            // which is private and not inside the Python buffer; byte copy.
            unsafe { copy_to_shared(bytemuck::cast_slice(&stage[..got]), dst.add(done * size)) };
            done += got;
            if got < k {
                break;
            }
        }
        done
    }
    fn capacity(&self) -> usize {
        self.ring.capacity()
    }
    fn len(&self) -> usize {
        self.ring.len()
    }
    fn recovered(&self) -> (u64, u64) {
        let r = self.ring.recovered();
        (r.skipped, r.reclaimed)
    }
    fn segment(&self) -> &Segment {
        self.ring.region()
    }
}

/// How a ring is made or found.
pub(crate) enum Open<'a> {
    Create {
        name: &'a str,
        capacity: usize,
        opts: RingOptions,
    },
    Attach(Segment),
}

fn spsc<T: Pod + Send + Sync>(how: Open<'_>) -> Result<Box<dyn SpscCore>, RingError> {
    let ring = match how {
        Open::Create {
            name,
            capacity,
            opts,
        } => SpscRing::<T>::create_posix_with(name, capacity, opts)?,
        Open::Attach(seg) => SpscRing::<T>::attach(seg)?,
    };
    Ok(Box::new(Spsc(ring)))
}

fn mpmc<T: Pod + Send + Sync>(how: Open<'_>) -> Result<Box<dyn MpmcCore>, RingError> {
    let ring = match how {
        Open::Create {
            name,
            capacity,
            opts,
        } => MpmcRing::<T>::create_posix_with(name, capacity, opts)?,
        Open::Attach(seg) => MpmcRing::<T>::attach(seg)?,
    };
    Ok(Box::new(Mpmc {
        ring,
        stage: Mutex::new(Vec::new()),
    }))
}

/// The constructors of one carrier.
#[derive(Clone, Copy)]
pub(crate) struct Makers {
    pub(crate) spsc: fn(Open<'_>) -> Result<Box<dyn SpscCore>, RingError>,
    pub(crate) mpmc: fn(Open<'_>) -> Result<Box<dyn MpmcCore>, RingError>,
}

macro_rules! layouts {
    ($( $carrier:ident $align:literal [ $($size:literal),* ] )*) => {
        /// Every supported `(itemsize, alignment)` pair.
        pub(crate) const LAYOUTS: &[(usize, usize)] = &[ $( $( ($size, $align), )* )* ];

        /// The constructors for elements of `size` bytes aligned to `align`,
        /// if that pair is supported.
        #[allow(clippy::modulo_one)] // the assertions' `% 1` for alignment 1
        pub(crate) fn makers(size: usize, align: usize) -> Option<Makers> {
            match (size, align) {
                $( $(
                    ($size, $align) => {
                        const _: () = assert!($size % $align == 0 && $size > 0);
                        Some(Makers {
                            spsc: spsc::<$carrier<$size>>,
                            mpmc: mpmc::<$carrier<$size>>,
                        })
                    }
                )* )*
                _ => None,
            }
        }
    };
}

// The supported layouts (itemsize, alignment), about 0.9 s of release
// compile time each on a shared 2-vCPU VM: every numpy scalar type (1, 2,
// 4, 8 bytes at their natural alignment; complex64 8/4, complex128 16/8,
// long double 16/16 and its complex 32/16), aligned structs of up to 64
// bytes at alignment 4 and 8, byte records (alignment 1: `[u8; N]`,
// numpy 'V<n>'/'S<n>' and packed structs) of common sizes, and 64-byte
// aligned cache lines. Add a size to a line to support it.
layouts! {
    A1 1 [1, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32, 64, 128, 256, 1024, 4096]
    A2 2 [2, 4, 8]
    A4 4 [4, 8, 12, 16, 24, 32]
    A8 8 [8, 16, 24, 32, 48, 64]
    A16 16 [16, 32, 64]
    A32 32 [32]
    A64 64 [64]
}
