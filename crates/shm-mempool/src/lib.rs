//! Fixed-size blocks in shared memory, and a zero-copy channel of them.
//!
//! - [`MemPool`]: N blocks of S bytes in one [`Region`](shm_segment::Region),
//!   taken and given back by any attached process, named by a
//!   position-independent [`BlockId`]. Free blocks come out first in, first
//!   out by default (a lock-free queue of ids whose cells change by one CAS
//!   each), or last in, first out ([`FreeOrder::Lifo`], a Treiber stack).
//!   Each block has one owner: a [`Block`] guard, or nobody while its id is
//!   in transit ([`Block::into_id`], claimed exactly once by
//!   [`MemPool::from_id`]). A process killed at any instruction leaves
//!   nothing lost: [`MemPool::reclaim_dead`], run by anyone while others
//!   work, gives back what dead processes held and finishes what they were
//!   giving back or sending. See the [`pool`] module for the design and
//!   what a killed process leaves.
//! - [`Channel`]: a pool and its queue of sent blocks in one segment. A
//!   sender fills a block in place and sends it (its 4-byte index is
//!   queued); the receiver takes it and reads the same memory; the block
//!   goes back to the pool when the receiver drops it.
//!
//! # Examples
//!
//! A pool in a POSIX segment it creates and owns (the name is unlinked
//! when the creator's last handle drops), attached by name elsewhere:
//!
//! ```
//! use shm_mempool::MemPool;
//! use shm_segment::Region;
//!
//! let name = format!("/shm-test-doc-lib-pool-{}", std::process::id());
//! let pool = MemPool::create_posix(&name, 16, 256)?;
//! let other = MemPool::open_posix(&name)?; // in another process, usually
//! let block = other.get()?;
//! block.write_at(0, b"fixed-size block")?;
//! let id = block.into_id()?; // hand the id on…
//! let mut text = [0; 16];
//! pool.from_id(id)?.read_at(0, &mut text)?; // …and claim the block once
//! assert_eq!(&text, b"fixed-size block");
//! assert_eq!(pool.stats().free, 16);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A channel: the sender fills a block in place, the receiver reads the
//! same memory.
//!
//! ```
//! use shm_mempool::Channel;
//!
//! let name = format!("/shm-test-doc-lib-chan-{}", std::process::id());
//! let tx = Channel::create_posix(&name, 8, 4096)?;
//! let rx = Channel::open_posix(&name)?;
//! tx.send_bytes(b"zero-copy")?;
//! assert_eq!(rx.recv()?.used(), 9);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Any other [`Region`](shm_segment::Region) works too: between threads, a
//! pool on the heap.
//!
//! ```
//! let pool = shm_mempool::MemPool::new_heap(16, 256)?;
//! let block = pool.get()?;
//! assert_eq!(pool.stats().held, 1);
//! drop(block);
//! assert_eq!(pool.stats().free, 16);
//! # Ok::<(), shm_mempool::PoolError>(())
//! ```
#![warn(missing_docs)]

mod block;
mod cache;
mod channel;
mod error;
#[doc(hidden)]
pub mod layout;
pub mod pool;
mod sync;

pub use cache::BlockCache;
pub use channel::{
    inspect_channel, Channel, ChannelInfo, ChannelOptions, QueueInfo, RecvError, SendError,
};
pub use error::PoolError;
#[cfg(loom)]
#[doc(hidden)]
pub use pool::LoomKilled;
pub use pool::{
    Block, BlockState, FreeOrder, MemPool, PoolOptions, PoolStats, BLOCK_ALIGN, OWNER_SLOTS,
};

/// A block's position-independent name: its index in the pool. The same id
/// names the same block in every process that maps the pool.
///
/// # Examples
///
/// ```
/// let id = shm_mempool::BlockId(3);
/// assert_eq!(bytemuck::bytes_of(&id), &3u32.to_ne_bytes());
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, bytemuck::Pod, bytemuck::Zeroable,
)]
#[repr(transparent)]
pub struct BlockId(pub u32);
