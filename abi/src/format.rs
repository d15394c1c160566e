//! Sample formats carried in the ring.

/// Sample format of every value in a stream; stored as a `u16` in the ABI.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Signed 16-bit, native endian.
    I16 = 1,
    /// Signed 32-bit, native endian.
    I32 = 2,
}

impl Format {
    /// Decodes the ABI value; `None` for an unknown format.
    pub const fn from_raw(raw: u16) -> Option<Format> {
        match raw {
            1 => Some(Format::I16),
            2 => Some(Format::I32),
            _ => None,
        }
    }

    /// Parses the name used on command lines and in firmware properties.
    pub fn from_name(name: &[u8]) -> Option<Format> {
        match name {
            b"i16" | b"s16" => Some(Format::I16),
            b"i32" | b"s32" => Some(Format::I32),
            _ => None,
        }
    }

    /// The canonical name (`"i16"`, `"i32"`).
    pub const fn name(self) -> &'static str {
        match self {
            Format::I16 => "i16",
            Format::I32 => "i32",
        }
    }

    /// Bytes per sample.
    pub const fn bytes(self) -> usize {
        match self {
            Format::I16 => 2,
            Format::I32 => 4,
        }
    }
}
