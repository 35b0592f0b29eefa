//! `shm`: shared-memory IPC for Linux, in layers.
//!
//! This facade re-exports every layer so that one dependency gives you all of
//! them. Depend on a single layer (`shm-segment`, …) when that is all you need.
//!
//! | module | crate | what it gives |
//! |---|---|---|
//! | [`sys`] | `shm-sys` | raw FFI: what libc lacks (`shm_info`, `SHM_STAT_ANY`, futex) |
//! | [`segment`] | `shm-segment` | safe System V, POSIX, memfd and anonymous segments |
//! | [`ring`] | `shm-ring` | lock-free SPSC and MPMC rings inside a segment |
//! | [`mempool`] | `shm-mempool` | fixed-size blocks by id, and a zero-copy channel |
//!
//! # Examples
//!
//! ```
//! use shm::segment::{AnonShared, Region};
//!
//! let region = AnonShared::new(4096)?;
//! region.write_at(0, b"hello")?;
//! let mut buf = [0u8; 5];
//! region.read_at(0, &mut buf)?;
//! assert_eq!(&buf, b"hello");
//! # Ok::<(), shm::segment::Error>(())
//! ```
#![deny(unsafe_code)]

pub use shm_mempool as mempool;
pub use shm_ring as ring;
pub use shm_segment as segment;
pub use shm_sys as sys;
