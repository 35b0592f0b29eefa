//! `shm`: an admin tool for System V and POSIX shared memory, in the spirit
//! of `ipcs`/`ipcrm` and Go's shmtool, plus what they lack: orphan cleanup
//! (`gc`), host checks (`doctor`), decoding this project's rings and pools
//! (`inspect`), and an HTTP API (`serve`).

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use serde::Serialize;
use shm_segment::PermChange;

mod bench;
mod demo;
mod doctor;
mod gc;
mod inspect;
mod ops;
mod output;
mod procmaps;
mod serve;
mod target;

use target::{parse_mode, parse_size, Target};

#[derive(Debug, Parser)]
#[command(
    name = "shm",
    version,
    about = "Shared memory on Linux: System V and POSIX segments"
)]
#[command(
    after_help = "Segments are named key:N (decimal or 0x hex), key:private, id:N, or /name."
)]
struct Cli {
    /// Print results, and errors, as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List segments, like `ipcs -m`, with the pids that map them.
    List {
        /// Only System V segments.
        #[arg(long, conflicts_with = "posix")]
        sysv: bool,
        /// Only POSIX segments.
        #[arg(long)]
        posix: bool,
    },
    /// Create a segment (exclusive); prints its shmid or name.
    Create {
        target: Target,
        /// Size: 4096, 64K, 16M, 1G.
        #[arg(long, value_parser = parse_size)]
        size: u64,
        /// Permission bits, octal as with chmod.
        #[arg(long, value_parser = parse_mode, default_value = "600")]
        mode: u32,
    },
    /// Everything the kernel keeps about a segment.
    Stat { target: Target },
    /// Write DATA, or standard input, into a segment; refused before writing
    /// anything if it would pass the end.
    Write {
        target: Target,
        /// Where to start.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// The bytes to write; standard input when absent.
        data: Option<String>,
    },
    /// Copy a segment's bytes to standard output.
    Read {
        target: Target,
        /// Where to start.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// How many bytes (default: to the end).
        #[arg(long)]
        len: Option<usize>,
        /// Drop trailing NUL bytes.
        #[arg(long)]
        trim: bool,
        /// Print a hex dump.
        #[arg(long)]
        hex: bool,
    },
    /// Change owner and mode (IPC_SET for System V, fchown/fchmod for POSIX).
    Set {
        target: Target,
        #[arg(long)]
        uid: Option<u32>,
        #[arg(long)]
        gid: Option<u32>,
        /// Permission bits, octal as with chmod.
        #[arg(long, value_parser = parse_mode)]
        mode: Option<u32>,
    },
    /// Remove a segment (IPC_RMID: gone after the last detach; or shm_unlink).
    #[command(alias = "remove")]
    Rm { target: Target },
    /// Remove orphans: System V segments nobody attaches whose creator and
    /// last user are dead; POSIX segments of this project whose creator is
    /// dead and that nobody maps.
    Gc {
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Spare segments changed less than this many seconds ago (a
        /// segment made by `shm create` has a dead creator and no user yet).
        #[arg(long, default_value_t = 60)]
        min_age: u64,
    },
    /// Check the host's limits and settings for shared memory.
    Doctor,
    /// Decode a ring's, pool's or channel's header and live state.
    Inspect { target: Target },
    /// Create a SysV and a POSIX segment, let a second process read and answer, show stat, clean up.
    Demo,
    /// The demo's second process (started by `shm demo`).
    #[command(hide = true)]
    DemoPeer {
        #[arg(long)]
        key: i32,
        #[arg(long)]
        name: String,
    },
    /// Measure rings, pool and channel against a pipe on this machine
    /// (about 10 s; a table of throughput, ns per op and ratio to the pipe).
    Bench {
        /// About 2 s instead of 10 (less precise).
        #[arg(long)]
        quick: bool,
    },
    /// The benchmark's second process (started by `shm bench`).
    #[command(hide = true)]
    BenchPeer {
        #[arg(long, value_enum)]
        role: bench::PeerRole,
        /// The segment to attach (ring cases).
        #[arg(long)]
        name: Option<String>,
        /// The pid of `shm bench`, to die with it.
        #[arg(long)]
        parent: u32,
    },
    /// Serve the HTTP API: the seed service's SysV endpoints (/create,
    /// /stat, /write, /read, /set, /remove), plus /list and /posix/...
    Serve {
        /// Address to listen on, IP:PORT (port 0 picks a free one). Anything
        /// but loopback needs --token.
        #[arg(long, default_value = serve::DEFAULT_LISTEN, value_parser = serve::parse_listen)]
        listen: std::net::SocketAddr,
        /// Require `Authorization: Bearer TOKEN` on every request.
        #[arg(long)]
        token: Option<String>,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), for `cargo xtask man`.
    #[command(hide = true)]
    Manpage,
}

/// What a command failed with: a segment error (with an HTTP-like status
/// for `--json`) or a usage problem.
enum Failure {
    Segment(shm_segment::Error),
    Other(String),
}

impl From<shm_segment::Error> for Failure {
    fn from(e: shm_segment::Error) -> Self {
        Failure::Segment(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Other(e.to_string())
    }
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Other(e)
    }
}

type Result<T = ()> = std::result::Result<T, Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let (message, status) = match &failure {
                Failure::Segment(e) => (e.to_string(), ops::http_status(e)),
                Failure::Other(m) => (m.clone(), 400),
            };
            if json {
                eprintln!(
                    "{}",
                    serde_json::json!({ "error": message, "status": status })
                );
            } else {
                eprintln!("shm: {message}");
            }
            ExitCode::FAILURE
        }
    }
}

fn print_json(value: &impl Serialize) -> Result {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

fn run(cli: Cli) -> Result {
    let json = cli.json;
    match cli.command {
        Command::List { sysv, posix } => {
            let all = ops::list(!posix, !sysv)?;
            if json {
                print_json(&all)
            } else {
                output::table(&all);
                Ok(())
            }
        }
        Command::Create { target, size, mode } => {
            let created = ops::create(&target, size, mode)?;
            if json {
                print_json(&created)
            } else {
                match created.shmid {
                    Some(id) => println!("{id}"),
                    None => println!("{}", created.target),
                }
                Ok(())
            }
        }
        Command::Stat { target } => {
            let stat = ops::stat(&target)?;
            if json {
                print_json(&stat)
            } else {
                output::stat(&stat);
                Ok(())
            }
        }
        Command::Write {
            target,
            offset,
            data,
        } => {
            let bytes = match data {
                Some(d) => d.into_bytes(),
                None => {
                    let mut buf = Vec::new();
                    std::io::stdin().read_to_end(&mut buf)?;
                    buf
                }
            };
            ops::write(&target, offset, &bytes)?;
            if json {
                print_json(
                    &serde_json::json!({ "target": target.to_string(), "offset": offset, "written": bytes.len() }),
                )
            } else {
                println!("wrote {} bytes at offset {offset} of {target}", bytes.len());
                Ok(())
            }
        }
        Command::Read {
            target,
            offset,
            len,
            trim,
            hex,
        } => {
            let mut bytes = ops::read(&target, offset, len)?;
            if trim {
                let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                bytes.truncate(end);
            }
            let mut out = std::io::stdout().lock();
            if json {
                let text = String::from_utf8_lossy(&bytes);
                print_json(
                    &serde_json::json!({ "target": target.to_string(), "offset": offset, "len": bytes.len(), "data": text }),
                )
            } else if hex {
                output::hexdump(&mut out, offset, &bytes)?;
                Ok(())
            } else {
                out.write_all(&bytes)?;
                Ok(())
            }
        }
        Command::Set {
            target,
            uid,
            gid,
            mode,
        } => {
            if uid.is_none() && gid.is_none() && mode.is_none() {
                return Err(Failure::Other(format!(
                    "set {target}: give at least one of --uid, --gid, --mode"
                )));
            }
            ops::set(&target, PermChange { uid, gid, mode })?;
            if json {
                print_json(&serde_json::json!({ "target": target.to_string(), "op": "done" }))
            } else {
                println!("changed {target}");
                Ok(())
            }
        }
        Command::Rm { target } => {
            ops::remove(&target)?;
            if json {
                print_json(&serde_json::json!({ "target": target.to_string(), "op": "done" }))
            } else {
                println!("removed {target}");
                Ok(())
            }
        }
        Command::Gc { dry_run, min_age } => {
            let report = gc::run(dry_run, min_age)?;
            if json {
                print_json(&report)
            } else {
                gc::print(&report, dry_run);
                Ok(())
            }
        }
        Command::Doctor => {
            let checks = doctor::run();
            if json {
                print_json(&checks)
            } else {
                doctor::print(&checks);
                Ok(())
            }
        }
        Command::Inspect { target } => {
            let report = inspect::run(&target)?;
            if json {
                print_json(&report)
            } else {
                inspect::print(&report);
                Ok(())
            }
        }
        Command::Demo => demo::run().map_err(|e| Failure::Other(e.to_string())),
        Command::DemoPeer { key, name } => {
            demo::peer(key, &name).map_err(|e| Failure::Other(e.to_string()))
        }
        Command::Bench { quick } => bench::run(quick, json).map_err(Failure::Other),
        Command::BenchPeer { role, name, parent } => {
            bench::peer(role, name.as_deref(), parent).map_err(Failure::Other)
        }
        Command::Serve { listen, token } => serve::run(listen, token).map_err(Failure::Other),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "shm", &mut std::io::stdout());
            Ok(())
        }
        Command::Manpage => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(())
        }
    }
}
