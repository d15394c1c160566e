// SPDX-License-Identifier: GPL-2.0

//! One bound device: its settings, sensor and `/dev/hsdaqN` registration.

use core::sync::atomic::{AtomicU32, Ordering};

use kernel::{
    device::Core,
    dma::{Device as _, DmaMask},
    miscdevice::{MiscDeviceOptions, MiscDeviceRegistration},
    platform,
    prelude::*,
    sync::Arc,
};

use kernel::page::PAGE_SIZE;

use crate::abi::ioctl::{
    DeviceInfo, INFO_FIRMWARE_NODE, INFO_REFERENCE_SIGNAL, INFO_RESERVED_MEMORY,
};
use crate::abi::layout::{fill_name, name_bytes, LayoutError, CONTROL_BYTES, SOURCE_HARDWARE};
use crate::chardev::Consumer;
use crate::config::setting_name;
use crate::config::Config;
use crate::dma::{Channel, RebootHook, Xfers};
use crate::producer::Position;
use crate::reserved::ReservedMem;
use crate::ring::Ring;
use crate::sensor::{DmaParts, Sensor};

/// Device nodes are `/dev/hsdaq0` … `/dev/hsdaq7`; misc devices need a
/// name that outlives their registration, hence a static table.
const NAMES: [&CStr; 8] = [
    c"hsdaq0", c"hsdaq1", c"hsdaq2", c"hsdaq3", c"hsdaq4", c"hsdaq5", c"hsdaq6", c"hsdaq7",
];
static SLOTS: AtomicU32 = AtomicU32::new(0);
/// Devices bound through a firmware node (device tree or ACPI).
pub(crate) static FIRMWARE_BOUND: AtomicU32 = AtomicU32::new(0);

/// Claims the lowest free device number.
fn claim_slot() -> Result<usize> {
    let mut cur = SLOTS.load(Ordering::Relaxed);
    loop {
        let free = (!cur).trailing_zeros() as usize;
        if free >= NAMES.len() {
            return Err(EBUSY);
        }
        match SLOTS.compare_exchange(cur, cur | 1 << free, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return Ok(free),
            Err(now) => cur = now,
        }
    }
}

/// A claimed device number, released on drop.
struct Slot(usize);

impl Drop for Slot {
    fn drop(&mut self) {
        SLOTS.fetch_and(!(1 << self.0), Ordering::AcqRel);
    }
}

/// Counts a firmware-bound device in [`FIRMWARE_BOUND`] while it lives.
struct FirmwareBound;

impl FirmwareBound {
    fn new() -> Self {
        FIRMWARE_BOUND.fetch_add(1, Ordering::Relaxed);
        FirmwareBound
    }
}

impl Drop for FirmwareBound {
    fn drop(&mut self) {
        FIRMWARE_BOUND.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Which source a bound node describes (the OF table's id info).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `hsdaq,virtual-sensor` (and the virtual fallback devices).
    Virtual,
    /// `hsdaq,dma-adc`: a DMA engine named by `dmas` writes the samples.
    Dma,
}

/// Most DMA transfers queued at once: enough to ride out the completion
/// latency of a loaded system, few enough that stopping is quick.
const MAX_QUEUED_TRANSFERS: u64 = 32;

/// Shuts the sensor down when dropped: the first field of [`HsdaqDevice`],
/// so it runs before the device node disappears, while the device is still
/// bound. A field of its own (not a `PinnedDrop` of the whole device) so
/// that teardown never holds a `&mut` to the fields `open` reads meanwhile.
struct Teardown(Arc<Sensor>);

impl Drop for Teardown {
    fn drop(&mut self) {
        // Stop the producer, wake waiters (ENODEV), revoke user mappings
        // and free the buffer. Open files keep only the (now inert) sensor.
        self.0.shutdown();
    }
}

/// Driver data of a bound device. Fields drop in order: teardown, then the
/// char device (deregistration waits for a running `open`), then the rest.
#[pin_data]
pub(crate) struct HsdaqDevice {
    _teardown: Teardown,
    /// DMA sources: stops the engine at reboot/kexec; unregistered before
    /// `sensor` drops.
    _reboot: Option<RebootHook>,
    /// The char device; open files reach `sensor` and `info` through it.
    #[pin]
    pub(crate) misc: MiscDeviceRegistration<Consumer>,
    pub(crate) sensor: Arc<Sensor>,
    /// What `IOC_INFO` answers.
    pub(crate) info: DeviceInfo,
    _slot: Slot,
    _firmware: Option<FirmwareBound>,
}

/// What probe prepares before the device node is registered.
struct Parts {
    sensor: Arc<Sensor>,
    reboot: Option<RebootHook>,
    info: DeviceInfo,
    slot: Slot,
    firmware: Option<FirmwareBound>,
}

impl HsdaqDevice {
    /// The DMA source's ring (allocated for the channel's controller, which
    /// writes it) and transfer table.
    fn dma_source(
        dev: &kernel::device::Device<kernel::device::Bound>,
        chan: Channel,
        position: Position,
        config: &Config,
        info: &DeviceInfo,
    ) -> Result<(Ring, Option<(Channel, DmaParts)>)> {
        let l = config.layout;
        chan.configure(l.format.bytes() as u32).inspect_err(|e| {
            dev_err!(dev, "DMA channel 'rx': slave settings refused: {:?}\n", e)
        })?;
        if position == Position::Counted && !chan.engine_metadata() {
            dev_err!(
                dev,
                "property 'hsdaq,scan-counter' = \"dma-metadata\": the DMA engine hands over no per-transfer metadata\n"
            );
            return Err(EINVAL);
        }
        // SAFETY: the controller's device stays bound while we hold the
        // channel (dmaengine's contract, see `Channel::device`), and the ring
        // is freed (`shutdown`) before the channel is released.
        let dma_dev = unsafe { chan.device().as_bound() };
        let ring = Ring::new(dev, dma_dev, l, info, None)?;
        let xfers = Xfers::new(l.slots().min(MAX_QUEUED_TRANSFERS) as u32)?;
        dev_info!(
            dev,
            "DMA source: channel 'rx' of {}, {} transfers of {} B queued at most, loss {}\n",
            dma_dev.name(),
            xfers.len(),
            ring.payload_dma(0).1,
            match position {
                Position::Counted => "counted (scan counter in DMA metadata)",
                Position::Inferred => "inferred from completion times",
            }
        );
        Ok((ring, Some((chan, DmaParts { xfers, position }))))
    }

    /// Reads the settings, allocates the ring and prepares the sensor, then
    /// registers `/dev/hsdaqN` last, once everything it serves exists.
    pub(crate) fn probe<'a, 'b>(
        pdev: &'a platform::Device<Core<'b>>,
        kind: Kind,
    ) -> impl PinInit<Self, Error> + use<'a, 'b> {
        pin_init::pin_init_scope(move || {
            let Parts {
                sensor,
                reboot,
                info,
                slot,
                firmware,
            } = Self::prepare(pdev, kind)?;
            let name = NAMES[slot.0];
            Ok(try_pin_init!(Self {
                _teardown: Teardown(sensor.clone()),
                _reboot: reboot,
                misc <- MiscDeviceRegistration::register(MiscDeviceOptions { name }),
                sensor,
                info,
                _slot: slot,
                _firmware: firmware,
            }))
        })
    }

    fn prepare(pdev: &platform::Device<Core<'_>>, kind: Kind) -> Result<Parts> {
        let dev = pdev.as_ref();
        let config = match dev.fwnode() {
            Some(node) => Config::from_fwnode(dev, node, kind == Kind::Dma)?,
            None => Config::from_params(dev)?,
        };
        // The channel first: while its controller has not probed this
        // returns EPROBE_DEFER and probe is retried later (the node still
        // exists, so the fallback never stands in for it).
        let chan = match config.dma {
            Some(_) => Some(Channel::request(dev, c"rx")?),
            None => None,
        };
        // SAFETY: probe runs before any DMA allocation of this device, so
        // nothing uses the mask concurrently.
        unsafe { pdev.dma_set_mask_and_coherent(DmaMask::new::<64>()) }?;
        let slot = Slot(claim_slot()?);
        let name = NAMES[slot.0];
        let compatible: &[u8] = match (config.from_firmware, kind) {
            (false, _) => b"",
            (true, Kind::Virtual) => crate::fallback::COMPATIBLE.to_bytes(),
            (true, Kind::Dma) => crate::fallback::DMA_COMPATIBLE.to_bytes(),
        };
        let virtuals = crate::fallback::VIRTUAL_DEVICES.load(Ordering::Relaxed);
        if config.from_firmware && virtuals > 0 {
            dev_warn!(
                dev,
                "bound after {} virtual sensor(s) were created at load (this node appeared later): those devices are synthetic\n",
                virtuals
            );
        }
        let region = match config.memory_region {
            true => Some(ReservedMem::assign(dev)?),
            false => None,
        };
        // The name user space sees: the node's label, else the device node's.
        let label = match name_bytes(&config.label) {
            [] => name.to_bytes(),
            label => label,
        };
        // The control area is one page (16 K and 64 K pages on arm64 too), and
        // the data area must be whole pages to be mapped.
        let control_bytes = CONTROL_BYTES.max(PAGE_SIZE);
        let l = config.layout;
        if l.data_size % PAGE_SIZE as u64 != 0 {
            let (kind, name) = setting_name(config.from_firmware, LayoutError::DataSize);
            dev_err!(
                dev,
                "{} '{}' = {}: not a multiple of the {} B page size\n",
                kind,
                name,
                l.data_size,
                PAGE_SIZE
            );
            return Err(EINVAL);
        }
        let (mut label_field, mut compatible_field) = ([0u8; 64], [0u8; 64]);
        fill_name(&mut label_field, label);
        fill_name(&mut compatible_field, compatible);
        let mut flags = 0;
        if config.from_firmware {
            flags |= INFO_FIRMWARE_NODE;
        }
        if config.memory_region {
            flags |= INFO_RESERVED_MEMORY;
        }
        if config.reference_signal {
            flags |= INFO_REFERENCE_SIGNAL;
        }
        let mut info =
            crate::chardev::info(&l, flags, control_bytes, &label_field, &compatible_field);
        let (ring, source) = match (chan, config.dma) {
            (Some(chan), Some(position)) => {
                info.source = SOURCE_HARDWARE;
                Self::dma_source(dev, chan, position, &config, &info)?
            }
            _ => (Ring::new(dev, dev, l, &info, region)?, None),
        };
        let sensor = Sensor::new(ring, config, source)?;
        let reboot = match config.dma {
            // SAFETY: the hook is a field of the device data declared before
            // `sensor`, so it is unregistered before this reference goes.
            Some(_) => Some(unsafe {
                RebootHook::register(
                    Arc::as_ptr(&sensor).cast(),
                    crate::sensor::quiesce_for_reboot,
                )
            }?),
            None => None,
        };
        dev_dbg!(
            dev,
            "/dev/{}: {} Hz x {} ch {}, {} B blocks, {} B ring{} ({})\n",
            name,
            l.rate_hz,
            l.channels,
            l.format.name(),
            l.block_bytes,
            l.data_size,
            if config.memory_region {
                " in reserved memory"
            } else {
                ""
            },
            if config.from_firmware {
                "firmware node"
            } else {
                "module parameters"
            }
        );
        Ok(Parts {
            sensor,
            reboot,
            info,
            slot,
            firmware: config.from_firmware.then(FirmwareBound::new),
        })
    }
}
