//! Fault injection plans: make losses happen on purpose, at known times, at
//! every stage: the producer (sent to the device), the drain and the writer.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use hsdaq_abi::ioctl::{FaultArgs, FAULT_DROP_BLOCKS, FAULT_JITTER_US, FAULT_STALL_US};

use crate::sink::Checkpoint;
use crate::units::parse_duration;

/// The environment variable that must be `1` for `--fault powercut`.
pub const POWERCUT_ENV: &str = "HSDAQ_POWERCUT";

/// One fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The producer drops this many blocks as if the ring were full.
    Overrun(u64),
    /// The producer stops for this long, then catches up.
    StallProducer(Duration),
    /// The recorder's drain stops reading for this long (real ring overruns).
    StallConsumer(Duration),
    /// The producer's wake-ups jitter by up to this much.
    Jitter(Duration),
    /// The segment writer is held to this many bytes per second, as by a
    /// slow or shared disk (the encoder waits as a blocking write would).
    SlowDisk(u64),
    /// The machine loses power (sysrq `b`: immediate reboot, no sync) when
    /// the writer first reaches this checkpoint: for the power-cut test in a
    /// virtual machine, refused unless `HSDAQ_POWERCUT=1`.
    PowerCut(Checkpoint),
}

/// A fault and when (after the recording starts) to inject it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedFault {
    /// Time after start.
    pub at: Duration,
    /// What happens.
    pub fault: Fault,
}

impl PlannedFault {
    /// Parses `KIND:ARG@TIME`, e.g. `overrun:5@1s`, `stall-consumer:300ms@2s`.
    pub fn parse(s: &str) -> Result<Self> {
        let usage = "expected KIND:ARG@TIME with KIND one of overrun (blocks), stall-producer, stall-consumer, jitter (durations), slow-disk (bytes per second), powercut (write, seal, sync, rename, manifest; needs HSDAQ_POWERCUT=1), e.g. overrun:5@1s, slow-disk:8MiB@0s, powercut:rename@2s";
        let (spec, at) = s
            .split_once('@')
            .with_context(|| format!("invalid --fault {s:?}: {usage}"))?;
        let (kind, arg) = spec
            .split_once(':')
            .with_context(|| format!("invalid --fault {s:?}: {usage}"))?;
        let at = parse_duration(at).with_context(|| format!("invalid time in --fault {s:?}"))?;
        let fault = match kind {
            "overrun" => {
                let n: u64 = arg
                    .parse()
                    .with_context(|| format!("invalid block count in --fault {s:?}"))?;
                if n == 0 {
                    bail!("--fault {s:?}: block count must be above 0");
                }
                Fault::Overrun(n)
            }
            "stall-producer" => Fault::StallProducer(parse_duration(arg)?),
            "stall-consumer" => Fault::StallConsumer(parse_duration(arg)?),
            "jitter" => Fault::Jitter(parse_duration(arg)?),
            "slow-disk" => match crate::units::parse_bytes(arg) {
                Ok(n) if n > 0 => Fault::SlowDisk(n),
                _ => bail!("--fault {s:?}: slow-disk takes bytes per second above 0, e.g. 8MiB"),
            },
            "powercut" => {
                let c = Checkpoint::ALL
                    .into_iter()
                    .find(|c| c.name() == arg)
                    .with_context(|| format!("--fault {s:?}: powercut takes one of write, seal, sync, rename, manifest"))?;
                if std::env::var(POWERCUT_ENV).as_deref() != Ok("1") {
                    bail!("--fault {s:?} reboots this machine at once, without syncing any disk (a power cut for a test VM); set {POWERCUT_ENV}=1 to confirm");
                }
                Fault::PowerCut(c)
            }
            _ => bail!("invalid --fault kind {kind:?}: {usage}"),
        };
        Ok(Self { at, fault })
    }

    /// The device-side ioctl argument, or `None` for consumer-side faults.
    pub fn device_args(&self) -> Option<FaultArgs> {
        let (kind, arg) = match self.fault {
            Fault::Overrun(n) => (FAULT_DROP_BLOCKS, n),
            Fault::StallProducer(d) => (FAULT_STALL_US, d.as_micros() as u64),
            Fault::Jitter(d) => (FAULT_JITTER_US, d.as_micros() as u64),
            Fault::StallConsumer(_) | Fault::SlowDisk(_) | Fault::PowerCut(_) => return None,
        };
        Some(FaultArgs { kind, _pad: 0, arg })
    }
}

/// Cuts the power (sysrq `b`) if `cut` names checkpoint `c` and its time
/// has come; otherwise returns at once.
pub fn power_cut_at(cut: Option<(Checkpoint, std::time::Instant)>, c: Checkpoint) {
    let Some((point, from)) = cut else { return };
    if point != c || std::time::Instant::now() < from {
        return;
    }
    eprintln!(
        "acquire: --fault powercut: cutting the power at {}",
        c.name()
    );
    // Written in one call: the kernel reboots inside this write.
    let r = std::fs::write("/proc/sysrq-trigger", b"b");
    eprintln!("acquire: --fault powercut failed ({r:?}); is /proc/sysrq-trigger writable?");
    std::process::abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let f = PlannedFault::parse("overrun:5@1s").unwrap();
        assert_eq!(f.fault, Fault::Overrun(5));
        assert_eq!(f.at, Duration::from_secs(1));
        assert_eq!(f.device_args().unwrap().kind, FAULT_DROP_BLOCKS);
        let s = PlannedFault::parse("stall-consumer:300ms@2s").unwrap();
        assert!(s.device_args().is_none());
        let d = PlannedFault::parse("slow-disk:8MiB@0s").unwrap();
        assert_eq!(d.fault, Fault::SlowDisk(8 << 20));
        assert!(d.device_args().is_none());
        for bad in [
            "overrun:5",
            "overrun:x@1s",
            "melt:1@1s",
            "overrun:0@1s",
            "jitter:1q@1s",
            "slow-disk:0@1s",
            "slow-disk:fast@1s",
            "powercut:later@1s",
            "powercut:rename@1s", // HSDAQ_POWERCUT is not set in tests
        ] {
            assert!(PlannedFault::parse(bad).is_err(), "{bad}");
        }
    }
}
