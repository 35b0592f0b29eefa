//! A Rust peer for the Python package's interop tests: produces into, or
//! consumes from, a ring that another process (Python) created or will
//! attach to, checking the values' order.
//!
//! ```text
//! ring_peer produce        /name N   # SpscRing<u64>: pushes 0..N
//! ring_peer consume        /name N   # SpscRing<u64>: pops N, checks 0..N
//! ring_peer produce-struct /name N   # SpscRing<Point>: pushes {x: i, y: i / 2}
//! ring_peer consume-struct /name N   # SpscRing<Point>: pops N, checks them
//! ring_peer mpmc-produce   /name N   # MpmcRing<u64>: pushes 0..N
//! ring_peer mpmc-consume   /name N   # MpmcRing<u64>: pops N, checks 0..N
//! ```
//!
//! Each opens the ring by name (`open_posix`), takes its role, moves `N`
//! values with the blocking calls (60 s at most each), prints `ok N` and
//! exits 0; any mismatch or error exits 1 with a message. `Point` is
//! `#[repr(C)] { x: u32, y: f32 }`: numpy's
//! `np.dtype([('x', '<u4'), ('y', '<f4')], align=True)`.

use std::process::ExitCode;
use std::time::Duration;

use bytemuck::{Pod, Zeroable};
use shm_ring::{MpmcRing, SpscRing};

/// The struct element of the interop tests.
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct Point {
    x: u32,
    y: f32,
}

fn point(i: u64) -> Point {
    Point {
        x: i as u32,
        y: i as f32 / 2.0,
    }
}

const WAIT: Duration = Duration::from_secs(60);

fn produce<T: Pod + std::fmt::Debug>(
    name: &str,
    n: u64,
    value: impl Fn(u64) -> T,
) -> Result<(), String> {
    let ring = SpscRing::<T>::open_posix(name).map_err(|e| e.to_string())?;
    let mut tx = ring.producer().map_err(|e| e.to_string())?;
    for i in 0..n {
        tx.push_blocking(value(i), WAIT)
            .map_err(|e| format!("push {i}: {e}"))?;
    }
    Ok(())
}

fn consume<T: Pod + PartialEq + std::fmt::Debug>(
    name: &str,
    n: u64,
    value: impl Fn(u64) -> T,
) -> Result<(), String> {
    let ring = SpscRing::<T>::open_posix(name).map_err(|e| e.to_string())?;
    let mut rx = ring.consumer().map_err(|e| e.to_string())?;
    for i in 0..n {
        let got = rx.pop_blocking(WAIT).map_err(|e| format!("pop {i}: {e}"))?;
        if got != value(i) {
            return Err(format!("item {i}: got {got:?}, expected {:?}", value(i)));
        }
    }
    Ok(())
}

fn mpmc_produce(name: &str, n: u64) -> Result<(), String> {
    let ring = MpmcRing::<u64>::open_posix(name).map_err(|e| e.to_string())?;
    for i in 0..n {
        ring.push_blocking(i, WAIT)
            .map_err(|e| format!("push {i}: {e}"))?;
    }
    Ok(())
}

fn mpmc_consume(name: &str, n: u64) -> Result<(), String> {
    let ring = MpmcRing::<u64>::open_posix(name).map_err(|e| e.to_string())?;
    for i in 0..n {
        let got = ring
            .pop_blocking(WAIT)
            .map_err(|e| format!("pop {i}: {e}"))?;
        if got != i {
            return Err(format!("item {i}: got {got}"));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, name, n] = args.as_slice() else {
        eprintln!("usage: ring_peer produce|consume|produce-struct|consume-struct|mpmc-produce|mpmc-consume /name N");
        return ExitCode::from(2);
    };
    let Ok(n) = n.parse::<u64>() else {
        eprintln!("ring_peer: N must be a number, got {n:?}");
        return ExitCode::from(2);
    };
    let result = match mode.as_str() {
        "produce" => produce::<u64>(name, n, |i| i),
        "consume" => consume::<u64>(name, n, |i| i),
        "produce-struct" => produce(name, n, point),
        "consume-struct" => consume(name, n, point),
        "mpmc-produce" => mpmc_produce(name, n),
        "mpmc-consume" => mpmc_consume(name, n),
        other => Err(format!("unknown mode {other:?}")),
    };
    match result {
        Ok(()) => {
            println!("ok {n}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ring_peer {mode} {name}: {e}");
            ExitCode::FAILURE
        }
    }
}
