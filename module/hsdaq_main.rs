// SPDX-License-Identifier: GPL-2.0

//! hsdaq: a high-speed sensor acquisition driver.
//!
//! A platform driver that binds through its OF table: device-tree nodes on
//! embedded boards, ACPI `PRP0001` devices (with `_DSD` properties) on x86.
//! When no firmware node binds a device, module init creates virtual sensor
//! devices (module parameter `virtual_devices`) bound through the same probe.
//!
//! Each device streams blocks into one physically contiguous DMA-coherent
//! buffer laid out by the shared ring ABI (`abi/`), which user space maps
//! with `mmap` through the misc device `/dev/hsdaqN`.

use kernel::{driver, platform, prelude::*};

mod abi;
mod chardev;
mod config;
mod device;
mod dma;
mod fallback;
mod glue;
mod producer;
mod reserved;
mod ring;
mod sensor;

module! {
    type: HsdaqModule,
    name: "hsdaq",
    authors: ["hsdaq developers"],
    description: "hsdaq sensor acquisition: contiguous mmap ring, virtual sensor",
    license: "GPL",
    params: {
        virtual_devices: u32 {
            default: 1,
            description: "Virtual sensors created when no firmware node binds a device (0-8)",
        },
        rate_hz: u32 {
            default: 100000,
            description: "Virtual sensor: scans per second",
        },
        channels: u32 {
            default: 4,
            description: "Virtual sensor: channels per scan",
        },
        sample_bits: u32 {
            default: 16,
            description: "Virtual sensor: 16 (s16) or 32 (s32)",
        },
        block_bytes: u32 {
            default: 4096,
            description: "Virtual sensor: block slot size in bytes (power of two)",
        },
        buffer_bytes: u32 {
            default: 1048576,
            description: "Virtual sensor: ring data size in bytes (power of two)",
        },
        waveform: u32 {
            default: 0,
            description: "Virtual sensor: 0 = reference waveform, 1 = zeros (benchmarks)",
        },
        fault_drop_period: u32 {
            default: 0,
            description: "Virtual sensor: drop every Nth block as a forced overrun (0: never)",
        },
        fault_mmap_delay_ms: u32 {
            default: 0,
            description: "Tests only: every mmap sleeps this long (0-10000 ms) after mapping, before the kernel links the VMA",
        },
    },
}

kernel::of_device_table!(
    OF_TABLE,
    <HsdaqDriver as platform::Driver>::IdInfo,
    [
        (
            kernel::of::DeviceId::new(fallback::COMPATIBLE),
            device::Kind::Virtual
        ),
        (
            kernel::of::DeviceId::new(fallback::DMA_COMPATIBLE),
            device::Kind::Dma
        ),
    ]
);

/// The platform driver: one [`device::HsdaqDevice`] per bound device.
struct HsdaqDriver;

impl platform::Driver for HsdaqDriver {
    type IdInfo = device::Kind;
    type Data<'bound> = device::HsdaqDevice;
    const OF_ID_TABLE: Option<kernel::of::IdTable<Self::IdInfo>> = Some(&OF_TABLE);

    fn probe<'bound>(
        pdev: &'bound platform::Device<kernel::device::Core<'_>>,
        info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        device::HsdaqDevice::probe(pdev, info.copied().unwrap_or(device::Kind::Virtual))
    }
}

#[pin_data]
struct HsdaqModule {
    /// Declared first so the virtual devices are removed before the driver.
    virtual_devices: KVec<fallback::VirtualDevice>,
    #[pin]
    driver: driver::Registration<platform::Adapter<HsdaqDriver>>,
}

impl kernel::InPlaceModule for HsdaqModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            driver <- driver::Registration::new(c"hsdaq", module),
            // Decided by whether a firmware node exists, bound or not
            // (its probe may be asynchronous, deferred or failed).
            virtual_devices: fallback::create_if_no_firmware_node(module_parameters::virtual_devices.value())?,
        })
    }
}
