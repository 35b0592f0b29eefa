//! An SPSC role held by a live process is never taken over, even where
//! `/proc` says the holder is dead: a holder in another pid namespace
//! (`unshare -p -f --mount-proc`, as containers sharing `/dev/shm`), and a
//! holder whose main thread has exited while another thread pushes. A
//! holder killed with `SIGKILL` loses its role at once.
//!
//! `harness = false`: a child role must exit its *main* thread, which only
//! a `main` of our own can do. Children are this binary run again with
//! `SHM_TEST_ROLE` set; cases that need `unshare` skip, saying why, where
//! the machine refuses it.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    check, child_env, posix_name, run_cases, test_exe, unshare_or_skip, Case, CaseResult, Running,
    UnlinkGuard, ARG_VAR, HANG, ROLE_VAR,
};
use shm_ring::{RingError, RingOptions, SpscRing};
use shm_segment::{PosixOptions, PosixShm};

/// Child role: take the producer role of the ring named in `SHM_TEST_ARG`
/// and push 0, 1, 2… until killed.
const PUSHER: &str = "pusher";
/// Child role: as [`PUSHER`], but pushing from a second thread after the
/// main thread has exited.
const PUSHER_MAIN_EXITS: &str = "pusher-main-exits";

const CAP: usize = 64;

fn make_ring(
    what: &str,
) -> Result<(String, UnlinkGuard, SpscRing<u64, shm_segment::Mapping>), String> {
    let name = posix_name(what);
    let shm = PosixOptions::new()
        .create(&name, SpscRing::<u64>::required_size(CAP))
        .map_err(|e| e.to_string())?;
    let guard = UnlinkGuard(name.clone());
    let map = shm.map().map_err(|e| e.to_string())?;
    let ring =
        SpscRing::<u64, _>::create(map, CAP, RingOptions::new()).map_err(|e| e.to_string())?;
    Ok((name, guard, ring))
}

/// Pops what the holder pushes for a while: its pushes keep coming, in order.
fn items_keep_coming(ring: &SpscRing<u64, shm_segment::Mapping>) -> CaseResult {
    let mut rx = ring.consumer().map_err(|e| e.to_string())?;
    let mut next = None;
    let deadline = Instant::now() + HANG;
    let mut got = 0;
    while got < 200 {
        match rx.pop() {
            Ok(v) => {
                if let Some(want) = next {
                    check(v == want, || format!("popped {v}, want {want}"))?;
                }
                next = Some(v + 1);
                got += 1;
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(200)),
            Err(e) => return Err(format!("the holder stopped pushing: {e}")),
        }
    }
    Ok(())
}

/// The producer role must stay refused while the holder lives.
fn role_is_refused(ring: &SpscRing<u64, shm_segment::Mapping>, who: &str) -> CaseResult {
    match ring.producer() {
        Err(RingError::RoleTaken { .. }) => Ok(()),
        Err(e) => Err(format!("{who}: unexpected error {e}")),
        Ok(_) => Err(format!(
            "{who}: the live holder's producer role was taken over"
        )),
    }
}

/// After the kill, the role is free at once.
fn role_is_taken_over_after_kill(
    ring: &SpscRing<u64, shm_segment::Mapping>,
    holder: &mut Running,
) -> CaseResult {
    holder.kill9();
    let start = Instant::now();
    loop {
        match ring.producer() {
            Ok(_) => break,
            Err(RingError::RoleTaken { .. }) if start.elapsed() < HANG => std::hint::spin_loop(),
            Err(e) => return Err(format!("takeover after kill -9: {e}")),
        }
    }
    println!("takeover after kill -9 and reaping: {:?}", start.elapsed());
    Ok(())
}

fn a_producer_in_another_pid_namespace_keeps_its_role() -> CaseResult {
    let case = "a_producer_in_another_pid_namespace_keeps_its_role";
    let args = ["-p", "-f", "--kill-child", "--mount-proc"];
    if !unshare_or_skip(case, &args) {
        return Ok(());
    }
    let (name, _guard, ring) = make_ring("live-ns")?;
    let mut cmd = Command::new("unshare");
    cmd.args(args).arg(test_exe());
    child_env(&mut cmd, PUSHER, &name);
    let mut holder = Running::spawn(&mut cmd).map_err(|e| format!("spawn unshare: {e}"))?;
    let (_, pid) = holder.until("producer ", HANG);
    check(pid != holder.id().to_string(), || {
        format!("the holder's pid {pid} should be its own namespace's")
    })?;
    role_is_refused(&ring, "an outside claimer")?;
    items_keep_coming(&ring)?;
    role_is_refused(&ring, "an outside claimer, later")?;
    role_is_taken_over_after_kill(&ring, &mut holder)
}

fn a_producer_whose_main_thread_exited_keeps_its_role() -> CaseResult {
    let (name, _guard, ring) = make_ring("live-main")?;
    let mut cmd = Command::new(test_exe());
    child_env(&mut cmd, PUSHER_MAIN_EXITS, &name);
    let mut holder = Running::spawn(&mut cmd).map_err(|e| format!("spawn: {e}"))?;
    holder.until("main thread exiting", HANG);
    let pid = holder.id();
    let zombie = common::wait_until(HANG, || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
    });
    check(zombie, || "the main thread never showed as exited".into())?;
    role_is_refused(&ring, "a claimer while the main thread is gone")?;
    items_keep_coming(&ring)?;
    role_is_taken_over_after_kill(&ring, &mut holder)
}

/// Pushes 0, 1, 2… into the ring named `name`, waiting while it is full.
fn push_forever(mut tx: shm_ring::Producer<u64, shm_segment::Mapping>) -> ! {
    let mut i = 0u64;
    let deadline = Instant::now() + HANG;
    while Instant::now() < deadline {
        if tx.push(i).is_ok() {
            i += 1;
        } else {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    std::process::exit(3);
}

fn child_main(role: &str) {
    let name = std::env::var(ARG_VAR).expect("the ring's name");
    let map = PosixShm::open(&name)
        .and_then(|s| s.map())
        .expect("open the ring");
    let ring = SpscRing::<u64, _>::attach(map).expect("attach");
    let tx = ring.producer().expect("take the producer role");
    println!("producer {}", std::process::id());
    match role {
        PUSHER => push_forever(tx),
        PUSHER_MAIN_EXITS => {
            std::thread::spawn(move || push_forever(tx));
            println!("main thread exiting");
            use std::io::Write;
            let _ = std::io::stdout().flush();
            // SAFETY: the raw exit(2) syscall (not exit_group) ends only the
            // main thread, with no unwinding; the pushing thread keeps the
            // process alive until it is killed.
            unsafe { libc::syscall(libc::SYS_exit, 0) };
            unreachable!("exit(2) returned");
        }
        other => panic!("unknown child role {other:?}"),
    }
}

fn main() {
    if let Ok(role) = std::env::var(ROLE_VAR) {
        child_main(&role);
        return;
    }
    let cases: [Case; 2] = [
        (
            "a_producer_in_another_pid_namespace_keeps_its_role",
            a_producer_in_another_pid_namespace_keeps_its_role,
        ),
        (
            "a_producer_whose_main_thread_exited_keeps_its_role",
            a_producer_whose_main_thread_exited_keeps_its_role,
        ),
    ];
    run_cases(&cases);
}
