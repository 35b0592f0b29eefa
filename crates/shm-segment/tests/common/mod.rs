//! Helpers for the integration tests of `shm-segment`: the shared ones from
//! `shm-testkit` (unique names, cleanup guards, bounded waits, child
//! processes that are this test binary run again with a role; see
//! `shm_testkit::child`), plus the timeouts these tests name.
#![allow(dead_code, unused_imports)]

use std::time::Duration;

pub(crate) use shm_testkit::*;

/// How long a parent waits for a child; generous, for a loaded 2-core CI machine.
pub(crate) const CHILD_TIMEOUT: Duration = HANG;
/// How long one side of a handshake waits for the other.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
