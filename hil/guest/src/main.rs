//! Guest-side tools of the QEMU hardware-in-the-loop runs (hil/).
//!
//! * `hostile`: thousands of random and invalid ioctls, mmaps, reads and
//!   control-page writes against `/dev/hsdaqN`; every outcome must be a clean
//!   errno from the expected set, or a success where the ABI allows one.
//! * `readbench`: consumes the same stream through the mmap ring and through
//!   `read()`, with the same block size, and prints both throughputs.
//!
//! * `readpath`, `iio-count`, `comedi-read`: the three readers of the peers
//!   comparison (hil/scenarios/peers.sh) that are not `acquire` itself.
//!
//! Each prints one JSON object on stdout for the host to assert on.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[cfg(target_arch = "x86_64")]
mod comedi;
mod dev;
mod hostile;
mod iiocount;
mod race;
mod readbench;
mod readpath;
mod ringread;
mod soundness;

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
    /// Fill the ring, stop, and time in-place reads of the whole data area.
    Ringread {
        #[arg(long, default_value = "/dev/hsdaq0")]
        device: PathBuf,
        #[arg(long, default_value_t = 5)]
        passes: u32,
    },
    /// Read `rate × seconds` scans through read(), counting what arrived
    /// and the losses the block headers report.
    Readpath {
        #[arg(long, default_value = "/dev/hsdaq0")]
        device: PathBuf,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// Processes map the ring in a loop while the device is unbound under
    /// them; every mapping that succeeded must then raise SIGBUS.
    MmapUnbind {
        #[arg(long, default_value = "/dev/hsdaq0")]
        device: PathBuf,
        /// The platform device's name (for sysfs bind/unbind).
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = 10)]
        rounds: u32,
        #[arg(long, default_value_t = 3)]
        procs: usize,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Milliseconds between the children's start and the unbind.
        #[arg(long, default_value_t = 500)]
        unbind_after_ms: u64,
    },
    /// A read() parked on a destination that never faults in (userfaultfd);
    /// a second open, another misc device's open and an unbind must finish.
    BlockedRead {
        #[arg(long, default_value = "/dev/hsdaq0")]
        device: PathBuf,
        #[arg(long)]
        name: String,
        /// Another misc device to open meanwhile.
        #[arg(long, default_value = "/dev/userfaultfd")]
        other_misc: PathBuf,
    },
    /// Wake-up lateness of a 1 ms sleep and a busy thread's CPU share per
    /// CPU, idle and then while the device streams.
    Latency {
        #[arg(long, default_value = "/dev/hsdaq0")]
        device: PathBuf,
        /// Seconds per phase (idle, streaming).
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// Count iio_readdev's raw scans on stdin against the trigger's rate.
    IioCount {
        /// Bytes per scan (channels, padding and timestamp).
        #[arg(long)]
        scan_bytes: usize,
        /// Offset of the 64-bit timestamp in a scan.
        #[arg(long)]
        ts_offset: usize,
        /// The hrtimer trigger's frequency.
        #[arg(long)]
        rate: f64,
    },
    /// Stream from a comedi device with comedilib (mmap'd buffer).
    #[cfg(target_arch = "x86_64")]
    ComediRead {
        #[arg(long, default_value = "/dev/comedi0")]
        device: PathBuf,
        #[arg(long)]
        rate: u32,
        #[arg(long, default_value_t = 4)]
        channels: u32,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[arg(long, default_value_t = 32 << 20)]
        buffer_bytes: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hostile { device, ops, seed } => hostile::run(&device, ops, seed),
        Command::Readbench { device, seconds } => readbench::run(&device, seconds),
        Command::Ringread { device, passes } => ringread::run(&device, passes),
        Command::Race {
            device,
            seconds,
            ops,
        } => race::run(&device, seconds, ops),
        Command::Stale { device, ready, go } => race::stale(&device, &ready, &go),
        Command::Readpath { device, seconds } => readpath::run(&device, seconds),
        Command::MmapUnbind {
            device,
            name,
            rounds,
            procs,
            threads,
            unbind_after_ms,
        } => soundness::mmap_unbind(&device, &name, rounds, procs, threads, unbind_after_ms),
        Command::BlockedRead {
            device,
            name,
            other_misc,
        } => soundness::blocked_read(&device, &name, &other_misc),
        Command::Latency { device, seconds } => soundness::latency(&device, seconds),
        Command::IioCount {
            scan_bytes,
            ts_offset,
            rate,
        } => iiocount::run(scan_bytes, ts_offset, rate),
        #[cfg(target_arch = "x86_64")]
        Command::ComediRead {
            device,
            rate,
            channels,
            seconds,
            buffer_bytes,
        } => comedi::run(&device, rate, channels, seconds, buffer_bytes),
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
