//! [`PermChange`]: new owner and mode for a segment.

use crate::error::{Error, Result, Target};

/// A change of owner and mode, as `IPC_SET` (System V) or `fchown`/`fchmod`
/// (POSIX, memfd) apply it. Fields left `None` keep their value.
///
/// # Examples
///
/// ```
/// use shm_segment::PermChange;
/// let change = PermChange::new().mode(0o640).gid(100);
/// assert_eq!(change.mode, Some(0o640));
/// assert_eq!(change.uid, None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PermChange {
    /// New owner uid.
    pub uid: Option<u32>,
    /// New owner gid.
    pub gid: Option<u32>,
    /// New permission bits, `0o000 ..= 0o777`.
    pub mode: Option<u32>,
}

impl PermChange {
    /// A change that changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_segment::PermChange::new(), Default::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the new owner uid.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_segment::PermChange::new().uid(0).uid, Some(0));
    /// ```
    pub fn uid(mut self, uid: u32) -> Self {
        self.uid = Some(uid);
        self
    }

    /// Sets the new owner gid.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_segment::PermChange::new().gid(0).gid, Some(0));
    /// ```
    pub fn gid(mut self, gid: u32) -> Self {
        self.gid = Some(gid);
        self
    }

    /// Sets the new permission bits.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_segment::PermChange::new().mode(0o600).mode, Some(0o600));
    /// ```
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }
}

/// Refuses mode bits beyond `0o777` (setuid, sticky… mean nothing here).
pub(crate) fn check_mode(op: &'static str, target: &Target, mode: u32) -> Result<()> {
    if mode & !0o777 != 0 {
        return Err(Error::InvalidArgument {
            op,
            target: target.clone(),
            reason: format!("mode {mode:#o} has bits beyond 0o777"),
        });
    }
    Ok(())
}
