//! How an IIO device lays out a scan, and how each value becomes the
//! recorded integer.
//!
//! `scan_elements/in_<ch>_type` reads `[be|le]:[s|u]REAL/STORAGE[XREPEAT]>>SHIFT`
//! (e.g. `le:s12/16>>4`). A value is STORAGE bits in that byte order; the
//! sample is the REAL bits above SHIFT, signed or not. Elements are laid out
//! in scan-index order, each aligned to its own size (STORAGE/8 bytes times
//! REPEAT rounded up to a power of two), the timestamp last, and the scan
//! padded to its largest element (the kernel's `iio_compute_scan_bytes`).
//!
//! Recording rule (no information lost): every channel's value is shifted
//! down, masked to REAL bits and sign-extended (`s`) or zero-extended (`u`);
//! the run is recorded as `i16` when every channel's range fits in 16 bits
//! signed (up to s16 and u15), otherwise as `i32` (up to s32 and u31). A
//! channel that does not fit in `i32` (u32, 64-bit data) is refused by name.

use hsdaq_abi::Format;

/// A parsed `*_type` string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanType {
    /// Big-endian storage.
    pub big_endian: bool,
    /// Two's-complement sample.
    pub signed: bool,
    /// Bits of the sample.
    pub real_bits: u8,
    /// Bits of its storage (8, 16, 32 or 64).
    pub storage_bits: u8,
    /// Values per element (≥ 1).
    pub repeat: u8,
    /// Bits the sample sits above the storage's bit 0.
    pub shift: u8,
}

/// Why a `*_type` string is not one this reader understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    /// No `be:` / `le:` prefix.
    #[error("{0:?}: expected be: or le: first")]
    Endianness(String),
    /// Neither `s` nor `u`.
    #[error("{0:?}: expected s or u after the byte order")]
    Sign(String),
    /// A number is missing or out of range.
    #[error("{0:?}: {1}")]
    Number(String, &'static str),
    /// The sample does not fit its storage.
    #[error("{0:?}: {1} real bits shifted by {2} do not fit {3}-bit storage")]
    Fit(String, u8, u8, u8),
}

fn number(s: &str, whole: &str, what: &'static str) -> Result<u8, TypeError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TypeError::Number(whole.into(), what));
    }
    s.parse().map_err(|_| TypeError::Number(whole.into(), what))
}

impl std::str::FromStr for ScanType {
    type Err = TypeError;

    fn from_str(text: &str) -> Result<Self, TypeError> {
        let whole = text.trim();
        let (order, rest) = whole
            .split_once(':')
            .ok_or_else(|| TypeError::Endianness(whole.into()))?;
        let big_endian = match order {
            "be" => true,
            "le" => false,
            _ => return Err(TypeError::Endianness(whole.into())),
        };
        let signed = match rest.as_bytes().first() {
            Some(b's') => true,
            Some(b'u') => false,
            _ => return Err(TypeError::Sign(whole.into())),
        };
        let rest = &rest[1..];
        let (bits, shift) = match rest.split_once(">>") {
            Some((b, s)) => (b, number(s, whole, "the shift must be a number")?),
            None => (rest, 0),
        };
        let (real, storage) = bits.split_once('/').ok_or(TypeError::Number(
            whole.into(),
            "expected REAL/STORAGE bits",
        ))?;
        let (storage, repeat) = match storage.split_once('X') {
            Some((s, r)) => (s, number(r, whole, "the repeat must be a number")?),
            None => (storage, 1),
        };
        let real_bits = number(real, whole, "real bits must be a number")?;
        let storage_bits = number(storage, whole, "storage bits must be a number")?;
        if !matches!(storage_bits, 8 | 16 | 32 | 64) {
            return Err(TypeError::Number(
                whole.into(),
                "storage must be 8, 16, 32 or 64 bits",
            ));
        }
        if real_bits == 0 || repeat == 0 {
            return Err(TypeError::Number(
                whole.into(),
                "real bits and repeat must be above 0",
            ));
        }
        if real_bits as u32 + shift as u32 > storage_bits as u32 {
            return Err(TypeError::Fit(whole.into(), real_bits, shift, storage_bits));
        }
        Ok(Self {
            big_endian,
            signed,
            real_bits,
            storage_bits,
            repeat,
            shift,
        })
    }
}

impl std::fmt::Display for ScanType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let order = if self.big_endian { "be" } else { "le" };
        let sign = if self.signed { 's' } else { 'u' };
        write!(f, "{order}:{sign}{}/{}", self.real_bits, self.storage_bits)?;
        if self.repeat > 1 {
            write!(f, "X{}", self.repeat)?;
        }
        write!(f, ">>{}", self.shift)
    }
}

impl ScanType {
    /// Bytes one element takes in a scan (and its alignment).
    pub fn element_bytes(&self) -> usize {
        self.storage_bits as usize / 8 * (self.repeat as usize).next_power_of_two()
    }

    /// The narrowest recorded format that holds every value exactly.
    pub fn needs(&self) -> Option<Format> {
        let magnitude_bits = self.real_bits - u8::from(self.signed);
        match magnitude_bits {
            0..=15 => Some(Format::I16),
            16..=31 => Some(Format::I32),
            _ => None,
        }
    }

    /// Decodes value `i` (of `repeat`) of an element starting at `raw`.
    #[inline]
    pub fn decode(&self, raw: &[u8], i: usize) -> i64 {
        let w = self.storage_bits as usize / 8;
        let b = &raw[i * w..i * w + w];
        let word = match (w, self.big_endian) {
            (1, _) => b[0] as u64,
            (2, false) => u16::from_le_bytes([b[0], b[1]]) as u64,
            (2, true) => u16::from_be_bytes([b[0], b[1]]) as u64,
            (4, false) => u32::from_le_bytes(b.try_into().expect("4 bytes")) as u64,
            (4, true) => u32::from_be_bytes(b.try_into().expect("4 bytes")) as u64,
            (_, false) => u64::from_le_bytes(b.try_into().expect("8 bytes")),
            (_, true) => u64::from_be_bytes(b.try_into().expect("8 bytes")),
        };
        let bits = self.real_bits as u32;
        let v = word >> self.shift;
        if bits == 64 {
            return v as i64;
        }
        let v = v & ((1u64 << bits) - 1);
        if self.signed && v >> (bits - 1) != 0 {
            (v | !((1u64 << bits) - 1)) as i64
        } else {
            v as i64
        }
    }
}

/// One element of a scan: a channel (or the timestamp) and where it sits.
#[derive(Clone, Debug, PartialEq)]
pub struct Element {
    /// IIO channel name (`voltage0`, `accel_x`, `timestamp`).
    pub name: String,
    /// `*_index`.
    pub index: u32,
    /// `*_type`.
    pub ty: ScanType,
    /// Byte offset in the scan.
    pub offset: usize,
}

/// The byte layout of one scan of the enabled channels.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanLayout {
    /// Data elements in scan-index order.
    pub channels: Vec<Element>,
    /// The timestamp element, if enabled.
    pub timestamp: Option<Element>,
    /// Bytes per scan, padding included.
    pub scan_bytes: usize,
    /// The recorded format.
    pub format: Format,
}

/// Why enabled channels cannot be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// Nothing but (at most) a timestamp.
    #[error("no data channel is enabled")]
    Empty,
    /// A channel's values do not fit i32.
    #[error("channel {0} ({1}): its values do not fit the recorded formats (i16, i32); record the channels that do with --channels")]
    TooWide(String, String),
    /// The timestamp is not a 64-bit value.
    #[error("the timestamp channel has type {0}, expected a 64-bit value")]
    Timestamp(String),
    /// Two channels share a scan index.
    #[error("channels {0} and {1} share scan index {2}")]
    Index(String, String, u32),
}

impl ScanLayout {
    /// Lays out `channels` (name, index, type; any order) as the kernel
    /// does, the one named `timestamp` last.
    pub fn new(mut channels: Vec<(String, u32, ScanType)>) -> Result<Self, LayoutError> {
        let ts_at = channels.iter().position(|c| c.0 == "timestamp");
        let ts = ts_at.map(|i| channels.remove(i));
        channels.sort_by_key(|c| c.1);
        for w in channels.windows(2) {
            if w[0].1 == w[1].1 {
                return Err(LayoutError::Index(w[0].0.clone(), w[1].0.clone(), w[0].1));
            }
        }
        if channels.is_empty() {
            return Err(LayoutError::Empty);
        }
        let mut format = Format::I16;
        for (name, _, ty) in &channels {
            match ty.needs() {
                None => return Err(LayoutError::TooWide(name.clone(), ty.to_string())),
                Some(Format::I32) => format = Format::I32,
                Some(Format::I16) => {}
            }
        }
        if let Some((_, _, ty)) = &ts {
            if ty.storage_bits != 64 || ty.repeat != 1 {
                return Err(LayoutError::Timestamp(ty.to_string()));
            }
        }
        let (mut at, mut largest) = (0usize, 1usize);
        let mut place = |ty: &ScanType| {
            let len = ty.element_bytes();
            at = at.div_ceil(len) * len;
            let offset = at;
            at += len;
            largest = largest.max(len);
            offset
        };
        let channels: Vec<Element> = channels
            .into_iter()
            .map(|(name, index, ty)| Element {
                offset: place(&ty),
                name,
                index,
                ty,
            })
            .collect();
        let timestamp = ts.map(|(name, index, ty)| Element {
            offset: place(&ty),
            name,
            index,
            ty,
        });
        Ok(Self {
            channels,
            timestamp,
            scan_bytes: at.div_ceil(largest) * largest,
            format,
        })
    }

    /// Recorded values per scan (a repeated element gives several).
    pub fn values(&self) -> usize {
        self.channels.iter().map(|c| c.ty.repeat as usize).sum()
    }

    /// The scan's timestamp (ns in the device's clock), if it has one.
    #[inline]
    pub fn timestamp(&self, scan: &[u8]) -> Option<i64> {
        self.timestamp
            .as_ref()
            .map(|e| e.ty.decode(&scan[e.offset..], 0))
    }

    /// Converts one raw scan into `out` (one recorded value per channel
    /// value, in the recorded format's native byte order).
    #[inline]
    pub fn convert(&self, scan: &[u8], out: &mut [u8]) {
        let w = self.format.bytes();
        let mut k = 0;
        for e in &self.channels {
            for i in 0..e.ty.repeat as usize {
                let v = e.ty.decode(&scan[e.offset..], i);
                match self.format {
                    Format::I16 => out[k..k + 2].copy_from_slice(&(v as i16).to_ne_bytes()),
                    Format::I32 => out[k..k + 4].copy_from_slice(&(v as i32).to_ne_bytes()),
                }
                k += w;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ty(s: &str) -> ScanType {
        s.parse().unwrap()
    }

    #[test]
    fn the_kernel_forms_parse() {
        assert_eq!(
            ty("le:s12/16>>4"),
            ScanType {
                big_endian: false,
                signed: true,
                real_bits: 12,
                storage_bits: 16,
                repeat: 1,
                shift: 4
            }
        );
        assert_eq!(ty("be:u24/32X3>>8").repeat, 3);
        assert_eq!(ty("le:s64/64>>0\n").storage_bits, 64);
        assert_eq!(ty("le:u13/16").shift, 0, "a missing shift is 0");
    }

    #[test]
    fn invalid_forms_name_their_fault() {
        use TypeError::*;
        assert!(matches!(
            "xe:s12/16>>0".parse::<ScanType>(),
            Err(Endianness(_))
        ));
        assert!(matches!(
            "s12/16>>0".parse::<ScanType>(),
            Err(Endianness(_))
        ));
        assert!(matches!("le:f32/32>>0".parse::<ScanType>(), Err(Sign(_))));
        assert!(matches!(
            "le:s12/16>>6".parse::<ScanType>(),
            Err(Fit(_, 12, 6, 16))
        ));
        assert!(matches!(
            "le:s12/24>>0".parse::<ScanType>(),
            Err(Number(..))
        ));
        assert!(matches!("le:s0/16>>0".parse::<ScanType>(), Err(Number(..))));
        assert!(matches!(
            "le:s12/16>>x".parse::<ScanType>(),
            Err(Number(..))
        ));
        assert!(matches!("le:s12-16".parse::<ScanType>(), Err(Number(..))));
        assert!(matches!(
            "le:s12/16X0>>0".parse::<ScanType>(),
            Err(Number(..))
        ));
        assert!(matches!(
            "le:s300/16>>0".parse::<ScanType>(),
            Err(Number(..))
        ));
    }

    fn any_type() -> impl Strategy<Value = ScanType> {
        (
            any::<bool>(),
            any::<bool>(),
            prop::sample::select(vec![8u8, 16, 32, 64]),
            1u8..=4,
        )
            .prop_flat_map(|(be, s, storage, repeat)| {
                (1..=storage).prop_flat_map(move |real| {
                    (0..=storage - real).prop_map(move |shift| ScanType {
                        big_endian: be,
                        signed: s,
                        real_bits: real,
                        storage_bits: storage,
                        repeat,
                        shift,
                    })
                })
            })
    }

    proptest! {
        /// Every valid form prints as the kernel prints it and parses back.
        #[test]
        fn every_valid_form_round_trips(t in any_type()) {
            prop_assert_eq!(t.to_string().parse::<ScanType>().unwrap(), t);
        }

        /// A value stored by the rule decodes to itself, in either byte order.
        #[test]
        fn values_decode_exactly(t in any_type(), seed in any::<u64>(), junk in any::<u64>()) {
            let bits = t.real_bits as u32;
            let span = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
            let raw = seed & span;
            let want = if t.signed && bits < 64 && raw >> (bits - 1) != 0 {
                (raw | !span) as i64
            } else {
                raw as i64
            };
            // Bits outside the sample are noise the decoder must ignore.
            let storage_mask = if t.storage_bits == 64 { u64::MAX } else { (1u64 << t.storage_bits) - 1 };
            let outside = !(span << t.shift) & storage_mask;
            let word = (raw << t.shift) | (junk & outside);
            let w = t.storage_bits as usize / 8;
            let bytes = if t.big_endian { word.to_be_bytes()[8 - w..].to_vec() } else { word.to_le_bytes()[..w].to_vec() };
            prop_assert_eq!(t.decode(&bytes, 0), want);
            if let Some(f) = t.needs() {
                let fits = match f { Format::I16 => i16::try_from(want).is_ok(), Format::I32 => i32::try_from(want).is_ok() };
                prop_assert!(fits, "{} needs {:?} but {} does not fit", t, f, want);
            }
        }
    }

    /// iio_dummy's four buffered channels and its timestamp: 16 bytes.
    #[test]
    fn iio_dummy_layout() {
        let l = ScanLayout::new(vec![
            ("timestamp".into(), 4, ty("le:s64/64>>0")),
            ("accel_x".into(), 3, ty("le:s16/16>>0")),
            ("voltage0".into(), 0, ty("le:u13/16>>0")),
            ("voltage1-voltage2".into(), 1, ty("le:s12/16>>0")),
            ("voltage3-voltage4".into(), 2, ty("le:s11/16>>0")),
        ])
        .unwrap();
        let offsets: Vec<usize> = l.channels.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, [0, 2, 4, 6]);
        assert_eq!(l.timestamp.as_ref().unwrap().offset, 8);
        assert_eq!(l.scan_bytes, 16);
        assert_eq!(l.format, Format::I16);
        let mut scan = [0u8; 16];
        for (i, v) in [7i16, -33, -2, 344].iter().enumerate() {
            scan[i * 2..i * 2 + 2].copy_from_slice(&v.to_le_bytes());
        }
        scan[8..].copy_from_slice(&123_456_789i64.to_le_bytes());
        let mut out = [0u8; 8];
        l.convert(&scan, &mut out);
        let vals: Vec<i16> = out
            .chunks(2)
            .map(|c| i16::from_ne_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(vals, [7, -33, -2, 344]);
        assert_eq!(l.timestamp(&scan), Some(123_456_789));
    }

    /// Mixed widths align each element to its size and pick i32; a u32
    /// channel is refused by name.
    #[test]
    fn mixed_widths_and_refusals() {
        let l = ScanLayout::new(vec![
            ("a".into(), 0, ty("le:s12/16>>4")),
            ("b".into(), 1, ty("be:s24/32>>8")),
            ("c".into(), 2, ty("le:u8/8>>0")),
            ("timestamp".into(), 3, ty("le:s64/64>>0")),
        ])
        .unwrap();
        let offsets: Vec<usize> = l.channels.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, [0, 4, 8]);
        assert_eq!(l.timestamp.as_ref().unwrap().offset, 16);
        assert_eq!(l.scan_bytes, 24);
        assert_eq!(l.format, Format::I32);
        let mut scan = [0u8; 24];
        scan[0..2].copy_from_slice(&(((-5i16) << 4) as u16 | 0xf).to_le_bytes());
        scan[4..8].copy_from_slice(&(((-70_000i32) << 8) as u32 | 0x7f).to_be_bytes());
        scan[8] = 200;
        let mut out = [0u8; 12];
        l.convert(&scan, &mut out);
        let vals: Vec<i32> = out
            .chunks(4)
            .map(|c| i32::from_ne_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(vals, [-5, -70_000, 200]);
        let e = ScanLayout::new(vec![("big".into(), 0, ty("le:u32/32>>0"))]).unwrap_err();
        assert_eq!(e, LayoutError::TooWide("big".into(), "le:u32/32>>0".into()));
        assert!(e.to_string().contains("channel big (le:u32/32>>0)"));
        assert_eq!(
            ScanLayout::new(vec![("timestamp".into(), 0, ty("le:s64/64>>0"))]).unwrap_err(),
            LayoutError::Empty
        );
        // A repeated element is several values.
        let l = ScanLayout::new(vec![("q".into(), 0, ty("le:s16/16X3>>0"))]).unwrap();
        assert_eq!((l.values(), l.scan_bytes), (3, 8));
    }
}
