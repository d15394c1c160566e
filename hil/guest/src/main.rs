//! Guest-side tools of the QEMU hardware-in-the-loop runs (hil/).
//!
//! * `hostile`: thousands of random and invalid ioctls, mmaps, reads and
//!   control-page writes against `/dev/hsdaqN`; every outcome must be a clean
//!   errno from the expected set, or a success where the ABI allows one.
//! * `readbench`: consumes the same stream through the mmap ring and through
//!   `read()`, with the same block size, and prints both throughputs.
//!
//! Both print one JSON object on stdout for the host to assert on.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod dev;
mod hostile;
mod race;
mod readbench;

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fuzz the char device with invalid ioctls, mmaps and control-page writes.
    Hostile {
        #[arg(long, default_value = "/dev/hsdaq0")]
        device: PathBuf,
        /// Operations to issue.
        #[arg(long, default_value_t = 12_000)]
        ops: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Threads racing on one open file: read, WAIT, STATS, mmap/munmap, tail writes.
    Race {
        #[arg(long, default_value = "/dev/hsdaq0")]
        device: PathBuf,
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Stop once this many operations ran.
        #[arg(long, default_value_t = 100_000)]
        ops: u64,
    },
    /// Hold a mapping across an unbind, then touch it (expects SIGBUS).
    Stale {
        #[arg(long, default_value = "/dev/hsdaq0")]
        device: PathBuf,
        #[arg(long)]
        ready: PathBuf,
        #[arg(long)]
        go: PathBuf,
    },
    /// mmap ring vs read(): consumer throughput on the same stream.
    Readbench {
        #[arg(long, default_value = "/dev/hsdaq0")]
        device: PathBuf,
        /// Seconds per path.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hostile { device, ops, seed } => hostile::run(&device, ops, seed),
        Command::Readbench { device, seconds } => readbench::run(&device, seconds),
        Command::Race {
            device,
            seconds,
            ops,
        } => race::run(&device, seconds, ops),
        Command::Stale { device, ready, go } => race::stale(&device, &ready, &go),
    };
    match result {
        Ok(report) => {
            println!("{report}");
            if report["ok"].as_bool() == Some(false) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("hsdaq-hil-guest: {e}");
            ExitCode::from(2)
        }
    }
}
