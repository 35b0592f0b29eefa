//! Safe handles for shared memory on Linux.
//!
//! | type | what it is | how another process reaches it |
//! |---|---|---|
//! | [`SysvSegment`] / [`SysvMapping`] | System V segment (`shmget`/`shmat`) | key or shmid |
//! | [`PosixShm`] / [`Mapping`] | POSIX named segment (`shm_open`) | name in `/dev/shm` |
//! | [`Memfd`] / [`Mapping`] | `memfd_create`, sealable | file descriptor ([`send_fd`], inheritance) |
//! | [`AnonShared`] | `MAP_SHARED|MAP_ANONYMOUS` | `fork` |
//! | [`HeapRegion`] | heap memory | nobody (tests, models) |
//!
//! # Safety model
//!
//! What this crate promises to safe code, and what it does not:
//!
//! - **No data race from safe code.** Every mapping is a [`Region`]. Safe
//!   access copies ([`Region::read_at`], [`Region::write_pod`], the [`Cursor`]
//!   with `Read`/`Write`/`Seek`/`BufRead`), and those copies read and write
//!   the shared bytes with relaxed atomic accesses, so two threads copying the
//!   same bytes are defined behaviour in Rust's memory model (Miri checks it).
//!   A copy may still see a mix of old and new bytes while someone writes:
//!   synchronise through the atomics ([`Region::atomic_u64`]). The same
//!   copies are public for raw pointers in [`copy`] (into uninitialised
//!   memory, and shared to shared with `memmove`'s overlap). Copies that
//!   overlap at different alignments are mixed-size atomic accesses, which the
//!   hardware makes byte-atomic but the model leaves undefined.
//! - **No safe slice over shared memory.** Slices and typed views of live
//!   memory come only from `unsafe` methods whose contract excludes
//!   concurrent writers.
//! - **Every access is checked**, by [`RegionChecks`], which no [`Region`]
//!   implementation can override: the `unsafe` contract of an implementation
//!   is only that `as_ptr`, `len` and `is_read_only` tell the truth.
//! - **Fork.** A handle that owns something (a segment name with
//!   unlink-on-drop, a ring role, a pool block) records the [`ForkEpoch`] it
//!   was made in; a copy inherited by a `fork`ed child is inert there and its
//!   drop releases nothing.
//! - **Liveness from the kernel.** [`ProcessId::is_alive`] asks whether the
//!   process holds the lock on its liveness file (see [`liveness`]), which
//!   the kernel drops when it dies: right across pid namespaces, under
//!   `hidepid`, and while a main thread has exited. `/proc` is only the
//!   fallback for a process with no file that we can see.
//! - **`SIGBUS`.** A mapping of a file that someone truncates raises `SIGBUS`
//!   on the next touch past the new end, which no bounds check can see: every
//!   [`Memfd`] is sealed against shrinking (and [`Memfd::from_fd`] accepts
//!   only memfds it can seal), a [`PosixShm`] refuses to shrink under its own
//!   mappings, and reads and writes by descriptor ([`PosixShm::read_at`])
//!   where others may shrink it; see "Shrinking and `SIGBUS`" at [`Mapping`].
//!   Not promised: a peer that may write a POSIX segment can still shrink it
//!   under your mapping.
//!
//! Security defaults: exclusive creation, mode `0600` set explicitly (the
//! umask does not decide), `O_NOFOLLOW|O_CLOEXEC`, and POSIX memory reserved
//! up front so a full `/dev/shm` is an `ENOSPC` error, not a `SIGBUS`.
//!
//! The [`Header`] is the versioned, validated header that the upper layers
//! (`shm-ring`, `shm-mempool`) put in front of their data.
//!
//! # Examples
//!
//! ```
//! use shm_segment::{Access, PosixOptions, Region, SysvKey, SysvOptions};
//! use std::io::{BufRead, Write};
//!
//! // System V, by key, as `shm_manager(123456, 100)` in Python.
//! let seg = SysvOptions::new().remove_on_drop(true).create(SysvKey::random(), 100)?;
//! let map = seg.attach(Access::ReadWrite)?;
//! writeln!(map.cursor(), "Hello world!")?;
//! let mut line = String::new();
//! map.cursor().read_line(&mut line)?;
//! assert_eq!(line, "Hello world!\n");
//!
//! // POSIX, by name, as Python's `SharedMemory(name=..., create=True)`.
//! let name = format!("/shm-test-doc-lib-{}", std::process::id());
//! let shm = PosixOptions::new().unlink_on_drop(true).create(&name, 4096)?;
//! shm.map()?.write_pod(0, &[1u32, 2, 3])?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod anon;
pub mod copy;
mod cursor;
mod error;
mod fd;
mod fd_passing;
mod header;
pub mod liveness;
mod map_core;
mod mapping;
mod memfd;
mod perms;
pub mod posix;
mod process;
mod region;
mod segment;
mod sub;
pub mod sysv;

pub use anon::AnonShared;
pub use cursor::Cursor;
pub use error::{Error, Result, Target};
pub use fd_passing::{recv_fd, send_fd};
pub use header::{Expect, Header, HeaderError, HeaderInfo, Kind, HEADER_SIZE, MAGIC, READY};
pub use mapping::Mapping;
pub use memfd::{Memfd, Seals};
pub use perms::PermChange;
pub use posix::{PosixOptions, PosixShm, PosixStat, ShmName, SHM_DIR};
pub use process::{ForkEpoch, ProcessId};
pub use region::{Access, HeapRegion, Region, RegionChecks};
pub use segment::Segment;
pub use sub::SubRegion;
pub use sysv::{SysvKey, SysvMapping, SysvOptions, SysvSegment, SysvStat};
