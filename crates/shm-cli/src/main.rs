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
mod spec;

use output::{emit, Render};
use spec::{parse_mode, parse_size, Spec};

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
        target: Spec,
        /// Size: 4096, 64K, 16M, 1G.
        #[arg(long, value_parser = parse_size)]
        size: usize,
        /// Permission bits, octal as with chmod.
        #[arg(long, value_parser = parse_mode, default_value = "600")]
        mode: u32,
    },
    /// Everything the kernel keeps about a segment.
    Stat { target: Spec },
    /// Write DATA, or standard input, into a segment; refused before writing
    /// anything if it would pass the end.
    Write {
        target: Spec,
        /// Where to start.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// The bytes to write; standard input when absent.
        data: Option<String>,
    },
    /// Copy a segment's bytes to standard output.
    Read {
        target: Spec,
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
        target: Spec,
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
    Rm { target: Spec },
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
    Inspect { target: Spec },
    /// Create a SysV and a POSIX segment, let a second process read and answer, show stat, clean up.
    Demo,
    /// Measure shared memory on this host: segment create, copies, a ring
    /// and a channel in /dev/shm (about 4 s; operations per second, MB/s and
    /// ns per operation). Against other transports: `cargo xtask bench`.
    Bench {
        /// About 1 s instead of 4 (less precise).
        #[arg(long)]
        quick: bool,
    },
    /// Serve the HTTP API: the seed service's SysV endpoints (/create,
    /// /stat, /write, /read, /set, /remove), plus /list, /posix/... and
    /// /openapi.json.
    #[command(after_long_help = serve::THREAT_MODEL)]
    Serve {
        /// Where to listen: IP:PORT (port 0 picks a free one), or
        /// unix:/path for a Unix socket that knows its callers. Anything but
        /// loopback or a Unix socket needs a token.
        #[arg(long, default_value = serve::DEFAULT_LISTEN, value_parser = serve::parse_listen)]
        listen: serve::Listen,
        /// Require `Authorization: Bearer TOKEN` on every request. Other
        /// local users can read it in the process list: prefer --token-file.
        #[arg(long, conflicts_with = "token_file")]
        token: Option<String>,
        /// Read the bearer token from this file (its first line), which
        /// only its owner may read (mode 600 or 400).
        #[arg(long, value_name = "PATH")]
        token_file: Option<std::path::PathBuf>,
        /// The Unix socket's permission bits, octal (only with unix:;
        /// default 600).
        #[arg(long, value_parser = parse_mode)]
        socket_mode: Option<u32>,
        /// Serve this uid too on the Unix socket, besides the server's own
        /// (repeat for more).
        #[arg(long = "allow-uid", value_name = "UID")]
        allow_uid: Vec<u32>,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

/// The commands `shm` runs for itself: parsed apart from [`Cli`], so that
/// completions, the man page and `--help` never offer them.
#[derive(Debug, Parser)]
#[command(name = "shm")]
enum Internal {
    /// The demo's second process (started by `shm demo`).
    DemoPeer {
        #[arg(long)]
        key: i32,
        #[arg(long)]
        name: String,
    },
    /// Print the man page (roff), for `cargo xtask man`.
    Manpage,
}

impl Internal {
    /// The internal command named by the first argument, if it names one.
    fn from_args() -> Option<Internal> {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        let first = args.get(1)?.to_str()?;
        ["demo-peer", "manpage"]
            .contains(&first)
            .then(|| Internal::parse_from(args))
    }

    fn run(self) -> Result {
        match self {
            Internal::DemoPeer { key, name } => {
                demo::peer(key, &name).map_err(|e| Failure::Other(e.to_string()))
            }
            Internal::Manpage => {
                let mut page = Vec::new();
                clap_mangen::Man::new(Cli::command()).render(&mut page)?;
                Ok(output::emit_bytes(&page)?)
            }
        }
    }
}

/// What a command failed with: a segment error (with an HTTP-like status
/// for `--json`), a closed or failing output, or a usage problem.
enum Failure {
    Segment(shm_segment::Error),
    Inspect(inspect::Error),
    Io(std::io::Error),
    Other(String),
}

impl From<shm_segment::Error> for Failure {
    fn from(e: shm_segment::Error) -> Self {
        Failure::Segment(e)
    }
}

impl From<inspect::Error> for Failure {
    fn from(e: inspect::Error) -> Self {
        Failure::Inspect(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Other(e)
    }
}

impl Failure {
    /// The message and the HTTP-like status `--json` prints.
    fn describe(&self) -> (String, u16) {
        match self {
            Failure::Segment(e) | Failure::Inspect(inspect::Error::Segment(e)) => {
                (e.to_string(), serve::http_status(e))
            }
            Failure::Inspect(e) => (e.to_string(), 409),
            Failure::Io(e) => (format!("output: {e}"), 500),
            Failure::Other(m) => (m.clone(), 400),
        }
    }
}

type Result<T = ()> = std::result::Result<T, Failure>;

fn main() -> ExitCode {
    let (result, json) = match Internal::from_args() {
        Some(internal) => (internal.run(), false),
        None => {
            let cli = Cli::parse();
            let json = cli.json;
            (run(cli), json)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`shm list | head -1`): done, as `ls` would be.
        Err(Failure::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(failure) => {
            let (message, status) = failure.describe();
            let line = if json {
                serde_json::json!({ "error": message, "status": status }).to_string()
            } else {
                format!("shm: {message}")
            };
            // Nowhere to say it when stderr is closed too.
            let _ = writeln!(std::io::stderr(), "{line}");
            ExitCode::FAILURE
        }
    }
}

/// `write`'s answer.
#[derive(Serialize)]
struct Written {
    target: String,
    offset: usize,
    written: usize,
}

impl Render for Written {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "wrote {} bytes at offset {} of {}",
            self.written, self.offset, self.target
        )
    }
}

/// `set`'s and `rm`'s answer.
#[derive(Serialize)]
struct Done {
    target: String,
    op: &'static str,
    /// What the text says: `changed`, `removed`.
    #[serde(skip)]
    verb: &'static str,
}

impl Render for Done {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "{} {}", self.verb, self.target)
    }
}

/// `create`'s text is the shmid, or the name.
impl Render for ops::Created {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        match self.shmid {
            Some(id) => writeln!(out, "{id}"),
            None => writeln!(out, "{}", self.target),
        }
    }
}

/// `read`'s answer: raw bytes or a hex dump; JSON has the text.
struct ReadOut {
    target: String,
    offset: usize,
    bytes: Vec<u8>,
    hex: bool,
}

impl Serialize for ReadOut {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serde_json::json!({
            "target": self.target,
            "offset": self.offset,
            "len": self.bytes.len(),
            "data": String::from_utf8_lossy(&self.bytes),
        })
        .serialize(s)
    }
}

impl Render for ReadOut {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        if self.hex {
            output::hexdump(out, self.offset, &self.bytes)
        } else {
            out.write_all(&self.bytes)
        }
    }
}

fn run(cli: Cli) -> Result {
    let json = cli.json;
    match cli.command {
        Command::List { sysv, posix } => emit(json, &ops::list(!posix, !sysv)?)?,
        Command::Create { target, size, mode } => emit(json, &ops::create(&target, size, mode)?)?,
        Command::Stat { target } => emit(json, &ops::stat(&target)?)?,
        Command::Write {
            target,
            offset,
            data,
        } => {
            let bytes = match data {
                Some(d) => d.into_bytes(),
                None => {
                    let mut buf = Vec::new();
                    std::io::stdin().read_to_end(&mut buf).map_err(|e| {
                        Failure::Other(format!("write {target}: reading standard input: {e}"))
                    })?;
                    buf
                }
            };
            ops::write(&target, offset, &bytes)?;
            let written = Written {
                target: target.to_string(),
                offset,
                written: bytes.len(),
            };
            emit(json, &written)?;
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
            let read = ReadOut {
                target: target.to_string(),
                offset,
                bytes,
                hex,
            };
            emit(json, &read)?;
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
            let done = Done {
                target: target.to_string(),
                op: "done",
                verb: "changed",
            };
            emit(json, &done)?;
        }
        Command::Rm { target } => {
            ops::remove(&target)?;
            let done = Done {
                target: target.to_string(),
                op: "done",
                verb: "removed",
            };
            emit(json, &done)?;
        }
        Command::Gc { dry_run, min_age } => emit(json, &gc::run(dry_run, min_age)?)?,
        Command::Doctor => emit(json, &doctor::run())?,
        Command::Inspect { target } => emit(json, &inspect::run(&target)?)?,
        Command::Demo => demo::run().map_err(|e| match e.downcast::<std::io::Error>() {
            Ok(io) => Failure::Io(*io),
            Err(other) => Failure::Other(other.to_string()),
        })?,
        Command::Bench { quick } => emit(json, &bench::run(quick).map_err(Failure::Other)?)?,
        Command::Serve {
            listen,
            token,
            token_file,
            socket_mode,
            allow_uid,
        } => {
            let options = serve::Options {
                listen,
                token,
                token_file,
                socket_mode,
                allow_uids: allow_uid,
            };
            serve::run(options).map_err(Failure::Other)?;
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "shm", &mut script);
            output::emit_bytes(&script)?;
        }
    }
    Ok(())
}
