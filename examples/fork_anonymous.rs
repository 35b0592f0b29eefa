//! Anonymous shared memory across `fork(2)`: what pyshm's `ShareMem` gives.
//!
//! The parent maps an [`AnonShared`] region (`MAP_SHARED|MAP_ANONYMOUS`), then
//! forks. The child inherits the same pages, writes four `i32`s into them and
//! exits; the parent waits for it with `waitpid` and reads the four values.
//! For contrast, the child also changes an ordinary local array, which `fork`
//! copies: the parent's copy stays as it was.
//!
//! ```text
//! cargo run --example fork_anonymous
//! ```
//!
//! There is no two-terminal mode: anonymous memory has no name, so only a
//! child forked after it was created can reach it (see `posix_processes` and
//! `sysv_readline` for unrelated processes). Nothing needs cleaning up: the
//! kernel frees the pages when the last process that maps them exits.

use std::error::Error;
use std::io::{self, Write};
use std::process::ExitCode;

use shm::segment::{AnonShared, Region};

const VALUES: [i32; 4] = [11, -22, 333, i32::MAX];

type Res<T = ()> = Result<T, Box<dyn Error>>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fork_anonymous: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Res {
    let shared = AnonShared::new(4096)?;
    let mut private = [0i32; 4];
    println!(
        "[parent] mapped {} bytes of anonymous shared memory",
        shared.len()
    );

    // Anything still buffered would be printed twice, once by each process.
    io::stdout().flush()?;
    // SAFETY: this process is single-threaded (the example starts no
    // threads), so the child is a complete copy of it: no lock or allocator
    // state is left held by a thread that does not exist in the child, and
    // the child may run ordinary Rust code until it calls `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == -1 {
        return Err(format!("fork: {}", io::Error::last_os_error()).into());
    }
    if pid == 0 {
        let code = match child(&shared, &mut private) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("[child] {e}");
                1
            }
        };
        let _ = io::stdout().flush();
        // SAFETY: `_exit` ends the child at once. That is what a forked child
        // must do: returning from `main` would run the parent's cleanup a
        // second time; the kernel unmaps the child's view of the region.
        unsafe { libc::_exit(code) };
    }

    wait_for(pid)?;
    let mut seen = [0i32; 4];
    shared.read_pod_slice(0, &mut seen)?;
    println!("[parent] child {pid} exited; shared memory holds {seen:?}");
    println!("[parent] the local array, copied by fork, still holds {private:?}");
    if seen != VALUES {
        return Err(format!("expected {VALUES:?} in shared memory, found {seen:?}").into());
    }
    Ok(())
}

/// In the child: writes the four values, and scribbles on its private copy.
fn child(shared: &AnonShared, private: &mut [i32; 4]) -> Res {
    shared.write_pod_slice(0, &VALUES)?;
    *private = VALUES;
    println!(
        "[child]  pid {} wrote {VALUES:?} into the shared region and its local array",
        std::process::id()
    );
    Ok(())
}

/// `waitpid` until the child has exited; an error unless it exited with 0.
fn wait_for(pid: libc::pid_t) -> Res {
    let mut status = 0;
    loop {
        // SAFETY: `pid` is our own child, and `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(format!("waitpid({pid}): {err}").into());
        }
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(format!("child {pid} failed (wait status {status:#x})").into())
    }
}
