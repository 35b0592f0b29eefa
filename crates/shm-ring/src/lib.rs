//! Lock-free rings that live in shared memory.
//!
//! - [`SpscRing`]: one producer and one consumer, in any processes; the
//!   fastest path (no CAS, each side caches the other's position).
//! - [`MpmcRing`]: any number of producers and consumers in any processes
//!   (per-slot sequence numbers; see the [`mpmc`] module for why).
//!   Linearizable (`Empty` and `Full` only when the ring is empty or full,
//!   as crossbeam's `ArrayQueue`), and crash-safe: a process killed between
//!   claiming a position and publishing or releasing it leaves a hole that
//!   the survivors prove dead and repair, so nothing published is lost and
//!   the ring never wedges.
//!
//! Both hold `bytemuck::Pod` elements in any [`Region`](shm_segment::Region)
//! (System V, POSIX, memfd, anonymous, heap), behind the validated header of
//! `shm-segment`; both have single and bulk operations (bulk ones publish
//! once per batch), and blocking calls with a timeout that sleep on a futex
//! in the ring's own memory when the ring is created with
//! [`RingOptions::blocking`] (no syscall when nobody sleeps). How a blocking
//! call waits (spin, yield, park) is each handle's [`WaitStrategy`]. Sleeps
//! last at most 10 ms at a time, so a blocking call never outlives the other
//! side: an SPSC call whose other role was given back or whose holder died
//! returns `PeerGone` ([`PopError::PeerGone`], [`PushError::PeerGone`]) once
//! nothing is left to take (or no room is left), and
//! [`Producer::is_abandoned`] / [`Consumer::is_abandoned`] ask the same
//! without waiting.
//!
//! A full ring gives the value back (`Err(PushError::Full(v))`), as rtrb and
//! crossbeam do. Every index read from shared memory is masked, so a corrupted
//! or hostile peer can make the data wrong but never make this process access
//! memory outside the ring.
//!
//! Across `fork(2)`: an SPSC [`Producer`] or [`Consumer`] inherited by the
//! child is inert there (it fails with `ForkedHandle` and its drop keeps the
//! parent's role; see the [`spsc`] module), while the ring itself and every
//! [`MpmcRing`] handle keep working in the child. Create the ring, fork,
//! then take each role in the process that uses it.
//!
//! A ring made with one call owns its segment: `create_posix` (or
//! `create_memfd`, `create_sysv`; each with a `_with` form taking
//! [`RingOptions`]) makes the segment, maps it and lays out the ring, and
//! `open_posix` / `open_sysv` attach from another process, validating the
//! header. Its region is a [`Segment`](shm_segment::Segment) (the default
//! type parameter), kept alive by every handle and removed when the
//! creator's last handle drops (`ring.region().set_remove_on_drop(false)`
//! keeps it). [`SpscRing::create`] and [`SpscRing::attach`] (and
//! [`MpmcRing`]'s) take any region instead, and `new_heap` makes a ring on
//! the heap for threads of one process.
//!
//! Capacities are powers of two (the slot is `position & (capacity - 1)`);
//! [`RingOptions::round_up`] rounds any other capacity up instead of
//! refusing it. A byte ring is a pipe: `Producer<u8, _>` implements
//! [`std::io::Write`] and `Consumer<u8, _>` [`std::io::Read`], with end of
//! file once the producer is gone (see the [`spsc`] module).
//!
//! # Examples
//!
//! ```
//! use shm_ring::SpscRing;
//! let name = format!("/shm-test-doc-crate-{}", std::process::id());
//! let ring = SpscRing::<u64>::create_posix(&name, 1024)?;
//! let mut tx = ring.producer()?;
//!
//! // Another process: open by name and take the other role.
//! let mut rx = SpscRing::<u64>::open_posix(&name)?.consumer()?;
//!
//! tx.push(1).unwrap();
//! assert_eq!(tx.push_slice(&[2, 3, 4]), 3);
//! let mut out = [0; 4];
//! assert_eq!(rx.pop_into(&mut out), 4);
//! assert_eq!(out, [1, 2, 3, 4]);
//! # Ok::<(), shm_ring::RingError>(())
//! ```
//!
//! Between threads of one process, on the heap:
//!
//! ```
//! use shm_ring::SpscRing;
//! let (mut tx, mut rx) = SpscRing::<u64>::new_heap(1024)?;
//! std::thread::spawn(move || tx.push(7).unwrap()).join().unwrap();
//! assert_eq!(rx.pop(), Ok(7));
//! # Ok::<(), shm_ring::RingError>(())
//! ```
#![warn(missing_docs)]

mod constructors;
mod error;
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod fault;
mod inspect;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod layout;
pub mod mpmc;
mod shared;
mod slip;
pub mod spsc;
mod sync;
mod wait;

pub use error::{BulkError, PopError, PushError, RingError};
pub use inspect::{inspect, RingInfo};
pub use mpmc::MpmcRing;
pub use shared::RingOptions;
pub use spsc::{Consumer, Producer, ReadChunk, SpscRing, WriteChunk};
pub use wait::WaitStrategy;
#[doc(hidden)]
pub use wait::{thread_counts, WaitCounts};
