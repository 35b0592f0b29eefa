//! [`AnonShared`]: anonymous shared memory inherited across `fork`.

use crate::error::Result;
use crate::map_core::forward_region;
use crate::mapping::Mapping;

/// Anonymous shared memory (`MAP_SHARED|MAP_ANONYMOUS`), what pyshm's
/// `ShareMem` is: it has no name, and a child made by `fork(2)` after it was
/// created shares the same pages. Create it before forking; a process that
/// did not inherit it cannot attach (use [`Memfd`](crate::Memfd) or
/// [`PosixShm`](crate::PosixShm) for that).
///
/// # Examples
///
/// ```
/// use shm_segment::{AnonShared, Region};
/// let shared = AnonShared::new(64 * 1024)?;
/// shared.write_pod(0, &42u64)?;
/// // After fork(2), parent and child see each other's writes here.
/// assert_eq!(shared.read_pod::<u64>(0)?, 42);
/// # Ok::<(), shm_segment::Error>(())
/// ```
#[derive(Debug)]
pub struct AnonShared {
    map: Mapping,
}

impl AnonShared {
    /// Maps `len` zeroed bytes of anonymous shared memory.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(shm_segment::AnonShared::new(0).is_err());
    /// ```
    pub fn new(len: usize) -> Result<Self> {
        Ok(AnonShared {
            map: Mapping::anonymous(len)?,
        })
    }
}

forward_region!(AnonShared, map);
