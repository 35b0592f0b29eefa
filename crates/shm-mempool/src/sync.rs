//! The atomics of the pool's shared records: std's, or loom's under
//! `cfg(loom)` so the loom models check the real free list.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64};
