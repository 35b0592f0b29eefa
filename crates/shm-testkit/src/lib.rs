//! Helpers shared by the integration tests of `shm-segment`, `shm-ring` and
//! `shm-mempool`: unique segment names and cleanup guards ([`names`]),
//! bounded waits that back off ([`wait`]), a small reproducible PRNG
//! ([`rng`]), child processes that are the test binary run again with a role
//! ([`child`]), `fork`ed children for `harness = false` targets
//! ([`forked`]), and memory between guard pages for corruption tests
//! ([`guarded`]).
//!
//! A dev-dependency only: it is never published. Crate-specific helpers (a
//! ring's or a pool's shared layout) stay in each crate's `tests/common`.
//! Everything is re-exported at the root so that a crate's `tests/common`
//! can `pub(crate) use shm_testkit::*;`.

pub mod child;
pub mod forked;
pub mod guarded;
pub mod names;
pub mod rng;
pub mod wait;

pub use child::*;
pub use forked::*;
pub use guarded::*;
pub use names::*;
pub use rng::*;
pub use wait::*;
