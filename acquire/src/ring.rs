//! A mapped ring: where its control page and data area live, and the
//! cursors of the protocol ([`hsdaq_abi::cursor`]) over them.

use std::sync::atomic::AtomicU64;

use hsdaq_abi::cursor::{ConsumerCursor, ProducerCursor};
use hsdaq_abi::layout::{BlockHeader, ControlPage, StreamLayout, BLOCK_MAGIC};
use hsdaq_abi::Format;

/// A mapped ring: the control page and the data area, wherever they live
/// (simulator memory, a kernel mapping).
///
/// A view holds its mapping alive (`owner`): a `RingMap` that outlives the
/// device it came from still points at mapped memory, so `let r =
/// dev.ring(); drop(dev); r.control()` reads a ring nobody writes any more,
/// never an unmapped page. Cloning is one reference count; it is done at
/// set-up, never per block.
#[derive(Clone)]
pub struct RingMap {
    control: *const ControlPage,
    data: *mut u8,
    layout: StreamLayout,
    _owner: Owner,
}

/// What keeps a ring's memory mapped: the mapping itself, shared.
pub type Owner = std::sync::Arc<dyn Send + Sync>;

// SAFETY: a RingMap is two raw pointers into a mapping that its `owner`
// keeps alive as long as any view exists. All shared mutable state in
// it is accessed through atomics or, for block bytes, under the SPSC
// protocol, which gives each block slot one owner at a time.
unsafe impl Send for RingMap {}
// SAFETY: as above: `&RingMap` only hands out atomics and protocol-guarded slots.
unsafe impl Sync for RingMap {}

/// Why a mapping cannot be used as an hsdaq ring.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// Magic mismatch.
    #[error("not an hsdaq ring (magic {0:#010x})")]
    Magic(u32),
    /// Incompatible ABI.
    #[error(
        "incompatible ring ABI {major}.{minor}: this acquire speaks {}.x",
        hsdaq_abi::layout::ABI_MAJOR
    )]
    Abi {
        /// Producer's major.
        major: u16,
        /// Producer's minor.
        minor: u16,
    },
    /// A layout field is out of range.
    #[error("invalid ring layout: {0}")]
    Layout(&'static str),
}

impl RingMap {
    /// Checks the control page and builds the view.
    ///
    /// # Safety
    /// `control` must point to a mapped, 4096-byte control page and `data`
    /// to `data_size` mapped bytes (as announced by that page), both valid
    /// for as long as `owner` lives (the view keeps it).
    pub unsafe fn new(
        control: *const ControlPage,
        data: *mut u8,
        owner: Owner,
    ) -> Result<Self, MapError> {
        // SAFETY: the caller guarantees `control` is valid.
        let c = unsafe { &*control };
        if c.magic != hsdaq_abi::layout::CONTROL_MAGIC {
            return Err(MapError::Magic(c.magic));
        }
        if c.abi_major != hsdaq_abi::layout::ABI_MAJOR {
            return Err(MapError::Abi {
                major: c.abi_major,
                minor: c.abi_minor,
            });
        }
        let format = Format::from_raw(c.format).ok_or(MapError::Layout("format"))?;
        let layout = StreamLayout {
            channels: c.channels,
            format,
            data_size: c.data_size,
            block_bytes: c.block_bytes,
            rate_hz: c.rate_hz,
        };
        layout.validate().map_err(|e| MapError::Layout(e.field()))?;
        if c.block_scans != layout.block_scans() {
            return Err(MapError::Layout("block-scans"));
        }
        Ok(Self {
            control,
            data,
            layout,
            _owner: owner,
        })
    }

    /// The control page.
    pub fn control(&self) -> &ControlPage {
        // SAFETY: valid for the life of the mapping (see `new`).
        unsafe { &*self.control }
    }

    /// The stream layout announced by the control page.
    pub fn layout(&self) -> &StreamLayout {
        &self.layout
    }

    /// A producer cursor (simulator and tests only: the kernel has its own).
    pub fn producer(&self) -> ProducerCursor<'_, AtomicU64> {
        let c = self.control();
        ProducerCursor::new(&c.head, &c.tail, self.layout.data_size)
    }

    /// A consumer cursor.
    pub fn consumer(&self) -> ConsumerCursor<'_, AtomicU64> {
        let c = self.control();
        ConsumerCursor::new(&c.head, &c.tail, self.layout.data_size)
    }

    /// The block slot at `pos`, for reading.
    ///
    /// # Safety
    /// `pos` must come from [`ConsumerCursor::peek`] and the slot must not be
    /// released before the returned slice is dropped.
    pub unsafe fn slot(&self, pos: u64) -> &[u8] {
        debug_assert!(pos + self.layout.block_bytes as u64 <= self.layout.data_size);
        // SAFETY: pos is block-aligned inside the data area and the protocol
        // keeps the producer off this slot until it is released.
        unsafe {
            std::slice::from_raw_parts(
                self.data.add(pos as usize),
                self.layout.block_bytes as usize,
            )
        }
    }

    /// The block slot at `pos`, for writing.
    ///
    /// # Safety
    /// `pos` must come from [`ProducerCursor::reserve`], the mapping must be
    /// writable, and the slot must not be published before the slice is dropped.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slot_mut(&self, pos: u64) -> &mut [u8] {
        debug_assert!(pos + self.layout.block_bytes as u64 <= self.layout.data_size);
        // SAFETY: reserved slots belong to the producer alone until published.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.data.add(pos as usize),
                self.layout.block_bytes as usize,
            )
        }
    }
}

/// A ring in this process's own memory (the simulator's, a feed's): an
/// anonymous mapping whose control page is written here, once.
pub struct LocalRing {
    map: std::sync::Arc<memmap2::MmapMut>,
}

impl LocalRing {
    /// Allocates a ring of `layout` and writes its control page; `what`
    /// names the producer in errors, `source` is a `SOURCE_*` constant.
    pub fn new(
        layout: &StreamLayout,
        source: u16,
        name: &[u8],
        what: &str,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        use hsdaq_abi::layout::*;
        if let Err(e) = layout.validate() {
            anyhow::bail!("invalid {what} setting {}: {:?}", e.field(), e);
        }
        let mut map = memmap2::MmapMut::map_anon(CONTROL_BYTES + layout.data_size as usize)
            .with_context(|| format!("cannot allocate the {what} ring"))?;
        let control = map.as_mut_ptr().cast::<ControlPage>();
        // SAFETY: the mapping is page-aligned, CONTROL_BYTES + data_size
        // long, zero-filled and exclusively borrowed; all-zero is a valid
        // ControlPage (integers, atomics and byte arrays).
        let c = unsafe { &mut *control };
        c.magic = CONTROL_MAGIC;
        c.abi_major = ABI_MAJOR;
        c.abi_minor = ABI_MINOR;
        c.control_bytes = CONTROL_BYTES as u32;
        c.block_header_bytes = BLOCK_HEADER_BYTES as u32;
        c.data_offset = CONTROL_BYTES as u64;
        c.data_size = layout.data_size;
        c.block_bytes = layout.block_bytes;
        c.block_scans = layout.block_scans();
        c.channels = layout.channels;
        c.format = layout.format as u16;
        c.source = source;
        c.rate_hz = layout.rate_hz;
        fill_name(&mut c.name, name);
        Ok(Self {
            map: std::sync::Arc::new(map),
        })
    }

    /// The ring's view; it keeps the memory mapped as long as it lives.
    pub fn view(&self) -> RingMap {
        let base = self.map.as_ptr() as *mut u8;
        let owner: Owner = self.map.clone();
        // SAFETY: the mapping holds the control page written in `new` and
        // `data_size` bytes after it, and `owner` keeps it mapped. Writes
        // go through the view's atomics and protocol-owned slots only.
        unsafe {
            RingMap::new(
                base.cast(),
                base.add(hsdaq_abi::layout::CONTROL_BYTES),
                owner,
            )
        }
        .expect("LocalRing::new writes a valid control page")
    }
}

/// A block header decoded from a slot and checked against the stream.
#[inline]
pub fn read_header(slot: &[u8], layout: &StreamLayout) -> Result<BlockHeader, BadBlock> {
    // SAFETY: the slot is at least BLOCK_HEADER_BYTES long (validated layout)
    // and BlockHeader is plain old data; read_unaligned has no alignment needs.
    let h: BlockHeader = unsafe { std::ptr::read_unaligned(slot.as_ptr().cast()) };
    if h.magic != BLOCK_MAGIC {
        return Err(BadBlock::Magic(h.magic));
    }
    if h.scans == 0 || h.scans > layout.block_scans() {
        return Err(BadBlock::Scans(h.scans));
    }
    if h.channels != layout.channels || h.format != layout.format as u16 {
        return Err(BadBlock::Shape);
    }
    Ok(h)
}

/// Writes `header` at the start of a slot.
#[inline]
pub fn write_header(slot: &mut [u8], header: &BlockHeader) {
    assert!(slot.len() >= std::mem::size_of::<BlockHeader>());
    // SAFETY: bounds checked above; BlockHeader is plain old data.
    unsafe { std::ptr::write_unaligned(slot.as_mut_ptr().cast(), *header) }
}

/// A block slot whose header does not describe this stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadBlock {
    /// Wrong magic.
    #[error("bad block magic {0:#010x}")]
    Magic(u32),
    /// Scan count out of range.
    #[error("bad block scan count {0}")]
    Scans(u32),
    /// Channels or format differ from the control page.
    #[error("block shape differs from the stream's")]
    Shape,
}

#[cfg(test)]
mod abi_tests {
    use super::*;
    use hsdaq_abi::layout::{CONTROL_BYTES, CONTROL_MAGIC};

    /// A ring written by an ABI 1 producer is refused, naming both versions.
    #[test]
    fn an_older_abi_is_refused_by_name() {
        let mut page = memmap2::MmapMut::map_anon(CONTROL_BYTES).unwrap();
        let c = page.as_mut_ptr().cast::<ControlPage>();
        // SAFETY: `page` is CONTROL_BYTES long, page-aligned and zeroed;
        // all-zero is a valid ControlPage, and we only write plain fields.
        unsafe {
            (*c).magic = CONTROL_MAGIC;
            (*c).abi_major = 1;
        }
        let mut data = [0u8; 64];
        // SAFETY: `RingMap::new` refuses before it reads the data area, so
        // no view outlives `page` or `data`.
        let err = unsafe { RingMap::new(c, data.as_mut_ptr(), std::sync::Arc::new(())) }
            .err()
            .expect("refused");
        assert!(matches!(err, MapError::Abi { major: 1, minor: 0 }));
        assert_eq!(
            err.to_string(),
            format!(
                "incompatible ring ABI 1.0: this acquire speaks {}.x",
                hsdaq_abi::layout::ABI_MAJOR
            )
        );
    }
}
