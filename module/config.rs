// SPDX-License-Identifier: GPL-2.0

//! Sensor settings, read from a firmware node (device tree or ACPI `_DSD`) or
//! from module parameters, and validated by the same ABI rules user space
//! uses. Every rejected setting is named in a `dev_err`, and probe fails.

use kernel::{
    device::{property::FwNode, Device},
    prelude::*,
    str::CString,
};

use crate::producer::Position;

use crate::abi::{
    format::Format,
    layout::{fill_name, LayoutError, StreamLayout},
};

/// What the virtual sensor writes into each block's payload.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waveform {
    /// The `abi/` reference waveform, which `acquire verify` recomputes.
    Reference,
    /// Payload left as zeros: the producer costs only the headers, so a
    /// benchmark measures the consumer path alone.
    Zeros,
}

/// Everything a sensor needs to run.
#[derive(Clone, Copy)]
pub(crate) struct Config {
    pub(crate) layout: StreamLayout,
    pub(crate) waveform: Waveform,
    /// Drop every Nth block as a forced overrun (0: never).
    pub(crate) fault_drop_period: u32,
    /// Whether the settings came from a firmware node.
    pub(crate) from_firmware: bool,
    /// The node's `label`, NUL-padded (empty: use the device node's name).
    pub(crate) label: [u8; 64],
    /// Whether the node names a reserved-memory region for the ring.
    pub(crate) memory_region: bool,
    /// `hsdaq,dma-adc`: a DMA engine writes the blocks; how their position
    /// in the stream is known (None: the virtual sensor).
    pub(crate) dma: Option<Position>,
    /// The samples are the reference waveform (user space may recompute
    /// them): the virtual sensor's reference mode, or a DMA source whose
    /// node says `hsdaq,test-signal = "reference-waveform"`.
    pub(crate) reference_signal: bool,
}

/// Defaults of optional properties (kept equal to the binding's `default:`s).
const DEFAULT_BLOCK_BYTES: u32 = 4096;
const DEFAULT_BUFFER_BYTES: u32 = 1 << 20;

impl Config {
    /// Reads and validates the `hsdaq,*` properties of `node`.
    pub(crate) fn from_fwnode(dev: &Device, node: &FwNode, dma: bool) -> Result<Self> {
        let rate_hz = read_u32(dev, node, c"hsdaq,rate-hz", None)?;
        let channels = read_u32(dev, node, c"hsdaq,channels", None)?;
        let format = match read_string(dev, node, c"hsdaq,format")? {
            None => Format::I16,
            Some(s) => Format::from_name(s.to_bytes()).ok_or_else(|| {
                dev_err!(
                    dev,
                    "property 'hsdaq,format' = {:?}: expected \"s16\" or \"s32\"\n",
                    s
                );
                EINVAL
            })?,
        };
        let waveform = read_choice(
            dev,
            node,
            c"hsdaq,waveform",
            &[
                ("reference", Waveform::Reference),
                ("zeros", Waveform::Zeros),
            ],
        )?
        .unwrap_or(Waveform::Reference);
        let block_bytes = read_u32(dev, node, c"hsdaq,block-bytes", Some(DEFAULT_BLOCK_BYTES))?;
        let buffer_bytes = read_u32(dev, node, c"hsdaq,buffer-bytes", Some(DEFAULT_BUFFER_BYTES))?;
        let fault_drop_period = read_u32(dev, node, c"hsdaq,fault-drop-period", Some(0))?;
        let mut label = [0u8; 64];
        if let Some(s) = read_string(dev, node, c"label")? {
            fill_name(&mut label, s.to_bytes());
        }
        let memory_region = node.property_present(c"memory-region");
        let dma = match dma {
            false => None,
            true => Some(dma_position(dev, node, memory_region)?),
        };
        let reference_signal = match dma {
            None => waveform == Waveform::Reference,
            Some(_) => read_choice(
                dev,
                node,
                c"hsdaq,test-signal",
                &[("reference-waveform", true)],
            )?
            .unwrap_or(false),
        };
        let layout = Self::checked(
            dev,
            true,
            rate_hz,
            channels,
            format,
            block_bytes,
            buffer_bytes,
        )?;
        Ok(Config {
            layout,
            waveform,
            fault_drop_period,
            from_firmware: true,
            label,
            memory_region,
            dma,
            reference_signal,
        })
    }

    /// The settings of a virtual device, from module parameters.
    pub(crate) fn from_params(dev: &Device) -> Result<Self> {
        use crate::module_parameters as p;
        let format = match p::sample_bits.value() {
            16 => Format::I16,
            32 => Format::I32,
            bits => {
                dev_err!(
                    dev,
                    "parameter 'sample_bits' = {}: expected 16 or 32\n",
                    bits
                );
                return Err(EINVAL);
            }
        };
        let waveform = match p::waveform.value() {
            0 => Waveform::Reference,
            1 => Waveform::Zeros,
            w => {
                dev_err!(dev, "parameter 'waveform' = {}: expected 0 or 1\n", w);
                return Err(EINVAL);
            }
        };
        let layout = Self::checked(
            dev,
            false,
            p::rate_hz.value(),
            p::channels.value(),
            format,
            p::block_bytes.value(),
            p::buffer_bytes.value(),
        )?;
        Ok(Config {
            layout,
            waveform,
            fault_drop_period: p::fault_drop_period.value(),
            from_firmware: false,
            label: [0; 64],
            memory_region: false,
            dma: None,
            reference_signal: waveform == Waveform::Reference,
        })
    }

    /// Applies the ABI's layout rules, naming the property (firmware) or the
    /// module parameter the user wrote when one is broken.
    fn checked(
        dev: &Device,
        firmware: bool,
        rate_hz: u32,
        channels: u32,
        format: Format,
        block_bytes: u32,
        buffer_bytes: u32,
    ) -> Result<StreamLayout> {
        layout_of(rate_hz, channels, format, block_bytes, buffer_bytes).map_err(
            |(e, value, rule)| {
                let (kind, name) = setting_name(firmware, e);
                dev_err!(dev, "{} '{}' = {}: {}\n", kind, name, value, rule);
                EINVAL
            },
        )
    }
}

/// How a DMA stream's blocks are placed: `hsdaq,scan-counter =
/// "dma-metadata"` says the engine hands over the stream's scan counter with
/// every transfer (exact loss); without it gaps are inferred from time.
/// The data area is allocated for the DMA controller, so a `memory-region`
/// belongs on the controller's node, not here.
fn dma_position(dev: &Device, node: &FwNode, memory_region: bool) -> Result<Position> {
    if memory_region {
        dev_err!(
            dev,
            "property 'memory-region': not used by hsdaq,dma-adc (its buffer is the DMA controller's: put the region on the controller's node)\n"
        );
        return Err(EINVAL);
    }
    Ok(read_choice(
        dev,
        node,
        c"hsdaq,scan-counter",
        &[("dma-metadata", Position::Counted)],
    )?
    .unwrap_or(Position::Inferred))
}

/// The layout the settings describe, or the broken rule with the value the
/// user wrote and what the rule expects.
fn layout_of(
    rate_hz: u32,
    channels: u32,
    format: Format,
    block_bytes: u32,
    buffer_bytes: u32,
) -> core::result::Result<StreamLayout, (LayoutError, u32, &'static str)> {
    let layout = StreamLayout {
        // Saturate, never truncate: 65 536 channels must not become 0.
        channels: channels.min(u32::from(u16::MAX)) as u16,
        format,
        data_size: u64::from(buffer_bytes),
        block_bytes,
        rate_hz: u64::from(rate_hz),
    };
    let Err(e) = layout.validate() else {
        return Ok(layout);
    };
    Err(match e {
        LayoutError::Rate => (e, rate_hz, "expected 1..=100000000"),
        LayoutError::Channels => (e, channels, "expected 1..=64"),
        LayoutError::DataSize => (e, buffer_bytes, "expected a power of two, 8 KiB..1 GiB"),
        LayoutError::BlockBytes => (e, block_bytes, "expected a power of two, 256 B..buffer/2"),
        LayoutError::BlockTooSmall => (
            e,
            block_bytes,
            "a block must hold a 64-byte header and one scan",
        ),
    })
}

/// The property or module parameter behind a layout rule.
pub(crate) fn setting_name(firmware: bool, e: LayoutError) -> (&'static str, &'static str) {
    match (firmware, e) {
        (true, LayoutError::Rate) => ("property", "hsdaq,rate-hz"),
        (true, LayoutError::Channels) => ("property", "hsdaq,channels"),
        (true, LayoutError::DataSize) => ("property", "hsdaq,buffer-bytes"),
        (true, _) => ("property", "hsdaq,block-bytes"),
        (false, LayoutError::Rate) => ("parameter", "rate_hz"),
        (false, LayoutError::Channels) => ("parameter", "channels"),
        (false, LayoutError::DataSize) => ("parameter", "buffer_bytes"),
        (false, _) => ("parameter", "block_bytes"),
    }
}

/// Reads a single-cell u32 property. A missing property takes `default` or,
/// when required (`None`), fails; a present one of the wrong type fails.
fn read_u32(dev: &Device, node: &FwNode, name: &CStr, default: Option<u32>) -> Result<u32> {
    if !node.property_present(name) {
        return default.ok_or_else(|| {
            dev_err!(dev, "required property '{}' is missing\n", name);
            EINVAL
        });
    }
    // Device-tree properties are untyped bytes: a 4+ byte string would read
    // as a number, so insist on exactly one 32-bit cell.
    if node.property_count_elem::<u32>(name).ok() != Some(1) {
        dev_err!(dev, "property '{}' must be a single u32 value\n", name);
        return Err(EINVAL);
    }
    node.property_read::<u32>(name).optional().ok_or_else(|| {
        dev_err!(dev, "property '{}' must be a single u32 value\n", name);
        EINVAL
    })
}

/// Reads an optional string property; present but not a string fails.
/// A string property that must be one of `choices` (None when absent); any
/// other value is a `dev_err` listing them, e.g. `property 'hsdaq,waveform'
/// = "sine": expected "reference" or "zeros"`.
fn read_choice<T: Copy>(
    dev: &Device,
    node: &FwNode,
    name: &CStr,
    choices: &[(&str, T)],
) -> Result<Option<T>> {
    let Some(s) = read_string(dev, node, name)? else {
        return Ok(None);
    };
    if let Some((_, v)) = choices.iter().find(|(c, _)| c.as_bytes() == s.to_bytes()) {
        return Ok(Some(*v));
    }
    match choices {
        [(a, _)] => dev_err!(dev, "property '{}' = {:?}: expected \"{}\"\n", name, s, a),
        [(a, _), (b, _)] => dev_err!(
            dev,
            "property '{}' = {:?}: expected \"{}\" or \"{}\"\n",
            name,
            s,
            a,
            b
        ),
        _ => dev_err!(
            dev,
            "property '{}' = {:?}: not an accepted value\n",
            name,
            s
        ),
    }
    Err(EINVAL)
}

fn read_string(dev: &Device, node: &FwNode, name: &CStr) -> Result<Option<CString>> {
    if !node.property_present(name) {
        return Ok(None);
    }
    node.property_read::<CString>(name)
        .optional()
        .map(Some)
        .ok_or_else(|| {
            dev_err!(dev, "property '{}' must be a string\n", name);
            EINVAL
        })
}

#[cfg(CONFIG_KUNIT)]
#[kernel::macros::kunit_tests(hsdaq_config)]
mod tests {
    use super::*;

    fn rule(rate: u32, ch: u32, fmt: Format, block: u32, buffer: u32) -> Option<LayoutError> {
        layout_of(rate, ch, fmt, block, buffer)
            .err()
            .map(|(e, _, _)| e)
    }

    #[test]
    fn good_settings_pass() {
        assert!(rule(100_000, 4, Format::I16, 4096, 1 << 20).is_none());
        assert!(rule(100_000_000, 64, Format::I32, 1 << 16, 1 << 30).is_none());
    }

    #[test]
    fn each_rule_names_its_setting() {
        assert_eq!(
            rule(0, 4, Format::I16, 4096, 1 << 20),
            Some(LayoutError::Rate)
        );
        assert_eq!(
            rule(100_000_001, 4, Format::I16, 4096, 1 << 20),
            Some(LayoutError::Rate)
        );
        assert_eq!(
            rule(1000, 0, Format::I16, 4096, 1 << 20),
            Some(LayoutError::Channels)
        );
        // 65 536 and more saturate to 65 535 (rejected), never wrap to 0..64.
        assert_eq!(
            rule(1000, 65_536 + 4, Format::I16, 4096, 1 << 20),
            Some(LayoutError::Channels)
        );
        assert_eq!(
            rule(1000, 4, Format::I16, 4096, 3 << 20),
            Some(LayoutError::DataSize)
        );
        assert_eq!(
            rule(1000, 4, Format::I16, 3000, 1 << 20),
            Some(LayoutError::BlockBytes)
        );
        assert_eq!(
            rule(1000, 4, Format::I16, 1 << 20, 1 << 20),
            Some(LayoutError::BlockBytes)
        );
        assert_eq!(
            rule(1000, 64, Format::I32, 256, 1 << 20),
            Some(LayoutError::BlockTooSmall)
        );
        assert_eq!(
            setting_name(true, LayoutError::Rate),
            ("property", "hsdaq,rate-hz")
        );
        assert_eq!(
            setting_name(false, LayoutError::BlockTooSmall),
            ("parameter", "block_bytes")
        );
    }
}
