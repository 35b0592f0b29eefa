//! Segments against their peers, in one run (results in `docs/benchmarks.md`):
//!
//! - `posix_lifecycle`, `sysv_lifecycle`: create + map + unmap + remove of a
//!   4 KiB and a 1 MiB segment, with our API (`shm`) and with raw libc calls,
//!   both the minimal sequence (`libc_minimal`) and the sequence that does what
//!   ours does (`libc_equivalent`: the same extra system calls), so the report
//!   shows both the cost of those calls and the cost of the wrapper alone.
//!   `shm_reserve_false` is our API with `PosixOptions::reserve(false)` (not
//!   the default): no `posix_fallocate`.
//! - `copy`: `Region::write_at` and `Region::read_at` on a mapped POSIX
//!   segment against `copy_from_slice` between two `Vec`s (`memcpy`), 4 KiB to
//!   16 MiB, in bytes per second.
//! - `copy_alignment`: `memcpy` between buffers at `read_at`'s page offsets,
//!   and `read_at` into a buffer at `memcpy`'s, to tell the cost of our API
//!   from the cost of `memcpy` on a given pair of addresses.
//!
//! ```text
//! cargo bench -p shm-benches --bench segment -- --warm-up-time 1 --measurement-time 3
//! cargo bench -p shm-benches --bench segment -- --interleaved   # ratios robust to load changes
//! ```
//!
//! Every iteration removes what it creates (one POSIX name per benchmark,
//! reused; System V segments are `IPC_PRIVATE`), so a run leaves nothing in
//! `/dev/shm` or `ipcs -m`.

use std::ffi::{CStr, CString};
use std::hint::black_box;
use std::ptr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use shm::segment::{Access, Mapping, PosixOptions, PosixShm, Region, SysvKey, SysvOptions};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const LIFECYCLE_SIZES: [usize; 2] = [4 * KIB, MIB];
const COPY_SIZES: [usize; 4] = [4 * KIB, 64 * KIB, MIB, 16 * MIB];

fn label(size: usize) -> String {
    if size >= MIB {
        format!("{}MiB", size / MIB)
    } else {
        format!("{}KiB", size / KIB)
    }
}

/// The POSIX name one benchmark reuses: created and unlinked every iteration.
fn bench_name(what: &str, size: usize) -> String {
    format!("/shm-bench-{}-{what}-{}", std::process::id(), label(size))
}

/// The open flags of `PosixOptions::create`, used by both raw sequences.
const CREATE_FLAGS: libc::c_int =
    libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC;

fn check(ok: bool, call: &str) {
    assert!(ok, "{call}: {}", std::io::Error::last_os_error());
}

/// Our API: `shm_open`, `fchmod`, `ftruncate`, `posix_fallocate` (create),
/// `fstat`, `mmap` (map), `munmap` (drop), `shm_unlink`, `close` (drop).
/// With `reserve` false (not the default), no `posix_fallocate`.
fn posix_ours(name: &str, size: usize, reserve: bool) {
    let shm = PosixOptions::new()
        .reserve(reserve)
        .create(name, size)
        .expect("create");
    let map = shm.map().expect("map");
    black_box(map.as_ptr());
    drop(map);
    shm.unlink().expect("unlink");
}

/// The least a C program does: `shm_open` (mode 0600 through the umask),
/// `ftruncate`, `mmap`, `munmap`, `shm_unlink`, `close`.
fn posix_libc_minimal(name: &CStr, size: usize) {
    // SAFETY: `name` is a valid C string; the descriptor and the mapping are
    // fresh, used only here, and released before the block ends.
    unsafe {
        let fd = libc::shm_open(name.as_ptr(), CREATE_FLAGS, 0o600);
        check(fd >= 0, "shm_open");
        check(libc::ftruncate(fd, size as libc::off_t) == 0, "ftruncate");
        let p = libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        check(p != libc::MAP_FAILED, "mmap");
        black_box(p);
        check(libc::munmap(p, size) == 0, "munmap");
        check(libc::shm_unlink(name.as_ptr()) == 0, "shm_unlink");
        check(libc::close(fd) == 0, "close");
    }
}

/// The same system calls as ours, by hand: adds `fchmod` (mode not left to
/// the umask), `posix_fallocate` (ENOSPC now rather than SIGBUS later) and
/// the `fstat` with which `map` learns the size.
fn posix_libc_equivalent(name: &CStr, size: usize) {
    // SAFETY: as in `posix_libc_minimal`; `st` is a plain C struct that
    // fstat fills.
    unsafe {
        let fd = libc::shm_open(name.as_ptr(), CREATE_FLAGS, 0);
        check(fd >= 0, "shm_open");
        check(libc::fchmod(fd, 0o600) == 0, "fchmod");
        check(libc::ftruncate(fd, size as libc::off_t) == 0, "ftruncate");
        let r = libc::posix_fallocate(fd, 0, size as libc::off_t);
        assert_eq!(r, 0, "posix_fallocate: errno {r}");
        let mut st: libc::stat = std::mem::zeroed();
        check(libc::fstat(fd, &mut st) == 0, "fstat");
        let len = st.st_size as usize;
        let p = libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        check(p != libc::MAP_FAILED, "mmap");
        black_box(p);
        check(libc::munmap(p, len) == 0, "munmap");
        check(libc::shm_unlink(name.as_ptr()) == 0, "shm_unlink");
        check(libc::close(fd) == 0, "close");
    }
}

fn posix_lifecycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("posix_lifecycle");
    for size in LIFECYCLE_SIZES {
        let id = label(size);
        let name = bench_name("ours", size);
        group.bench_with_input(BenchmarkId::new("shm", &id), &size, |b, &size| {
            b.iter(|| posix_ours(&name, size, true))
        });
        let name = bench_name("noreserve", size);
        group.bench_with_input(
            BenchmarkId::new("shm_reserve_false", &id),
            &size,
            |b, &size| b.iter(|| posix_ours(&name, size, false)),
        );
        let name = CString::new(bench_name("minimal", size)).expect("no NUL");
        group.bench_with_input(BenchmarkId::new("libc_minimal", &id), &size, |b, &size| {
            b.iter(|| posix_libc_minimal(&name, size))
        });
        let name = CString::new(bench_name("equivalent", size)).expect("no NUL");
        group.bench_with_input(
            BenchmarkId::new("libc_equivalent", &id),
            &size,
            |b, &size| b.iter(|| posix_libc_equivalent(&name, size)),
        );
    }
    group.finish();
}

/// Our API: `shmget` (create), `IPC_STAT` and `shmat` (attach), `shmdt`
/// (drop), `IPC_RMID` (remove).
fn sysv_ours(size: usize) {
    let seg = SysvOptions::new()
        .create(SysvKey::PRIVATE, size)
        .expect("create");
    let map = seg.attach(Access::ReadWrite).expect("attach");
    black_box(map.as_ptr());
    drop(map);
    seg.remove().expect("remove");
}

/// `shmget`, `shmat`, `shmdt`, `IPC_RMID`; with `stat`, also the `IPC_STAT`
/// with which our `attach` learns the size.
fn sysv_libc(size: usize, stat: bool) {
    // SAFETY: plain system calls on a segment made here; the attachment is
    // detached and the segment removed before the block ends; `ds` is a plain
    // C struct that IPC_STAT fills.
    unsafe {
        let id = libc::shmget(
            libc::IPC_PRIVATE,
            size,
            libc::IPC_CREAT | libc::IPC_EXCL | 0o600,
        );
        check(id >= 0, "shmget");
        if stat {
            let mut ds: libc::shmid_ds = std::mem::zeroed();
            check(libc::shmctl(id, libc::IPC_STAT, &mut ds) == 0, "IPC_STAT");
            black_box(ds.shm_segsz);
        }
        let p = libc::shmat(id, ptr::null(), 0);
        check(p as isize != -1, "shmat");
        black_box(p);
        check(libc::shmdt(p) == 0, "shmdt");
        check(
            libc::shmctl(id, libc::IPC_RMID, ptr::null_mut()) == 0,
            "IPC_RMID",
        );
    }
}

fn sysv_lifecycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("sysv_lifecycle");
    for size in LIFECYCLE_SIZES {
        let id = label(size);
        group.bench_with_input(BenchmarkId::new("shm", &id), &size, |b, &size| {
            b.iter(|| sysv_ours(size))
        });
        group.bench_with_input(BenchmarkId::new("libc_minimal", &id), &size, |b, &size| {
            b.iter(|| sysv_libc(size, false))
        });
        group.bench_with_input(
            BenchmarkId::new("libc_equivalent", &id),
            &size,
            |b, &size| b.iter(|| sysv_libc(size, true)),
        );
    }
    group.finish();
}

/// A mapped POSIX segment of the largest copy size, every page faulted in.
/// Its name is unlinked at once: the mapping stays valid, and nothing is left
/// in /dev/shm even if a benchmark panics.
fn copy_mapping(what: &str) -> Mapping {
    let max = COPY_SIZES[COPY_SIZES.len() - 1];
    let shm = PosixShm::create(&bench_name(what, max), max).expect("create");
    let map = shm.map().expect("map");
    shm.unlink().expect("unlink");
    map.fill(0, max, 1).expect("fault every page in");
    map
}

fn copy(c: &mut Criterion) {
    let max = COPY_SIZES[COPY_SIZES.len() - 1];
    let map = copy_mapping("copy");
    let src: Vec<u8> = (0..max).map(|i| i as u8).collect();
    let mut dst = vec![1u8; max]; // written, so every page is faulted in
    eprintln!(
        "copy: page offsets: mapping {}, src Vec {}, dst Vec {}",
        map.as_ptr() as usize % 4096,
        src.as_ptr() as usize % 4096,
        dst.as_ptr() as usize % 4096
    );

    let mut group = c.benchmark_group("copy");
    for size in COPY_SIZES {
        let id = label(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("write_at", &id), &size, |b, &size| {
            b.iter(|| map.write_at(0, black_box(&src[..size])).expect("write_at"))
        });
        group.bench_with_input(BenchmarkId::new("read_at", &id), &size, |b, &size| {
            b.iter(|| {
                map.read_at(0, black_box(&mut dst[..size]))
                    .expect("read_at");
                black_box(&dst[..size]);
            })
        });
        group.bench_with_input(BenchmarkId::new("memcpy", &id), &size, |b, &size| {
            b.iter(|| {
                dst[..size].copy_from_slice(black_box(&src[..size]));
                black_box(&dst[..size]);
            })
        });
    }
    group.finish();
}

/// `len` bytes that start exactly `page_offset` bytes into a page: the
/// buffer and the index of the first byte.
fn placed(len: usize, page_offset: usize) -> (Vec<u8>, usize) {
    let buf = vec![1u8; len + 4096 + page_offset];
    let start = buf.as_ptr().align_offset(4096) + page_offset;
    (buf, start)
}

/// Where `read_at` is slower than `memcpy`, this tells why. `read_at` is one
/// `memcpy` call, from the page-aligned mapping into the caller's buffer; a
/// large `Vec` starts 16 bytes into its page (glibc's chunk header), so
/// `dst - src` is 16 modulo 4096, while the `memcpy` peer copies between two
/// such `Vec`s (`dst - src` is 0 modulo 4096). Here the page offsets are set
/// by hand: `memcpy` with `read_at`'s offsets (0 to 16), and `read_at` into a
/// page-aligned buffer (0 to 0).
fn copy_alignment(c: &mut Criterion) {
    let max = COPY_SIZES[COPY_SIZES.len() - 1];
    let map = copy_mapping("align");
    let (src_buf, src_at) = placed(max, 0);
    let src = &src_buf[src_at..src_at + max];
    let (mut dst16_buf, dst16_at) = placed(max, 16);
    let dst16 = &mut dst16_buf[dst16_at..dst16_at + max];
    let (mut dst0_buf, dst0_at) = placed(max, 0);
    let dst0 = &mut dst0_buf[dst0_at..dst0_at + max];

    let mut group = c.benchmark_group("copy_alignment");
    for size in COPY_SIZES {
        let id = label(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::new("memcpy_page_offsets_0_to_16", &id),
            &size,
            |b, &size| {
                b.iter(|| {
                    dst16[..size].copy_from_slice(black_box(&src[..size]));
                    black_box(&dst16[..size]);
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("read_at_page_offsets_0_to_0", &id),
            &size,
            |b, &size| {
                b.iter(|| {
                    map.read_at(0, black_box(&mut dst0[..size]))
                        .expect("read_at");
                    black_box(&dst0[..size]);
                })
            },
        );
    }
    group.finish();
}

/// Runs every case once per round, in rotating order, for at least `budget`
/// and 10 rounds. Returns each case's median time in seconds, and the number
/// of rounds. Criterion measures one case after the other, so on a busy
/// 2-core machine a change of load between two cases shows up as a
/// difference between them; here load changes hit every case alike.
fn interleave(cases: &mut [Case<'_>], budget: Duration) -> (Vec<f64>, usize) {
    let mut times = vec![Vec::new(); cases.len()];
    let start = Instant::now();
    let mut rounds = 0;
    while start.elapsed() < budget || rounds < 10 {
        for i in 0..cases.len() {
            let case = (rounds + i) % cases.len();
            let t = Instant::now();
            cases[case]();
            times[case].push(t.elapsed().as_secs_f64());
        }
        rounds += 1;
    }
    let medians = times
        .into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect();
    (medians, rounds)
}

type Case<'a> = Box<dyn FnMut() + 'a>;

/// `--interleaved`, part 1: the lifecycle cases, each round running each
/// case once.
fn interleaved_lifecycle() {
    println!("lifecycle, interleaved: median time per case");
    println!();
    println!(
        "| kind | size | rounds | shm | libc_minimal | ratio | libc_equivalent | ratio \
         | shm_reserve_false | ratio to libc_minimal |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for kind in ["posix", "sysv"] {
        for size in LIFECYCLE_SIZES {
            let minimal = CString::new(bench_name("minimal", size)).expect("no NUL");
            let equivalent = CString::new(bench_name("equivalent", size)).expect("no NUL");
            let ours = bench_name("ours", size);
            let noreserve = bench_name("noreserve", size);
            let mut cases: Vec<Case<'_>> = match kind {
                "posix" => vec![
                    Box::new(|| posix_ours(&ours, size, true)),
                    Box::new(|| posix_libc_minimal(&minimal, size)),
                    Box::new(|| posix_libc_equivalent(&equivalent, size)),
                    Box::new(|| posix_ours(&noreserve, size, false)),
                ],
                _ => vec![
                    Box::new(|| sysv_ours(size)),
                    Box::new(|| sysv_libc(size, false)),
                    Box::new(|| sysv_libc(size, true)),
                ],
            };
            let (med, rounds) = interleave(&mut cases, Duration::from_secs(3));
            let us = |t: f64| t * 1e6;
            let noreserve = match med.get(3) {
                Some(&t) => format!("{:.1} µs | {:.2}x", us(t), t / med[1]),
                None => "- | -".to_owned(),
            };
            println!(
                "| {kind} | {} | {rounds} | {:.1} µs | {:.1} µs | {:.2}x | {:.1} µs | {:.2}x \
                 | {noreserve} |",
                label(size),
                us(med[0]),
                us(med[1]),
                med[0] / med[1],
                us(med[2]),
                med[0] / med[2],
            );
        }
    }
}

/// `--interleaved`, part 2: the copy cases, each round running a batch of
/// copies of each case. Every buffer sits at a chosen page offset: 16 where
/// the criterion groups use a plain `Vec` (that is where glibc puts a large
/// one), 0 for the mapping and for `copy_alignment`'s page-aligned buffers.
fn interleaved_copy() {
    let max = COPY_SIZES[COPY_SIZES.len() - 1];
    let map = copy_mapping("interleaved");
    // Each buffer: `max` bytes at a page offset, as `placed` makes them.
    let mut buffers = [16, 16, 16, 0, 16, 0].map(|offset| placed(max, offset));
    let [src, dst_read, dst_memcpy, src_page0, dst_page16, dst_page0] = buffers
        .each_mut()
        .map(|(buf, start)| &mut buf[*start..*start + max]);
    let (src, src_page0) = (&*src, &*src_page0);

    println!();
    println!("copy, interleaved: median bandwidth per case, GiB/s; ratio = ours / memcpy");
    println!();
    println!(
        "| size | rounds | write_at | ratio | read_at | ratio | memcpy \
         | memcpy_page_offsets_0_to_16 | read_at_page_offsets_0_to_0 | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for size in COPY_SIZES {
        // About 1 MiB per batch, so a batch takes tens of microseconds.
        let reps = (MIB / size).max(1);
        let mut cases: Vec<Case<'_>> = vec![
            Box::new(|| {
                for _ in 0..reps {
                    map.write_at(0, black_box(&src[..size])).expect("write_at");
                }
            }),
            Box::new(|| {
                for _ in 0..reps {
                    map.read_at(0, black_box(&mut dst_read[..size]))
                        .expect("read_at");
                    black_box(&dst_read[..size]);
                }
            }),
            Box::new(|| {
                for _ in 0..reps {
                    dst_memcpy[..size].copy_from_slice(black_box(&src[..size]));
                    black_box(&dst_memcpy[..size]);
                }
            }),
            Box::new(|| {
                for _ in 0..reps {
                    dst_page16[..size].copy_from_slice(black_box(&src_page0[..size]));
                    black_box(&dst_page16[..size]);
                }
            }),
            Box::new(|| {
                for _ in 0..reps {
                    map.read_at(0, black_box(&mut dst_page0[..size]))
                        .expect("read_at");
                    black_box(&dst_page0[..size]);
                }
            }),
        ];
        let (med, rounds) = interleave(&mut cases, Duration::from_secs(2));
        let gib = |t: f64| (size * reps) as f64 / t / (1u64 << 30) as f64;
        println!(
            "| {} | {rounds} | {:.1} | {:.2}x | {:.1} | {:.2}x | {:.1} | {:.1} | {:.1} | {:.2}x |",
            label(size),
            gib(med[0]),
            med[2] / med[0],
            gib(med[1]),
            med[2] / med[1],
            gib(med[2]),
            gib(med[3]),
            gib(med[4]),
            med[2] / med[4],
        );
    }
}

criterion_group!(
    benches,
    posix_lifecycle,
    sysv_lifecycle,
    copy,
    copy_alignment
);

fn main() {
    if std::env::args().any(|a| a == "--interleaved") {
        interleaved_lifecycle();
        interleaved_copy();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
