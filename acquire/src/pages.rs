//! The recorder's own Parquet page encoders: the fast path for the columns
//! that carry almost all the bytes.
//!
//! The stock column writer spends ~15 ns per value (generic value
//! buffering, widening i16 to INT32 one value at a time, encoder
//! dispatch). Our columns are fixed-width, required and null-free, so a
//! data page is just bytes laid out by rule, and we lay them out directly:
//!
//! * channel columns: BYTE_STREAM_SPLIT. The drain already split each value
//!   into its little-endian byte streams while transposing the ring block,
//!   so a page is a few `memcpy`s plus, for i16 stored as INT32, the two
//!   sign-extension streams (0x00/0xFF), which compress to almost nothing;
//! * `seq`, `t_ns`: DELTA_BINARY_PACKED, generated from the block list
//!   (sequence numbers and timestamps are never materialised as arrays).
//!
//! Pages are handed to the parquet crate's page writer, which writes the
//! page headers; the crate still writes the footer and all metadata, so
//! files stay standard (checked by pyarrow, DuckDB and polars in the tests).

use bytes::Bytes;
use parquet::basic::{Compression, Encoding};
use parquet::column::page::{CompressedPage, Page};

use crate::segment::{BlockRec, Codec};

#[cfg(target_endian = "big")]
compile_error!(
    "the ring carries native-endian samples; BYTE_STREAM_SPLIT pages assume little-endian"
);

/// Values per channel data page (1 MiB of INT32 before compression).
pub const PAGE_VALUES: usize = 256 * 1024;

/// Compresses page bodies with the run's codec, reusing its context.
pub struct Compressor {
    codec: Codec,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    out: Vec<u8>,
}

impl Compressor {
    /// A compressor for `codec`.
    pub fn new(codec: Codec) -> std::io::Result<Self> {
        let zstd = match codec {
            Codec::Zstd => {
                let mut c = zstd::bulk::Compressor::new(1)?;
                // Every zstd frame carries a checksum of its content, which
                // every reader's decoder checks: a flipped bit in a recording
                // fails to decode instead of reading as a wrong sample.
                c.include_checksum(true)?;
                Some(c)
            }
            _ => None,
        };
        Ok(Self {
            codec,
            zstd,
            out: Vec::new(),
        })
    }

    /// Builds a DataPageV2 around `body` (compressed if the codec says so).
    pub fn page(
        &mut self,
        body: &[u8],
        values: usize,
        encoding: Encoding,
    ) -> std::io::Result<CompressedPage> {
        let buf = match self.codec {
            Codec::None => Bytes::copy_from_slice(body),
            Codec::Lz4 => Bytes::from(lz4_flex::block::compress(body)),
            Codec::Zstd => {
                let z = self.zstd.as_mut().expect("zstd context");
                self.out.clear();
                self.out
                    .reserve(zstd::zstd_safe::compress_bound(body.len()));
                z.compress_to_buffer(body, &mut self.out)?;
                Bytes::copy_from_slice(&self.out)
            }
        };
        let page = Page::DataPageV2 {
            buf,
            num_values: values as u32,
            encoding,
            num_nulls: 0,
            num_rows: values as u32,
            def_levels_byte_len: 0,
            rep_levels_byte_len: 0,
            is_compressed: self.codec != Codec::None,
            statistics: None,
        };
        Ok(CompressedPage::new(page, body.len()))
    }

    /// The Parquet codec of the pages.
    pub fn parquet_codec(&self) -> Compression {
        self.codec.parquet()
    }
}

/// Appends a BYTE_STREAM_SPLIT INT32 body for rows `range` of one channel
/// whose values were split into `streams` (2 for i16, 4 for i32).
pub fn bss_int32(streams: &[Vec<u8>], range: std::ops::Range<usize>, out: &mut Vec<u8>) {
    out.clear();
    for s in streams {
        out.extend_from_slice(&s[range.clone()]);
    }
    if streams.len() == 2 {
        // i16 widened to INT32: bytes 2 and 3 repeat the sign of byte 1.
        let start = out.len();
        out.extend(streams[1][range].iter().map(|&hi| ((hi as i8) >> 7) as u8));
        out.extend_from_within(start..);
    }
}

/// Writes `v` as an unsigned LEB128 varint.
fn uleb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

const DBP_BLOCK: usize = 128;
const DBP_MINIBLOCKS: usize = 4;
const DBP_MINI: usize = DBP_BLOCK / DBP_MINIBLOCKS;

/// DELTA_BINARY_PACKED encoding of `values`.
///
/// Monotonic columns have nearly constant deltas, so most miniblocks have
/// bit width 0 (no body at all) or 1; the loops are written for that.
pub fn delta_binary_packed(values: &[i64], out: &mut Vec<u8>) {
    out.clear();
    uleb(out, DBP_BLOCK as u64);
    uleb(out, DBP_MINIBLOCKS as u64);
    uleb(out, values.len() as u64);
    let Some(&first) = values.first() else {
        uleb(out, 0);
        return;
    };
    uleb(out, zigzag(first));
    let mut deltas = [0u64; DBP_BLOCK];
    for start in (1..values.len()).step_by(DBP_BLOCK) {
        let block = &values[start - 1..(start + DBP_BLOCK).min(values.len())];
        let len = block.len() - 1;
        let mut min = i64::MAX;
        for (d, w) in deltas.iter_mut().zip(block.windows(2)) {
            let v = w[1].wrapping_sub(w[0]);
            min = min.min(v);
            *d = v as u64;
        }
        uleb(out, zigzag(min));
        let minis = len.div_ceil(DBP_MINI);
        let mut widths = [0u8; DBP_MINIBLOCKS];
        for (m, width) in widths.iter_mut().enumerate().take(minis) {
            let part = &mut deltas[m * DBP_MINI..((m + 1) * DBP_MINI).min(len)];
            let mut hi = 0u64;
            for d in part.iter_mut() {
                *d = d.wrapping_sub(min as u64);
                hi |= *d;
            }
            *width = (64 - hi.leading_zeros()) as u8;
        }
        out.extend_from_slice(&widths);
        for (m, &w) in widths.iter().enumerate().take(minis) {
            if w == 0 {
                continue;
            }
            let mut acc: u128 = 0;
            let mut bits = 0u32;
            for i in 0..DBP_MINI {
                let idx = m * DBP_MINI + i;
                let v = if idx < len { deltas[idx] } else { 0 };
                acc |= (v as u128) << bits;
                bits += w as u32;
                if bits >= 64 {
                    out.extend_from_slice(&(acc as u64).to_le_bytes());
                    acc >>= 64;
                    bits -= 64;
                }
            }
            // 32 values × w bits is a whole number of bytes.
            out.extend_from_slice(&(acc as u64).to_le_bytes()[..(bits / 8) as usize]);
        }
    }
}

/// Fills `out` with the `seq` values of a chunk's blocks.
pub fn fill_seq(blocks: &[BlockRec], out: &mut Vec<i64>) {
    out.clear();
    for b in blocks {
        out.extend((0..b.scans as i64).map(|i| b.first_seq as i64 + i));
    }
}

/// Fills `out` with the `t_ns` values of a chunk's blocks.
pub fn fill_t(blocks: &[BlockRec], out: &mut Vec<i64>) {
    out.clear();
    for b in blocks {
        out.extend((0..b.scans as u64).map(|i| (b.t_ns + ((i * b.period_q16) >> 16)) as i64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bss_sign_extends_i16() {
        let lo = vec![0x01, 0xff];
        let hi = vec![0x80, 0x7f]; // -32767, 32767
        let mut out = Vec::new();
        bss_int32(&[lo, hi], 0..2, &mut out);
        assert_eq!(out, [0x01, 0xff, 0x80, 0x7f, 0xff, 0x00, 0xff, 0x00]);
    }

    #[test]
    fn dbp_constant_deltas_need_no_bits() {
        let mut out = Vec::new();
        delta_binary_packed(&(0..129).collect::<Vec<i64>>(), &mut out);
        // header (4 varints) + min delta + 4 widths, all zero bits.
        assert_eq!(out, [0x80, 0x01, 4, 0x81, 0x01, 0, 2, 0, 0, 0, 0]);
    }
}
