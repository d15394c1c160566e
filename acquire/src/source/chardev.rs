//! The kernel driver's character device `/dev/hsdaqN`: the control page and
//! the data area mapped with memmap2, controlled by the `abi/` ioctls.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hsdaq_abi::ioctl::*;
use hsdaq_abi::layout::{name_bytes, ABI_MAJOR, CONTROL_BYTES};
use memmap2::{Mmap, MmapMut, MmapOptions};

use crate::ring::RingMap;
use crate::source::{source_name, Device, DeviceDescription};

/// An open `/dev/hsdaqN`.
pub struct CharDevice {
    path: PathBuf,
    file: File,
    info: DeviceInfo,
    control: Arc<MmapMut>,
    data: Arc<Mmap>,
    /// The last counters IOC_STATS returned: what `stats` reports once the
    /// device is gone (its mapping is revoked at unbind, its ioctls fail).
    last_stats: std::sync::Mutex<Stats>,
}

/// Issues `request` with `arg`, turning -1 into the errno.
fn ioctl<T>(file: &File, request: u32, arg: *mut T) -> std::io::Result<()> {
    // SAFETY: `request` is one of the abi ioctls whose encoded size is
    // `size_of::<T>()`, and `arg` points to a valid `T` (or is null for
    // argument-less requests), so the kernel reads and writes inside it.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request as _, arg) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Refuses a driver of another ABI major version, or a layout this build
/// cannot map, naming both versions.
fn check_abi(path: &Path, info: &DeviceInfo) -> Result<()> {
    if info.abi_major != ABI_MAJOR {
        bail!(
            "{}: the driver speaks ring ABI {}.{}, this acquire speaks {}.x; \
             load the hsdaq module built from the same release as acquire",
            path.display(),
            info.abi_major,
            info.abi_minor,
            ABI_MAJOR
        );
    }
    let control = info.control_bytes as u64;
    if (control as usize) < CONTROL_BYTES || info.data_offset != control {
        bail!(
            "{}: the driver announces a {} B control area with data at offset {}; \
             ABI {ABI_MAJOR} needs at least {CONTROL_BYTES} B with the data right after it",
            path.display(),
            control,
            info.data_offset
        );
    }
    Ok(())
}

impl CharDevice {
    /// Opens the node, checks the ABI and maps the ring.
    pub fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| {
                format!(
                    "cannot open {} (is the hsdaq module loaded?)",
                    path.display()
                )
            })?;
        // SAFETY: DeviceInfo is plain old data; all-zero is valid.
        let mut info: DeviceInfo = unsafe { std::mem::zeroed() };
        if let Err(e) = ioctl(&file, IOC_INFO, &mut info) {
            if e.raw_os_error() == Some(libc::ENOTTY) {
                // ABI 1 drivers used the ioctl type 0xB5 (rpmsg's): ask in
                // that dialect only to name the version we refuse.
                if ioctl(&file, IOC_INFO_ABI1, &mut info).is_ok() {
                    check_abi(path, &info)?;
                }
                bail!(
                    "{}: not an hsdaq device (INFO ioctl unknown)",
                    path.display()
                );
            }
            return Err(e).with_context(|| format!("{}: HSDAQ_IOC_INFO failed", path.display()));
        }
        check_abi(path, &info)?;
        // SAFETY: a shared mapping of the driver's control page. The driver
        // keeps the pages alive while mapped; concurrent changes by the
        // kernel are only read through atomics.
        let control = unsafe {
            MmapOptions::new()
                .len(info.control_bytes as usize)
                .map_mut(&file)
        }
        .with_context(|| format!("{}: cannot map the control page", path.display()))?;
        // SAFETY: as above, read-only; the data area is only read under the
        // ring protocol (after an Acquire load of head).
        let data = unsafe {
            MmapOptions::new()
                .offset(info.data_offset)
                .len(info.data_size as usize)
                .map(&file)
        }
        .with_context(|| {
            format!(
                "{}: cannot map the {} B data area",
                path.display(),
                info.data_size
            )
        })?;
        let dev = Self {
            path: path.to_path_buf(),
            file,
            info,
            control: Arc::new(control),
            data: Arc::new(data),
            last_stats: Default::default(),
        };
        dev.ring_checked()?;
        Ok(dev)
    }

    fn ring_checked(&self) -> Result<RingMap> {
        let owner: crate::ring::Owner = Arc::new((self.control.clone(), self.data.clone()));
        // SAFETY: both mappings are sized as the driver announced and kept
        // mapped by `owner` as long as the view lives (unmapping is their
        // drop); RingMap::new re-checks the control page.
        unsafe {
            RingMap::new(
                self.control.as_ptr().cast(),
                self.data.as_ptr() as *mut u8,
                owner,
            )
        }
        .with_context(|| format!("{}: bad control page", self.path.display()))
    }

    /// The driver's DeviceInfo.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Counters through `IOC_STATS` (a consistent snapshot).
    pub fn ioctl_stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        ioctl(&self.file, IOC_STATS, &mut s)?;
        Ok(s)
    }
}

impl Device for CharDevice {
    fn ring(&self) -> RingMap {
        self.ring_checked().expect("checked at open")
    }

    fn start(&mut self) -> Result<()> {
        ioctl::<()>(&self.file, IOC_START, std::ptr::null_mut()).context("HSDAQ_IOC_START failed")
    }

    fn stop(&mut self) -> Result<()> {
        match ioctl::<()>(&self.file, IOC_STOP, std::ptr::null_mut()) {
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            r => r.context("HSDAQ_IOC_STOP failed"),
        }
    }

    fn wait(&self, timeout: Duration) -> Result<()> {
        let mut w = WaitArgs {
            timeout_ns: timeout.as_nanos() as u64,
            ..Default::default()
        };
        match ioctl(&self.file, IOC_WAIT, &mut w) {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIMEDOUT | libc::EINTR | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                bail!(
                    "{}: the device went away (driver unbound or module removed)",
                    self.path.display()
                )
            }
            Err(e) => Err(e).context("HSDAQ_IOC_WAIT failed"),
        }
    }

    /// Counters through IOC_STATS (one consistent snapshot, and no access to
    /// a mapping that unbind may have revoked); the last snapshot once the
    /// device is gone.
    fn stats(&self) -> Stats {
        let mut last = self.last_stats.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(s) = self.ioctl_stats() {
            *last = s;
        }
        *last
    }

    fn inject(&self, mut fault: FaultArgs) -> Result<()> {
        ioctl(&self.file, IOC_FAULT, &mut fault).context("HSDAQ_IOC_FAULT failed")
    }

    fn signal(&self) -> &'static str {
        use hsdaq_format::manifest::{SIGNAL_EXTERNAL, SIGNAL_REFERENCE};
        let i = &self.info;
        // ABI 2.0 drivers had only the virtual sensor's reference signal.
        let reference = i.flags & hsdaq_abi::ioctl::INFO_REFERENCE_SIGNAL != 0
            || (i.abi_minor == 0 && i.source == hsdaq_abi::layout::SOURCE_VIRTUAL);
        if reference {
            SIGNAL_REFERENCE
        } else {
            SIGNAL_EXTERNAL
        }
    }

    fn timestamps(&self) -> String {
        use hsdaq_format::manifest::{TIMESTAMPS_MEASURED, TIMESTAMPS_NOMINAL};
        if self.info.source == hsdaq_abi::layout::SOURCE_HARDWARE {
            format!("{TIMESTAMPS_MEASURED}: each block's DMA completion less its duration at the nominal rate, never before the previous block's last scan")
        } else {
            format!("{TIMESTAMPS_NOMINAL}: stream start + seq x period")
        }
    }

    fn describe(&self) -> DeviceDescription {
        let i = &self.info;
        let mut properties = std::collections::BTreeMap::new();
        properties.insert("rate-hz".into(), i.rate_hz.into());
        properties.insert("channels".into(), i.channels.into());
        let fmt = hsdaq_abi::Format::from_raw(i.format)
            .map(|f| f.name())
            .unwrap_or("unknown");
        properties.insert("format".into(), fmt.into());
        properties.insert("block-bytes".into(), i.block_bytes.into());
        properties.insert("buffer-bytes".into(), i.data_size.into());
        let from =
            |bit, yes: &'static str, no: &'static str| if i.flags & bit != 0 { yes } else { no };
        properties.insert(
            "settings-from".into(),
            from(INFO_FIRMWARE_NODE, "firmware-node", "module-parameters").into(),
        );
        // Whether this is the board's device or the driver's synthetic
        // stand-in (created only when no firmware node exists at all).
        properties.insert(
            "kind".into(),
            from(
                INFO_FIRMWARE_NODE,
                "firmware-device",
                "virtual-fallback (no firmware node: a synthetic sensor)",
            )
            .into(),
        );
        properties.insert(
            "buffer-from".into(),
            from(INFO_RESERVED_MEMORY, "reserved-memory", "dma-coherent").into(),
        );
        DeviceDescription {
            path: self.path.display().to_string(),
            name: String::from_utf8_lossy(name_bytes(&i.name)).into_owned(),
            compatible: String::from_utf8_lossy(name_bytes(&i.compatible)).into_owned(),
            source: source_name(i.source).into(),
            properties,
            module_version: std::fs::read_to_string("/sys/module/hsdaq/version")
                .ok()
                .map(|s| s.trim().to_string()),
        }
    }
}

impl Drop for CharDevice {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
