//! File-like access to a [`Region`]: `Read`, `Write`, `Seek` and `BufRead`.

use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};

use crate::region::{Region, RegionChecks};

/// How many bytes `fill_buf` copies out of the region at a time.
const CHUNK: usize = 4096;

/// A position in a [`Region`], with the `std::io` traits, as `std::io::Cursor`
/// gives for a slice. Reads stop at the end of the region (`Ok(0)`); writes
/// are short at the end and `Ok(0)` past it, so `write_all` reports
/// `WriteZero` rather than writing outside the region.
///
/// `BufRead` is served from a small private buffer: the bytes `fill_buf`
/// returns are a copy, so no slice of live shared memory ever escapes.
/// A `read` with an empty buffer copies straight from the region, and a write
/// or a seek drops the buffer, so the cursor never serves stale bytes after
/// its own writes.
///
/// # Examples
///
/// ```
/// use shm_segment::{HeapRegion, Region};
/// use std::io::{BufRead, Read, Seek, SeekFrom, Write};
///
/// let region = HeapRegion::new(64);
/// let mut cur = region.cursor();
/// cur.write_all(b"Hello world!\nsecond line\n")?;
/// cur.seek(SeekFrom::Start(0))?;
/// let mut line = String::new();
/// cur.read_line(&mut line)?;
/// assert_eq!(line, "Hello world!\n");
/// assert_eq!(cur.position(), 13);
///
/// // `io::copy` from a reader works, as shmtool copies stdin into a segment.
/// let mut other = region.cursor();
/// std::io::copy(&mut &b"copied"[..], &mut other)?;
/// let mut buf = [0u8; 6];
/// region.cursor().read_exact(&mut buf)?;
/// assert_eq!(&buf, b"copied");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Cursor<R> {
    region: R,
    pos: u64,
    /// Bytes copied from the region at `pos - buf_pos ..`.
    buf: Vec<u8>,
    /// How many bytes of `buf` were consumed; always `<= buf.len()`.
    buf_pos: usize,
}

impl<R: Region> Cursor<R> {
    /// A cursor at position 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Cursor, HeapRegion};
    /// let cur = Cursor::new(HeapRegion::new(8));
    /// assert_eq!(cur.position(), 0);
    /// ```
    pub fn new(region: R) -> Self {
        Cursor {
            region,
            pos: 0,
            buf: Vec::new(),
            buf_pos: 0,
        }
    }

    /// The current position.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// use std::io::Write;
    /// let r = HeapRegion::new(8);
    /// let mut c = r.cursor();
    /// c.write_all(b"abc")?;
    /// assert_eq!(c.position(), 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Moves to `pos`, dropping any buffered bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// let r = HeapRegion::new(8);
    /// let mut c = r.cursor();
    /// c.set_position(5);
    /// assert_eq!(c.position(), 5);
    /// ```
    pub fn set_position(&mut self, pos: u64) {
        self.discard_buffer();
        self.pos = pos;
    }

    /// The region.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Cursor, HeapRegion, Region};
    /// let c = Cursor::new(HeapRegion::new(8));
    /// assert_eq!(c.get_ref().len(), 8);
    /// ```
    pub fn get_ref(&self) -> &R {
        &self.region
    }

    /// Gives the region back.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Cursor, HeapRegion, Region};
    /// let r = Cursor::new(HeapRegion::new(8)).into_inner();
    /// assert_eq!(r.len(), 8);
    /// ```
    pub fn into_inner(self) -> R {
        self.region
    }

    fn discard_buffer(&mut self) {
        self.buf.clear();
        self.buf_pos = 0;
    }

    /// Bytes from `pos` to the end of the region (0 when past it).
    fn remaining(&self) -> usize {
        (self.region.len() as u64).saturating_sub(self.pos) as usize
    }
}

impl<R: Region> Read for Cursor<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.buf_pos < self.buf.len() {
            let n = (&self.buf[self.buf_pos..]).read(out)?;
            self.consume(n);
            return Ok(n);
        }
        let n = out.len().min(self.remaining());
        if n == 0 {
            return Ok(0);
        }
        self.region.read_at(self.pos as usize, &mut out[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Region> BufRead for Cursor<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.buf_pos >= self.buf.len() {
            let n = CHUNK.min(self.remaining());
            self.buf.resize(n, 0);
            self.buf_pos = 0;
            if n > 0 {
                self.region.read_at(self.pos as usize, &mut self.buf)?;
            }
        }
        Ok(&self.buf[self.buf_pos..])
    }

    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.buf.len() - self.buf_pos);
        self.buf_pos += amt;
        self.pos += amt as u64;
    }
}

impl<R: Region> Write for Cursor<R> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.region.check_writable("write")?;
        self.discard_buffer();
        let n = data.len().min(self.remaining());
        if n == 0 {
            return Ok(0);
        }
        self.region.write_at(self.pos as usize, &data[..n])?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<R: Region> Seek for Cursor<R> {
    fn seek(&mut self, from: SeekFrom) -> io::Result<u64> {
        let (base, delta) = match from {
            SeekFrom::Start(p) => {
                self.set_position(p);
                return Ok(p);
            }
            SeekFrom::End(d) => (self.region.len() as u64, d),
            SeekFrom::Current(d) => (self.pos, d),
        };
        match base.checked_add_signed(delta) {
            Some(p) => {
                self.set_position(p);
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "seek {}: invalid seek to a negative or overflowing position",
                    self.region.target()
                ),
            )),
        }
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HeapRegion;

    #[test]
    fn writes_are_short_at_the_end_and_zero_past_it() {
        let r = HeapRegion::new(4);
        let mut c = r.cursor();
        assert_eq!(c.write(b"abcdef").unwrap(), 4);
        assert_eq!(c.write(b"x").unwrap(), 0);
        assert_eq!(
            c.write_all(b"x").unwrap_err().kind(),
            io::ErrorKind::WriteZero
        );
        assert_eq!(r.to_vec(), b"abcd");
    }

    #[test]
    fn reads_stop_at_the_end_and_seek_past_it_reads_nothing() {
        let r = HeapRegion::new(4);
        let mut c = r.cursor();
        let mut all = Vec::new();
        c.read_to_end(&mut all).unwrap();
        assert_eq!(all, [0; 4]);
        c.seek(SeekFrom::Start(100)).unwrap();
        assert_eq!(c.read(&mut [0; 8]).unwrap(), 0);
        assert_eq!(c.seek(SeekFrom::End(-1)).unwrap(), 3);
        assert!(c.seek(SeekFrom::Current(-4)).is_err());
        assert_eq!(c.position(), 3, "a failed seek does not move");
    }

    #[test]
    fn read_line_over_many_chunks_and_nul_padding() {
        let r = HeapRegion::new(3 * CHUNK);
        let long = "x".repeat(CHUNK + 10);
        r.write_at(0, format!("{long}\nshort\n").as_bytes())
            .unwrap();
        let mut c = r.cursor();
        let mut line = String::new();
        c.read_line(&mut line).unwrap();
        assert_eq!(line.trim_end(), long);
        line.clear();
        c.read_line(&mut line).unwrap();
        assert_eq!(line, "short\n");
        // The rest is NUL padding up to the end, then EOF.
        line.clear();
        let n = c.read_line(&mut line).unwrap();
        assert_eq!(n, 3 * CHUNK - long.len() - 7);
        assert!(line.bytes().all(|b| b == 0));
        assert_eq!(c.read_line(&mut line).unwrap(), 0);
    }

    #[test]
    fn a_write_drops_buffered_bytes() {
        let r = HeapRegion::new(16);
        let mut c = r.cursor();
        assert_eq!(c.fill_buf().unwrap()[0], 0);
        c.write_all(b"new").unwrap();
        c.set_position(0);
        assert_eq!(&c.fill_buf().unwrap()[..3], b"new");
    }
}
