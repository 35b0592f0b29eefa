//! A byte ring as a pipe: [`std::io::Write`] for `Producer<u8, _>` and
//! [`std::io::Read`] for `Consumer<u8, _>`.

use std::io;
use std::time::Duration;

use super::{Consumer, Producer};
use crate::error::BulkError;
use crate::wait::Waited;

/// What an inherited handle's reads and writes fail with.
#[cold]
#[inline(never)]
fn forked_io() -> io::Error {
    io::Error::other(BulkError::ForkedHandle)
}

/// Writes bytes into the ring as into a pipe.
///
/// `write` copies as many bytes as fit and publishes them at once (the
/// consumer sees them when it returns; `flush` has nothing to do). On a full
/// ring it waits, as the producer's [`push_blocking`](Producer::push_blocking)
/// does (the handle's [`WaitStrategy`](crate::WaitStrategy); a futex sleep on
/// a ring created with [`RingOptions::blocking`](crate::RingOptions::blocking)),
/// until at least one byte fits. When the ring is full and the consumer is
/// gone (its role given back or its holder dead), `write` fails with
/// [`io::ErrorKind::BrokenPipe`], as a pipe without readers does; a consumer
/// role never taken since the ring was created is waited for. A handle
/// inherited across `fork` fails with [`io::ErrorKind::Other`]
/// ([`BulkError::ForkedHandle`]).
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// let (mut tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(16)?;
/// let writer = std::thread::spawn(move || {
///     // 1000 bytes through a 16-byte ring: `write_all` waits for room.
///     tx.write_all(&[7; 1000]).unwrap();
/// }); // the producer drops here: the reader sees end of file
/// let mut got = Vec::new();
/// rx.read_to_end(&mut got)?;
/// writer.join().unwrap();
/// assert_eq!(got, [7; 1000]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl<R> io::Write for Producer<u8, R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.is_inert() {
            return Err(forked_io());
        }
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.push_slice(buf);
            if n > 0 {
                return Ok(n);
            }
            match self.wait_for_room(Duration::MAX) {
                Waited::Ready(()) | Waited::TimedOut => {}
                Waited::PeerGone => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "ring write: the ring is full and its consumer is gone",
                    ))
                }
            }
        }
    }

    /// Nothing to do: every `write` publishes what it wrote.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads bytes from the ring as from a pipe.
///
/// `read` takes as many bytes as are ready, up to the buffer's length. On
/// an empty ring it waits, as the consumer's
/// [`pop_blocking`](Consumer::pop_blocking) does, until at least one byte is
/// ready, and returns `Ok(0)` (end of file) once the ring is empty and the
/// producer is gone (its role given back or its holder dead): everything it
/// wrote before going is read first. A producer role never taken since the
/// ring was created is waited for. A handle inherited across `fork` fails
/// with [`io::ErrorKind::Other`] ([`BulkError::ForkedHandle`]).
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// let (mut tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(64)?;
/// tx.write_all(b"hello")?;
/// let mut buf = [0; 3];
/// assert_eq!(rx.read(&mut buf)?, 3);
/// assert_eq!(&buf, b"hel");
/// drop(tx); // end of file once the rest is read
/// let mut rest = String::new();
/// rx.read_to_string(&mut rest)?;
/// assert_eq!(rest, "lo");
/// assert_eq!(rx.read(&mut buf)?, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl<R> io::Read for Consumer<u8, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.is_inert() {
            return Err(forked_io());
        }
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.pop_into(buf);
            if n > 0 {
                return Ok(n);
            }
            match self.wait_for(Duration::MAX, |c| (c.ready(1) > 0).then_some(())) {
                Waited::Ready(()) | Waited::TimedOut => {}
                Waited::PeerGone => return Ok(0),
            }
        }
    }
}
