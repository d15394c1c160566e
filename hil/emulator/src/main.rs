//! The converter the DMA-source HIL test records: a host process that
//! writes `abi/`'s reference waveform into a packet FIFO in the QEMU guest's
//! RAM (a shared `memory-backend-file`), paced by the host's own clock, and
//! counts every packet it had to drop because the FIFO was full. No sample
//! of that test is computed inside the guest.
//!
//! The guest's test DMA controller (`hil/fifo-dma`) starts a run by bumping
//! `run_epoch` (the converter restarts at scan 0) and ends it by clearing
//! `enable`. On SIGTERM/SIGINT (or after `--duration`) the emulator writes
//! its report: per run, scans produced, packets written and dropped, and
//! every dropped range `[first scan, scans]`, which the scenario compares
//! with the gaps the recording reports.

mod fifo;

use std::fs::OpenOptions;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use hsdaq_abi::{format::Format, waveform};
use serde_json::json;

use fifo::Regs;

#[derive(Parser)]
#[command(about = "Emulated converter writing a packet FIFO in guest RAM (hsdaq HIL)")]
struct Args {
    /// The guest RAM file (QEMU memory-backend-file, share=on); created.
    #[arg(long)]
    ram: std::path::PathBuf,
    /// Guest RAM size in bytes (QEMU -m).
    #[arg(long, default_value_t = 1 << 30)]
    ram_bytes: u64,
    /// Guest physical address where RAM starts (virt: 0x40000000).
    #[arg(long, default_value = "0x40000000", value_parser = hex)]
    ram_base: u64,
    /// Guest physical address of the FIFO region (its no-map node's `reg`).
    #[arg(long, value_parser = hex)]
    fifo_phys: u64,
    /// Size of the FIFO region.
    #[arg(long, value_parser = hex)]
    fifo_bytes: u64,
    /// Scans per second, by the host's clock.
    #[arg(long)]
    rate: u64,
    #[arg(long)]
    channels: u16,
    /// s16 or s32.
    #[arg(long, default_value = "s16")]
    format: String,
    /// Scans per packet (equal to the recorder's block scans: one DMA
    /// transfer takes one packet).
    #[arg(long)]
    packet_scans: u32,
    /// Packets the FIFO holds.
    #[arg(long, default_value_t = 16)]
    slots: u32,
    /// Where to write the report (JSON).
    #[arg(long)]
    report: std::path::PathBuf,
    /// Stop after this many seconds (default: at SIGTERM/SIGINT).
    #[arg(long)]
    duration: Option<f64>,
}

fn hex(s: &str) -> Result<u64, String> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).map_err(|e| e.to_string()),
        None => s
            .parse()
            .map_err(|e: std::num::ParseIntError| e.to_string()),
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// One run: from a `run_epoch` the controller bumped to the next one.
#[derive(Default)]
struct Run {
    epoch: u32,
    scan: u64,
    written: u64,
    dropped_packets: u64,
    drops: Vec<(u64, u64)>,
    started: Option<Instant>,
    made: u64,
}

const MAX_DROP_RANGES: usize = 100_000;

impl Run {
    fn drop_packet(&mut self, scans: u64) {
        self.dropped_packets += 1;
        let len = self.drops.len();
        match self.drops.last_mut() {
            Some((first, n)) if *first + *n == self.scan => *n += scans,
            _ if len < MAX_DROP_RANGES => self.drops.push((self.scan, scans)),
            _ => {}
        }
    }

    fn report(&self) -> serde_json::Value {
        json!({
            "epoch": self.epoch,
            "produced_scans": self.scan,
            "written_packets": self.written,
            "dropped_packets": self.dropped_packets,
            "drops": self.drops,
            "drops_truncated": self.drops.len() >= MAX_DROP_RANGES,
        })
    }
}

fn main() -> Result<()> {
    let a = Args::parse();
    let format = Format::from_name(a.format.as_bytes()).context("--format: s16 or s32")?;
    let sample_bytes = format.bytes();
    let packet_bytes = a.packet_scans as usize * a.channels as usize * sample_bytes;
    let slots = a.slots as usize;
    if slots == 0 || slots > fifo::MAX_SLOTS {
        bail!("--slots: 1..={}", fifo::MAX_SLOTS);
    }
    let need = fifo::HEADER_BYTES + slots * packet_bytes;
    if need as u64 > a.fifo_bytes {
        bail!(
            "{slots} slots of {packet_bytes} B need {need} B; the region has {}",
            a.fifo_bytes
        );
    }
    let offset = a
        .fifo_phys
        .checked_sub(a.ram_base)
        .context("--fifo-phys below RAM")?;
    if offset + a.fifo_bytes > a.ram_bytes {
        bail!("the FIFO region ends beyond guest RAM");
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&a.ram)
        .with_context(|| format!("opening {}", a.ram.display()))?;
    file.set_len(a.ram_bytes)?;
    // SAFETY: the file is shared with QEMU only, whose guest reads and
    // writes the region through the same protocol (atomics for counters,
    // payload bytes only in slots the counters hand over).
    let mut map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(a.fifo_bytes as usize)
            .map_mut(&file)?
    };
    map[..fifo::HEADER_BYTES].fill(0);
    let base = map.as_mut_ptr();
    // SAFETY: the header page is `Regs` (size asserted), page-aligned, and
    // lives as long as `map`; every field another process writes is atomic.
    let regs: &mut Regs = unsafe { &mut *base.cast::<Regs>() };
    regs.version = fifo::VERSION;
    regs.packet_bytes = packet_bytes as u32;
    regs.slots = a.slots;
    regs.rate_hz = a.rate;
    regs.channels = u32::from(a.channels);
    regs.sample_bytes = sample_bytes as u32;
    regs.magic.store(fifo::MAGIC, Ordering::Release);
    let regs: &Regs = regs;
    // SAFETY: handlers only store to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    eprintln!(
        "emulator: {} Hz x {} ch {}, packets of {} scans ({packet_bytes} B), {slots} slots at guest {:#x}",
        a.rate, a.channels, a.format, a.packet_scans, a.fifo_phys
    );
    let begun = Instant::now();
    let mut runs: Vec<Run> = Vec::new();
    let n = a.packet_scans as usize * a.channels as usize;
    let mut values = (vec![0i16; n], vec![0i32; n]);
    while !STOP.load(Ordering::Relaxed) {
        if a.duration
            .is_some_and(|d| begun.elapsed().as_secs_f64() >= d)
        {
            break;
        }
        let epoch = regs.run_epoch.load(Ordering::Acquire);
        if epoch != regs.ack_epoch.load(Ordering::Relaxed) {
            // A new run: empty FIFO, scan 0, the clock starts now.
            let consumed = regs.consumed.load(Ordering::Acquire);
            regs.written.store(consumed, Ordering::Relaxed);
            regs.dropped_packets.store(0, Ordering::Relaxed);
            regs.produced_scans.store(0, Ordering::Relaxed);
            runs.push(Run {
                epoch,
                written: 0,
                ..Default::default()
            });
            regs.ack_epoch.store(epoch, Ordering::Release);
            eprintln!("emulator: run {epoch} starts");
        }
        let enabled = regs.enable.load(Ordering::Acquire) == 1;
        if let (true, Some(run)) = (enabled, runs.last_mut()) {
            let t0 = *run.started.get_or_insert_with(Instant::now);
            let due = (t0.elapsed().as_nanos() as u64).saturating_mul(a.rate)
                / 1_000_000_000
                / u64::from(a.packet_scans);
            produce(regs, base, run, due, &mut values, &a, format, packet_bytes);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let report = json!({
        "packet_scans": a.packet_scans,
        "packet_bytes": packet_bytes,
        "slots": slots,
        "rate_hz": a.rate,
        "runs": runs.iter().map(Run::report).collect::<Vec<_>>(),
    });
    std::fs::write(&a.report, serde_json::to_vec_pretty(&report)?)?;
    eprintln!("emulator: stopped; report {}", a.report.display());
    Ok(())
}

/// Makes the packets due by now: each goes into the next free slot, or is
/// dropped (counted, with its scan range) when the FIFO is full.
#[allow(clippy::too_many_arguments)]
fn produce(
    regs: &Regs,
    base: *mut u8,
    run: &mut Run,
    due: u64,
    values: &mut (Vec<i16>, Vec<i32>),
    a: &Args,
    format: Format,
    packet_bytes: usize,
) {
    // A host that fell far behind (suspended, overloaded) drops the backlog
    // at once, counted, instead of writing stale packets.
    let backlog = due.saturating_sub(run.made);
    let slots_now = u64::from(a.slots);
    if backlog > 4 * slots_now {
        let skip = backlog - 4 * slots_now;
        for _ in 0..skip {
            run.drop_packet(u64::from(a.packet_scans));
            run.scan += u64::from(a.packet_scans);
        }
        run.made += skip;
        regs.dropped_packets.fetch_add(skip, Ordering::Relaxed);
    }
    let scans = u64::from(a.packet_scans);
    let slots = u64::from(a.slots);
    let ch = usize::from(a.channels);
    while run.made < due {
        let written = regs.written.load(Ordering::Relaxed);
        let consumed = regs.consumed.load(Ordering::Acquire);
        if written - consumed < slots {
            let slot = (written % slots) as usize;
            let offset = fifo::HEADER_BYTES + slot * packet_bytes;
            // SAFETY: slot `written % slots` is free (the controller has
            // consumed it) and lies inside the mapped region (checked at
            // start); nothing else writes it until `written` moves on.
            let out = unsafe { std::slice::from_raw_parts_mut(base.add(offset), packet_bytes) };
            match format {
                Format::I16 => {
                    let v = &mut values.0;
                    waveform::fill_i16(v, ch, run.scan);
                    for (o, x) in out.chunks_exact_mut(2).zip(v.iter()) {
                        o.copy_from_slice(&x.to_le_bytes());
                    }
                }
                Format::I32 => {
                    let v = &mut values.1;
                    waveform::fill_i32(v, ch, run.scan);
                    for (o, x) in out.chunks_exact_mut(4).zip(v.iter()) {
                        o.copy_from_slice(&x.to_le_bytes());
                    }
                }
            }
            regs.first_scan[slot].store(run.scan, Ordering::Relaxed);
            regs.written.store(written + 1, Ordering::Release);
            run.written += 1;
        } else {
            run.drop_packet(scans);
            regs.dropped_packets.fetch_add(1, Ordering::Relaxed);
        }
        run.scan += scans;
        run.made += 1;
        regs.produced_scans.store(run.scan, Ordering::Relaxed);
    }
}
