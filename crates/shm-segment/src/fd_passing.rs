//! Passing descriptors (a [`Memfd`](crate::Memfd), a POSIX segment) to an
//! unrelated process over a Unix socket (`SCM_RIGHTS`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

const FD_SPACE: usize = std::mem::size_of::<libc::c_int>();

/// Sends one descriptor, with a one-byte message, over a connected Unix stream.
///
/// # Examples
///
/// ```
/// use shm_segment::{recv_fd, send_fd, Memfd, Region};
/// use std::os::fd::AsFd;
/// use std::os::unix::net::UnixStream;
///
/// let (a, b) = UnixStream::pair()?;
/// let fd = Memfd::create("passed", 64)?;
/// fd.map()?.write_at(0, b"hi")?;
/// send_fd(&a, fd.as_fd())?;
/// let got = Memfd::from_fd(recv_fd(&b)?)?;
/// let mut buf = [0u8; 2];
/// got.map()?.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"hi");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn send_fd(socket: &UnixStream, fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: a zeroed msghdr is valid; we fill the fields we use.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is pure arithmetic.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(FD_SPACE as u32) } as usize;
    // SAFETY: msg_control points to a buffer of at least msg_controllen
    // bytes, so the first header fits and CMSG_FIRSTHDR returns it.
    let cmsg = unsafe { &mut *libc::CMSG_FIRSTHDR(&msg) };
    cmsg.cmsg_level = libc::SOL_SOCKET;
    cmsg.cmsg_type = libc::SCM_RIGHTS;
    // SAFETY: CMSG_LEN is pure arithmetic.
    cmsg.cmsg_len = unsafe { libc::CMSG_LEN(FD_SPACE as u32) } as usize;
    // SAFETY: the data of this header has room for one c_int (CMSG_SPACE above).
    unsafe {
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd.as_raw_fd())
    };
    // SAFETY: msg points to live buffers set up above.
    shm_sys::cvt(unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) })?;
    Ok(())
}

/// How many descriptors one message may carry for [`recv_fd`]: what its
/// control buffer (64 bytes) holds, `CMSG_LEN(12 * 4)` = 64 on 64-bit Linux.
const RECV_MAX_FDS: usize = 12;

/// Receives one descriptor sent with [`send_fd`]; it arrives close-on-exec
/// (`MSG_CMSG_CLOEXEC`), so no child started meanwhile inherits it.
///
/// The peer decides what arrives, so every descriptor the kernel installs
/// is owned at once: the first one of the message is returned and every
/// other one is closed, whatever the peer sent. A message with more
/// descriptors than fit the control buffer (more than 12) is cut short by
/// the kernel (`MSG_CTRUNC`): that is an [`InvalidData`](io::ErrorKind::InvalidData)
/// error, and the descriptors that did arrive are closed too.
///
/// # Examples
///
/// See [`send_fd`]; and a message that carries no descriptor:
///
/// ```
/// use shm_segment::recv_fd;
/// use std::os::unix::net::UnixStream;
///
/// let (a, b) = UnixStream::pair()?;
/// // A peer that sends bytes and no descriptor at all.
/// std::io::Write::write_all(&mut &a, b"x")?;
/// let err = recv_fd(&b).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn recv_fd(socket: &UnixStream) -> io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: a zeroed msghdr is valid; we fill the fields we use.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: msg points to live buffers set up above.
    let n = shm_sys::cvt(unsafe {
        libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC)
    })?;
    // Own every descriptor first, so that no return below can leak one.
    let fds = take_rights(&msg);
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "recv_fd: the control message was truncated (MSG_CTRUNC): the peer sent more \
                 descriptors than the {RECV_MAX_FDS} one message may carry; the {} that arrived \
                 are closed",
                fds.len()
            ),
        ));
    }
    let mut fds = fds.into_iter();
    match fds.next() {
        // The others drop with the iterator: closed.
        Some(first) => Ok(first),
        None if n == 0 => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "recv_fd: the peer closed the socket",
        )),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "recv_fd: the message carried no descriptor",
        )),
    }
}

/// Every descriptor of every `SCM_RIGHTS` header in `msg`, owned.
fn take_rights(msg: &libc::msghdr) -> Vec<OwnedFd> {
    let mut fds = Vec::new();
    let control = msg.msg_control as usize;
    let end = control + msg.msg_controllen;
    // SAFETY: msg was filled by recvmsg; CMSG_FIRSTHDR checks msg_controllen.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: a non-null header from CMSG_FIRSTHDR or CMSG_NXTHDR lies
        // inside the control buffer, which is aligned for cmsghdr.
        let header = unsafe { &*cmsg };
        if (header.cmsg_level, header.cmsg_type) == (libc::SOL_SOCKET, libc::SCM_RIGHTS) {
            // SAFETY: CMSG_DATA is pointer arithmetic inside this header.
            let data = unsafe { libc::CMSG_DATA(cmsg) };
            // SAFETY: CMSG_LEN is pure arithmetic.
            let header_len = unsafe { libc::CMSG_LEN(0) } as usize;
            // What the header claims, but never past what the kernel filled.
            let bytes = header
                .cmsg_len
                .saturating_sub(header_len)
                .min(end.saturating_sub(data as usize));
            for i in 0..bytes / FD_SPACE {
                // SAFETY: the `i`th c_int of this header's data, inside the
                // filled part of the control buffer (bounded above).
                let raw = unsafe { std::ptr::read_unaligned(data.cast::<libc::c_int>().add(i)) };
                // SAFETY: the kernel installed this descriptor in this process
                // for this message; nothing else owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
        // SAFETY: `msg` and `cmsg` as above; CMSG_NXTHDR returns null past the
        // last header that fits in msg_controllen.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    fds
}
