//! `shm`: an admin tool for System V and POSIX shared memory.
//!
//! For now it runs the demo (the README's main job); the full admin command
//! set (list, create, stat, read, write, set, rm, gc, doctor, serve…) builds
//! on the same layers.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;

#[derive(Debug, Parser)]
#[command(
    name = "shm",
    version,
    about = "Shared memory on Linux: System V and POSIX segments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a SysV and a POSIX segment, let a second process read and answer, show stat, clean up.
    Demo,
    /// The demo's second process (started by `shm demo`).
    #[command(hide = true)]
    DemoPeer {
        /// SysV key to open.
        #[arg(long)]
        key: i32,
        /// POSIX name to open.
        #[arg(long)]
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo => demo::run(),
        Command::DemoPeer { key, name } => demo::peer(key, &name),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("shm: {err}");
            ExitCode::FAILURE
        }
    }
}
