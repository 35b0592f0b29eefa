//! Helpers for the integration tests of `shm-ring`: the shared ones from
//! `shm-testkit` (unique names, bounded waits that back off, a small
//! deterministic PRNG, child processes that are this test binary run again
//! with a role; see `shm_testkit::child`), plus the ring's shared layout as
//! far as tests poke at it: `shm_ring::layout`, computed from the ring's own
//! types (only tests that simulate a dead or hostile peer use it).
#![allow(dead_code, unused_imports)]

pub(crate) use shm_ring::layout::*;
pub(crate) use shm_testkit::*;
