//! [`ProcessId::is_alive`] answers from the kernel (a lock on the process's
//! liveness file), not from `/proc`: a holder in another pid namespace and a
//! holder whose main thread has exited are alive, a holder killed with
//! `SIGKILL` is dead at once, and a checker that cannot read `/proc` at all
//! still knows.
//!
//! `harness = false`: a child role must exit its *main* thread while another
//! thread lives, which only a `main` of our own can do. The child sides are
//! this binary run again with `SHM_TEST_ROLE` set (see `shm_testkit::child`).
//! Cases that need `unshare` skip, saying why, where the machine refuses it.

mod common;

use std::process::Command;
use std::time::Instant;

use common::{
    check, child_env, run_cases, test_exe, unshare_or_skip, Case, CaseResult, Running, ARG_VAR,
    HANG, ROLE_VAR,
};
use shm_segment::ProcessId;

/// Child role: print our id, then stay alive until killed (at most [`HANG`]).
const HOLDER: &str = "holder";
/// Child role: like [`HOLDER`], but the main thread exits and a second
/// thread keeps the process alive.
const HOLDER_MAIN_EXITS: &str = "holder-main-exits";
/// Child role: fork a grandchild that sleeps (inheriting every descriptor,
/// the liveness lock's among them), print both pids and our id, then stay.
const HOLDER_FORKS: &str = "holder-forks";
/// Child role: print whether the id in `SHM_TEST_ARG` is alive.
const CHECKER: &str = "checker";

fn holder_command(role: &str) -> Command {
    let mut cmd = Command::new(test_exe());
    child_env(&mut cmd, role, "");
    cmd
}

/// The id a holder printed.
fn holder_id(holder: &mut Running) -> ProcessId {
    let (_, word) = holder.until("id ", HANG);
    ProcessId::from_word(word.parse().expect("a word"))
}

/// Under `unshare -p -f --mount-proc` the holder is pid 1 of its own
/// namespace: `/proc/1` here is another process, so the `/proc` check said
/// "dead". The kernel's lock says alive, and dead after the kill.
fn a_holder_in_another_pid_namespace_is_alive() -> CaseResult {
    let case = "a_holder_in_another_pid_namespace_is_alive";
    let args = ["-p", "-f", "--kill-child", "--mount-proc"];
    if !unshare_or_skip(case, &args) {
        return Ok(());
    }
    let mut cmd = Command::new("unshare");
    cmd.args(args).arg(test_exe());
    child_env(&mut cmd, HOLDER, "");
    let mut holder = Running::spawn(&mut cmd).map_err(|e| format!("spawn unshare: {e}"))?;
    let id = holder_id(&mut holder);
    check(id.pid != holder.id(), || {
        format!("the holder's pid {} is its namespace's, not ours", id.pid)
    })?;
    check(id.is_alive(), || {
        format!("{id:?} in another pid namespace judged dead")
    })?;
    holder.kill9();
    check(!id.is_alive(), || {
        format!("{id:?} judged alive after kill -9")
    })
}

/// The holder's main thread exits (state `Z` in `/proc`, which the `/proc`
/// check took for a dead process) while a second thread keeps it running.
fn a_holder_whose_main_thread_exited_is_alive() -> CaseResult {
    let mut holder = Running::spawn(&mut holder_command(HOLDER_MAIN_EXITS))
        .map_err(|e| format!("spawn: {e}"))?;
    let id = holder_id(&mut holder);
    let (_, _) = holder.until("main thread exiting", HANG);
    // Wait until the kernel shows the main thread gone.
    let zombie = common::wait_until(HANG, || {
        std::fs::read_to_string(format!("/proc/{}/stat", id.pid)).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
    });
    check(zombie, || "the main thread never showed as exited".into())?;
    check(id.is_alive(), || {
        format!("{id:?} judged dead while its second thread runs")
    })?;
    holder.kill9();
    check(!id.is_alive(), || {
        format!("{id:?} judged alive after kill -9")
    })
}

/// A killed holder is dead as soon as the kernel has closed its files: the
/// time from `kill(2)` to `is_alive() == false`, over many holders. The
/// killed process must be scheduled to exit, which a loaded 2-core CI
/// machine can delay: the measurement is tried up to three times, and
/// passes if one attempt has its p99 under 10 ms.
fn a_killed_holder_is_dead_within_10_ms_at_p99() -> CaseResult {
    let rounds = if cfg!(debug_assertions) { 40 } else { 100 };
    let mut best = u64::MAX;
    for attempt in 1..=3 {
        let p99 = kill_to_dead_p99(rounds, attempt)?;
        best = best.min(p99);
        if p99 < 10_000 {
            return Ok(());
        }
    }
    Err(format!(
        "p99 of kill -9 to dead is {best} us at best, over 10 ms"
    ))
}

/// One measurement: p99 in microseconds over `rounds` holders.
fn kill_to_dead_p99(rounds: usize, attempt: u32) -> Result<u64, String> {
    let mut micros = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let mut holder =
            Running::spawn(&mut holder_command(HOLDER)).map_err(|e| format!("spawn: {e}"))?;
        let id = holder_id(&mut holder);
        check(id.is_alive(), || {
            format!("{id:?} judged dead while running")
        })?;
        let start = Instant::now();
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(holder.id() as libc::pid_t, libc::SIGKILL) };
        while id.is_alive() {
            if start.elapsed() > HANG {
                return Err(format!("{id:?} still alive {HANG:?} after kill -9"));
            }
            std::hint::spin_loop();
        }
        micros.push(start.elapsed().as_micros() as u64);
        holder.kill9();
    }
    micros.sort_unstable();
    let p50 = micros[micros.len() / 2];
    let p99 = micros[(micros.len() * 99).div_ceil(100) - 1];
    println!(
        "attempt {attempt}: kill -9 to dead over {rounds} holders: p50 {p50} us, p99 {p99} us, max {} us",
        micros[micros.len() - 1]
    );
    Ok(p99)
}

/// A forked child inherits the descriptor that holds its parent's lock; it
/// must not keep the parent alive after the parent is killed.
fn a_forked_child_does_not_keep_a_dead_parent_alive() -> CaseResult {
    let mut holder =
        Running::spawn(&mut holder_command(HOLDER_FORKS)).map_err(|e| format!("spawn: {e}"))?;
    let (_, grandchild) = holder.until("grandchild ", HANG);
    let grandchild: libc::pid_t = grandchild.parse().map_err(|e| format!("{e}"))?;
    let id = holder_id(&mut holder);
    let result = (|| {
        check(id.is_alive(), || {
            format!("{id:?} judged dead while running")
        })?;
        holder.kill9();
        let grandchild_lives = std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
            .is_ok_and(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
            });
        check(grandchild_lives, || {
            "the grandchild died with its parent".into()
        })?;
        check(!id.is_alive(), || {
            format!("{id:?} judged alive after kill -9, while its forked child lives")
        })
    })();
    // SAFETY: the grandchild was reparented to init (or a subreaper), which
    // reaps it; this only ends it.
    unsafe { libc::kill(grandchild, libc::SIGKILL) };
    result
}

/// A checker whose `/proc` is an empty tmpfs (a mount namespace of its own)
/// still tells a live process from a dead one.
fn a_checker_without_proc_still_knows() -> CaseResult {
    let case = "a_checker_without_proc_still_knows";
    if !unshare_or_skip(case, &["-m"]) {
        return Ok(());
    }
    let me = ProcessId::current();
    let mut gone = Command::new("true").spawn().map_err(|e| e.to_string())?;
    let gone_id = ProcessId::of(gone.id());
    gone.wait().map_err(|e| e.to_string())?;
    let ask = |id: ProcessId| -> Result<String, String> {
        let script = format!(
            "mount -t tmpfs none /proc && exec env {ROLE_VAR}={CHECKER} {ARG_VAR}={} {}",
            id.to_word(),
            test_exe().display()
        );
        let out = common::run(Command::new("unshare").args(["-m", "sh", "-c", &script]))
            .map_err(|e| e.to_string())?;
        check(out.status.success(), || format!("checker failed: {out:?}"))?;
        Ok(out.stdout.trim().to_owned())
    };
    let answer = ask(me)?;
    check(answer == "alive", || {
        format!("this live process: checker said {answer:?}")
    })?;
    if let Some(gone_id) = gone_id {
        let answer = ask(gone_id)?;
        check(answer == "dead", || {
            format!("a reaped process: checker said {answer:?}")
        })?;
    }
    Ok(())
}

fn child_main(role: &str) {
    match role {
        HOLDER => {
            println!("id {}", ProcessId::current().to_word());
            std::thread::sleep(HANG);
        }
        HOLDER_MAIN_EXITS => {
            println!("id {}", ProcessId::current().to_word());
            std::thread::spawn(|| std::thread::sleep(HANG));
            println!("main thread exiting");
            use std::io::Write;
            let _ = std::io::stdout().flush();
            // SAFETY: the raw exit(2) syscall (not exit_group) ends only the
            // calling thread, the main one, with no unwinding (pthread_exit
            // would unwind through Rust frames, which aborts); the spawned
            // thread keeps the process alive until it is killed.
            unsafe { libc::syscall(libc::SYS_exit, 0) };
            unreachable!("exit(2) returned");
        }
        HOLDER_FORKS => {
            let me = ProcessId::current();
            // SAFETY: this child process has one thread (no harness); the
            // grandchild only sleeps and exits.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // Let go of the test's stdout/stderr pipes, so that the
                // parent's reader sees the end when the holder dies.
                // SAFETY: open and dup2 on descriptors this process owns.
                unsafe {
                    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                    libc::dup2(null, 1);
                    libc::dup2(null, 2);
                }
                std::thread::sleep(HANG);
                // SAFETY: ends the grandchild without running atexit handlers.
                unsafe { libc::_exit(0) };
            }
            println!("grandchild {pid}");
            println!("id {}", me.to_word());
            std::thread::sleep(HANG);
        }
        CHECKER => {
            let word: u64 = std::env::var(ARG_VAR)
                .expect("the id to check")
                .parse()
                .expect("a word");
            let alive = ProcessId::from_word(word).is_alive();
            println!("{}", if alive { "alive" } else { "dead" });
        }
        other => panic!("unknown child role {other:?}"),
    }
}

fn main() {
    if let Ok(role) = std::env::var(ROLE_VAR) {
        child_main(&role);
        return;
    }
    let cases: [Case; 5] = [
        (
            "a_holder_in_another_pid_namespace_is_alive",
            a_holder_in_another_pid_namespace_is_alive,
        ),
        (
            "a_holder_whose_main_thread_exited_is_alive",
            a_holder_whose_main_thread_exited_is_alive,
        ),
        (
            "a_killed_holder_is_dead_within_10_ms_at_p99",
            a_killed_holder_is_dead_within_10_ms_at_p99,
        ),
        (
            "a_forked_child_does_not_keep_a_dead_parent_alive",
            a_forked_child_does_not_keep_a_dead_parent_alive,
        ),
        (
            "a_checker_without_proc_still_knows",
            a_checker_without_proc_still_knows,
        ),
    ];
    run_cases(&cases);
}
