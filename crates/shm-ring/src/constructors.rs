//! The constructors that make or open the segment a ring lives in
//! (`create_posix`, `open_posix`, …), the same for both ring flavours: one
//! macro, invoked by `spsc` and `mpmc` for their ring type.

use shm_segment::{Segment, SysvKey, Target};

use crate::error::RingError;
use crate::shared::{RingOptions, RingSlot};

/// Where a one-call constructor (`create_posix` and the like) makes the
/// segment its ring lives in.
pub(crate) enum Place<'a> {
    Posix(&'a str),
    Memfd(&'a str),
    Sysv(SysvKey),
}

impl Place<'_> {
    fn target(&self) -> Target {
        match *self {
            Place::Posix(name) => Target::Posix(name.to_owned()),
            Place::Memfd(name) => Target::Memfd(name.to_owned()),
            Place::Sysv(key) => Target::SysvKey(key.0),
        }
    }

    /// A new segment of the size a ring of `capacity` slots of `S` needs
    /// under `opts`; the capacity error `create` would give before any
    /// segment is made.
    pub(crate) fn create<S: RingSlot>(
        &self,
        capacity: usize,
        opts: &RingOptions,
    ) -> Result<Segment, RingError> {
        let (_, size) = opts.sized::<S>(capacity, || self.target())?;
        let size = size as usize;
        Ok(match *self {
            Place::Posix(name) => Segment::create_posix(name, size)?,
            Place::Memfd(name) => Segment::create_memfd(name, size)?,
            Place::Sysv(key) => Segment::create_sysv(key, size)?,
        })
    }
}

/// The constructors of a ring type whose region is a [`Segment`] (its
/// default): `required_size`, and one call that makes the segment, maps it
/// and lays the ring out (`create_posix`, `create_memfd`, `create_sysv`,
/// each with a `_with` form taking [`RingOptions`]) or opens and attaches
/// (`open_posix`, `open_sysv`). `$slot` is the ring's slot type over `T`.
macro_rules! segment_constructors {
    ($ring:ident, $slot:ty) => {
        impl<T: bytemuck::Pod> $ring<T> {
            /// Bytes a ring of `capacity` elements needs (header included):
            /// size a region with this. A capacity that is not a power of
            /// two counts as the next one (what
            /// [`RingOptions::round_up`] creates), so the region always fits.
            ///
            /// # Panics
            ///
            /// If the size does not fit in memory (a capacity near 2^60 or more).
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use shm_ring::", stringify!($ring), ";")]
            #[doc = concat!("let n = ", stringify!($ring), "::<u64>::required_size(1024);")]
            /// assert!(n >= 1024 * 8);
            #[doc = concat!("assert_eq!(", stringify!($ring), "::<u64>::required_size(1000), n);")]
            /// ```
            pub fn required_size(capacity: usize) -> usize {
                $crate::shared::required_size::<$slot>(capacity)
            }

            /// Creates the POSIX segment `name` (`/name`, as for
            /// `shm_open`), sized for `capacity` elements, maps it and lays
            /// out a new ring with default options. The ring keeps the
            /// segment: it is unlinked when the last handle (ring or role)
            /// drops, unless `ring.region().set_remove_on_drop(false)`.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use shm_ring::", stringify!($ring), ";")]
            #[doc = concat!("let name = format!(\"/shm-test-doc-", stringify!($ring), "-posix-{}\", std::process::id());")]
            #[doc = concat!("let ring = ", stringify!($ring), "::<u64>::create_posix(&name, 1024)?;")]
            /// assert_eq!(ring.capacity(), 1024);
            /// assert!(ring.region().created());
            /// drop(ring); // the creator unlinks the name
            /// assert!(shm_segment::Segment::open_posix(&name).unwrap_err().is_not_found());
            /// # Ok::<(), shm_ring::RingError>(())
            /// ```
            pub fn create_posix(
                name: &str,
                capacity: usize,
            ) -> Result<Self, $crate::RingError> {
                Self::create_posix_with(name, capacity, $crate::RingOptions::new())
            }

            /// [`create_posix`](Self::create_posix) with options.
            ///
            /// # Examples
            ///
            /// ```
            /// use shm_ring::{RingOptions, WaitStrategy};
            #[doc = concat!("use shm_ring::", stringify!($ring), ";")]
            #[doc = concat!("let name = format!(\"/shm-test-doc-", stringify!($ring), "-posix-with-{}\", std::process::id());")]
            /// let opts = RingOptions::new().blocking(true).round_up(true);
            #[doc = concat!("let ring = ", stringify!($ring), "::<u64>::create_posix_with(&name, 100, opts)?;")]
            /// assert_eq!(ring.capacity(), 128);
            /// # Ok::<(), shm_ring::RingError>(())
            /// ```
            pub fn create_posix_with(
                name: &str,
                capacity: usize,
                opts: $crate::RingOptions,
            ) -> Result<Self, $crate::RingError> {
                let segment = $crate::constructors::Place::Posix(name)
                    .create::<$slot>(capacity, &opts)?;
                Self::create(segment, capacity, opts)
            }

            /// Opens the POSIX segment `name`, maps it and attaches to the
            /// ring in it, validating its header as [`attach`](Self::attach)
            /// does. The segment is not unlinked when this handle drops.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use shm_ring::", stringify!($ring), ";")]
            #[doc = concat!("let name = format!(\"/shm-test-doc-", stringify!($ring), "-open-{}\", std::process::id());")]
            #[doc = concat!("let ring = ", stringify!($ring), "::<u32>::create_posix(&name, 64)?;")]
            #[doc = concat!("let other = ", stringify!($ring), "::<u32>::open_posix(&name)?; // in another process")]
            /// assert_eq!(other.capacity(), 64);
            /// assert!(!other.region().created());
            #[doc = concat!("assert!(", stringify!($ring), "::<u64>::open_posix(&name).is_err()); // another element type")]
            /// # drop(ring);
            /// # Ok::<(), shm_ring::RingError>(())
            /// ```
            pub fn open_posix(name: &str) -> Result<Self, $crate::RingError> {
                Self::attach(shm_segment::Segment::open_posix(name)?)
            }

            /// Creates a memfd named `name` (a label, not a path; no name
            /// to remove), sized for `capacity` elements, maps it and lays
            /// out a new ring with default options. Share it with another
            /// process by passing the fd (`ring.region().memfd()`).
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use shm_ring::", stringify!($ring), ";")]
            #[doc = concat!("let ring = ", stringify!($ring), "::<u64>::create_memfd(\"shm-test-doc\", 16)?;")]
            /// assert!(ring.region().memfd().is_some());
            /// assert_eq!(ring.capacity(), 16);
            /// # Ok::<(), shm_ring::RingError>(())
            /// ```
            pub fn create_memfd(
                name: &str,
                capacity: usize,
            ) -> Result<Self, $crate::RingError> {
                Self::create_memfd_with(name, capacity, $crate::RingOptions::new())
            }

            /// [`create_memfd`](Self::create_memfd) with options.
            ///
            /// # Examples
            ///
            /// ```
            /// use shm_ring::RingOptions;
            #[doc = concat!("use shm_ring::", stringify!($ring), ";")]
            /// let opts = RingOptions::new().round_up(true);
            #[doc = concat!("let ring = ", stringify!($ring), "::<u64>::create_memfd_with(\"shm-test-doc\", 5, opts)?;")]
            /// assert_eq!(ring.capacity(), 8);
            /// # Ok::<(), shm_ring::RingError>(())
            /// ```
            pub fn create_memfd_with(
                name: &str,
                capacity: usize,
                opts: $crate::RingOptions,
            ) -> Result<Self, $crate::RingError> {
                let segment = $crate::constructors::Place::Memfd(name)
                    .create::<$slot>(capacity, &opts)?;
                Self::create(segment, capacity, opts)
            }

            /// Creates the System V segment `key` (exclusively), sized for
            /// `capacity` elements, maps it and lays out a new ring with
            /// default options. The segment is marked for removal when the
            /// last handle drops, unless
            /// `ring.region().set_remove_on_drop(false)`.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use shm_ring::", stringify!($ring), ";")]
            /// let key = shm_segment::SysvKey::random();
            #[doc = concat!("let ring = ", stringify!($ring), "::<u64>::create_sysv(key, 32)?;")]
            /// assert_eq!(ring.capacity(), 32);
            /// # Ok::<(), shm_ring::RingError>(())
            /// ```
            pub fn create_sysv(
                key: shm_segment::SysvKey,
                capacity: usize,
            ) -> Result<Self, $crate::RingError> {
                Self::create_sysv_with(key, capacity, $crate::RingOptions::new())
            }

            /// [`create_sysv`](Self::create_sysv) with options.
            ///
            /// # Examples
            ///
            /// ```
            /// use shm_ring::RingOptions;
            #[doc = concat!("use shm_ring::", stringify!($ring), ";")]
            /// let key = shm_segment::SysvKey::random();
            #[doc = concat!("let ring = ", stringify!($ring), "::<u64>::create_sysv_with(key, 32, RingOptions::new().blocking(true))?;")]
            /// assert_eq!(shm_ring::inspect(ring.region())?.blocking, true);
            /// # Ok::<(), shm_ring::RingError>(())
            /// ```
            pub fn create_sysv_with(
                key: shm_segment::SysvKey,
                capacity: usize,
                opts: $crate::RingOptions,
            ) -> Result<Self, $crate::RingError> {
                let segment = $crate::constructors::Place::Sysv(key)
                    .create::<$slot>(capacity, &opts)?;
                Self::create(segment, capacity, opts)
            }

            /// Opens the System V segment `key`, maps it and attaches to
            /// the ring in it, validating its header as
            /// [`attach`](Self::attach) does.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use shm_ring::", stringify!($ring), ";")]
            /// let key = shm_segment::SysvKey::random();
            #[doc = concat!("let ring = ", stringify!($ring), "::<u64>::create_sysv(key, 32)?;")]
            #[doc = concat!("let other = ", stringify!($ring), "::<u64>::open_sysv(key)?;")]
            /// assert_eq!(other.capacity(), 32);
            /// # drop(ring);
            /// # Ok::<(), shm_ring::RingError>(())
            /// ```
            pub fn open_sysv(key: shm_segment::SysvKey) -> Result<Self, $crate::RingError> {
                Self::attach(shm_segment::Segment::open_sysv(key)?)
            }
        }
    };
}
pub(crate) use segment_constructors;
