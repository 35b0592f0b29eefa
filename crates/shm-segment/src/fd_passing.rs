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

/// Receives one descriptor sent with [`send_fd`]; it arrives close-on-exec.
///
/// # Examples
///
/// See [`send_fd`].
pub fn recv_fd(socket: &UnixStream) -> io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
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
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "recv_fd: the peer closed the socket",
        ));
    }
    // SAFETY: msg was filled by recvmsg; CMSG_FIRSTHDR checks msg_controllen.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    let is_rights = !cmsg.is_null() && {
        // SAFETY: a non-null header from CMSG_FIRSTHDR lies inside `control`.
        let header = unsafe { &*cmsg };
        (header.cmsg_level, header.cmsg_type) == (libc::SOL_SOCKET, libc::SCM_RIGHTS)
    };
    if !is_rights {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "recv_fd: the message carried no descriptor",
        ));
    }
    // SAFETY: an SCM_RIGHTS header carries at least one c_int.
    let raw = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>()) };
    // SAFETY: the kernel installed a fresh descriptor for us that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
