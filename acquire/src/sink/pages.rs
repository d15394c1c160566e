//! The recorder's own Parquet page encoders: the fast path for the columns
//! that carry almost all the bytes.
//!
//! Kept by measurement: `acquire bench` times the parquet crate's stock
//! column writer on the same columns with the same encoding (its
//! "ColumnWriter" encodings row): these encoders were 3.2-5.6× its speed at
//! the same size on the 2-core CI machine (the stock path buffers values
//! generically and dispatches per batch; i16 must be widened first), and
//! 7.4-10.9× since the packer is unrolled and compiled for AVX2. The
//! INT32 pages are byte for byte the crate's own encoder's (tests below).
//! Our columns are fixed-width, required and null-free, so a data page body
//! is bytes laid out by rule, and we lay them out directly from the
//! chunk's columns:
//!
//! * channel columns, DELTA_BINARY_PACKED (the default, see docs/BENCHMARKS.md,
//!   "Encodings") or BYTE_STREAM_SPLIT, both as INT32 (Parquet has no
//!   16-bit type; i16 columns carry the INT(16) annotation);
//! * `seq`, `t_ns`: DELTA_BINARY_PACKED, generated from the block records.
//!
//! The page headers, footer and metadata are written by the parquet crate,
//! so files stay standard (pyarrow, DuckDB, polars and Spark read them in
//! the tests).

use parquet::basic::Encoding;

use crate::chunk::{BlockRec, Column};

#[cfg(target_endian = "big")]
compile_error!(
    "the ring carries native-endian samples; BYTE_STREAM_SPLIT pages assume little-endian"
);

/// Values per channel data page.
pub const PAGE_VALUES: usize = 256 * 1024;

/// How the channel columns are encoded.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ChannelEncoding {
    /// DELTA_BINARY_PACKED: differences of neighbours, bit-packed per 32
    /// values. Smallest for sampled signals even without a codec, and read
    /// by every reader we check (Spark 3.3+, every DuckDB).
    #[value(alias = "delta_binary_packed")]
    #[serde(alias = "delta_binary_packed")]
    Delta,
    /// BYTE_STREAM_SPLIT: each byte position in its own stream, for a codec
    /// to compress. Needs a recent reader for integers (DuckDB ≥ 1.6).
    #[value(alias = "byte_stream_split")]
    #[serde(alias = "byte_stream_split")]
    Bss,
}

impl ChannelEncoding {
    /// The Parquet encoding.
    pub fn parquet(self) -> Encoding {
        match self {
            ChannelEncoding::Delta => Encoding::DELTA_BINARY_PACKED,
            ChannelEncoding::Bss => Encoding::BYTE_STREAM_SPLIT,
        }
    }

    /// Name for manifests and reports.
    pub fn label(self) -> &'static str {
        match self {
            ChannelEncoding::Delta => "delta_binary_packed",
            ChannelEncoding::Bss => "byte_stream_split",
        }
    }
}

/// The row ranges of a column chunk's pages: [`PAGE_VALUES`] rows each,
/// the last one shorter.
pub fn page_ranges(rows: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..rows)
        .step_by(PAGE_VALUES)
        .map(move |start| start..(start + PAGE_VALUES).min(rows))
}

/// Writes the body of one channel page: rows `range` of `col`.
pub fn channel_page(
    col: &Column,
    range: std::ops::Range<usize>,
    enc: ChannelEncoding,
    out: &mut Vec<u8>,
) {
    out.clear();
    // Bit-packed deltas of 16-bit samples take about two bytes a value.
    out.reserve(range.len() * 2);
    match (enc, col) {
        (ChannelEncoding::Delta, Column::I16(v)) => dbp_int32(&v[range], out),
        (ChannelEncoding::Delta, Column::I32(v)) => dbp_int32(&v[range], out),
        (ChannelEncoding::Bss, Column::I16(v)) => bss_i16(&v[range], out),
        (ChannelEncoding::Bss, Column::I32(v)) => bss_i32(&v[range], out),
    }
}

/// BYTE_STREAM_SPLIT INT32 body of i16 values: the low bytes, the high
/// bytes, then twice the sign extension (0x00/0xFF, which compresses to
/// almost nothing).
fn bss_i16(v: &[i16], out: &mut Vec<u8>) {
    out.reserve(v.len() * 4);
    out.extend(v.iter().map(|x| *x as u8));
    out.extend(v.iter().map(|x| (*x >> 8) as u8));
    let sign = out.len();
    out.extend(v.iter().map(|x| (*x >> 15) as u8));
    out.extend_from_within(sign..);
}

/// BYTE_STREAM_SPLIT INT32 body: byte 0 of every value, then byte 1, …
fn bss_i32(v: &[i32], out: &mut Vec<u8>) {
    out.reserve(v.len() * 4);
    for k in 0..4 {
        out.extend(v.iter().map(|x| (*x >> (8 * k)) as u8));
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

/// The DELTA_BINARY_PACKED header: block size, miniblocks, count, first value.
fn dbp_header(out: &mut Vec<u8>, count: usize, first: i64) {
    uleb(out, DBP_BLOCK as u64);
    uleb(out, DBP_MINIBLOCKS as u64);
    uleb(out, count as u64);
    uleb(out, zigzag(first));
}

/// DELTA_BINARY_PACKED body of INT32 values (i16 widened).
///
/// INT32 deltas are taken modulo 2^32, as readers undo them, so a bit
/// width never exceeds 32 and each miniblock packs through a routine
/// specialised for its width (see `pack32`).
///
/// On x86_64 the same code is also compiled for AVX2 and chosen when the
/// CPU has it: the baseline (SSE2) has no 32-bit min and no variable
/// vector shifts, and with them this encoder runs ~1.5× as fast. aarch64's
/// baseline (NEON) has both.
pub fn dbp_int32<T: Copy + Into<i32>>(values: &[T], out: &mut Vec<u8>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { dbp_int32_avx2(values, out) };
    }
    dbp_int32_any(values, out)
}

/// [`dbp_int32`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dbp_int32_avx2<T: Copy + Into<i32>>(values: &[T], out: &mut Vec<u8>) {
    dbp_int32_any(values, out)
}

/// [`dbp_int32`] for the CPU its caller was compiled for (inlined there).
#[inline(always)]
fn dbp_int32_any<T: Copy + Into<i32>>(values: &[T], out: &mut Vec<u8>) {
    let Some(first) = values.first() else {
        dbp_header(out, 0, 0);
        return;
    };
    dbp_header(out, values.len(), (*first).into() as i64);
    let mut deltas = [0u32; DBP_BLOCK];
    let mut start = 1;
    while start < values.len() {
        let end = (start + DBP_BLOCK).min(values.len());
        let len = end - start;
        let mut min = i32::MAX;
        let mut prev: i32 = values[start - 1].into();
        for (d, v) in deltas.iter_mut().zip(&values[start..end]) {
            let v: i32 = (*v).into();
            let delta = v.wrapping_sub(prev);
            prev = v;
            min = min.min(delta);
            *d = delta as u32;
        }
        uleb(out, zigzag(min as i64));
        block_body(&mut deltas, len, min as u32, out);
        start = end;
    }
}

/// Packs 32 values of `width` bits, least significant bit first: `4·width`
/// bytes. One copy per width, written without a branch: value `i` lands
/// at bit `i·W` of the output, split over two 32-bit words, and with `W` a
/// constant the compiler unrolls the loop into constant shifts and ORs
/// (the earlier loop, which flushed a 64-bit accumulator whenever 32 bits
/// were full, stayed a loop with a variable shift and a data-dependent
/// branch: 35 % of a `none` recording's CPU, 3× this one's cost).
#[inline(always)]
fn pack32(v: &[u32; DBP_MINI], width: u8, out: &mut Vec<u8>) {
    #[inline(always)]
    fn pack<const W: usize>(v: &[u32; DBP_MINI], out: &mut Vec<u8>) {
        // One spare word takes the (zero) high half of the last value.
        let mut words = [0u32; DBP_MINI + 1];
        // Spelled out per value (LLVM keeps a 32-step loop with a variable
        // shift otherwise), so every index and shift is a constant.
        macro_rules! each {
            ($($i:literal)*) => {$({
                let (word, shift) = ($i * W / 32, $i * W % 32);
                let wide = (v[$i] as u64) << shift;
                words[word] |= wide as u32;
                words[word + 1] |= (wide >> 32) as u32;
            })*};
        }
        each!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31);
        let mut bytes = [0u8; 4 * DBP_MINI];
        for (b, w) in bytes.chunks_exact_mut(4).zip(&words[..W]) {
            b.copy_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&bytes[..4 * W]);
    }
    macro_rules! widths {
        ($($w:literal)*) => {
            match width {
                0 => {}
                $($w => pack::<$w>(v, out),)*
                _ => unreachable!("INT32 deltas have at most 32 bits"),
            }
        };
    }
    widths!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32);
}

/// DELTA_BINARY_PACKED body of `count` INT64 values, read in windows of
/// up to 128 from `next`. `next` fills the slice it is given with the next
/// values, or, when they step by one constant delta, may set only the last
/// one and return `Some(delta)`: such a window costs a few bytes and no
/// per-value work. The `seq` and `t_ns` columns are generated this way from
/// block records; their other windows have bit width 0 or 1 and go through
/// the INT32 packer.
pub fn dbp_int64(count: usize, mut next: impl FnMut(&mut [i64]) -> Option<i64>, out: &mut Vec<u8>) {
    out.clear();
    if count == 0 {
        dbp_header(out, 0, 0);
        return;
    }
    let mut values = [0i64; DBP_BLOCK + 1];
    next(&mut values[..1]);
    dbp_header(out, count, values[0]);
    let mut deltas = [0u64; DBP_BLOCK];
    let mut left = count - 1;
    while left > 0 {
        let len = left.min(DBP_BLOCK);
        left -= len;
        if let Some(delta) = next(&mut values[1..=len]) {
            values[0] = values[len];
            uleb(out, zigzag(delta));
            out.extend_from_slice(&[0; DBP_MINIBLOCKS]);
            continue;
        }
        let mut min = i64::MAX;
        for (d, w) in deltas.iter_mut().zip(values[..=len].windows(2)) {
            let delta = w[1].wrapping_sub(w[0]);
            min = min.min(delta);
            *d = delta as u64;
        }
        values[0] = values[len];
        uleb(out, zigzag(min));
        block_body(&mut deltas, len, min as u64, out);
    }
}

/// A delta word: u32 for INT32 columns, u64 for INT64 ones.
trait Word: Copy + Eq + std::ops::BitOr<Output = Self> {
    const BITS: u32;
    const ZERO: Self;
    fn wrapping_sub(self, min: Self) -> Self;
    fn leading_zeros(self) -> u32;
    /// Packs one miniblock of `width`-bit values.
    fn pack(mini: &[Self; DBP_MINI], width: u8, out: &mut Vec<u8>);
}

impl Word for u32 {
    const BITS: u32 = 32;
    const ZERO: Self = 0;
    fn wrapping_sub(self, min: Self) -> Self {
        self.wrapping_sub(min)
    }
    fn leading_zeros(self) -> u32 {
        u32::leading_zeros(self)
    }
    #[inline(always)]
    fn pack(mini: &[u32; DBP_MINI], width: u8, out: &mut Vec<u8>) {
        pack32(mini, width, out);
    }
}

impl Word for u64 {
    const BITS: u32 = 64;
    const ZERO: Self = 0;
    fn wrapping_sub(self, min: Self) -> Self {
        self.wrapping_sub(min)
    }
    fn leading_zeros(self) -> u32 {
        u64::leading_zeros(self)
    }
    fn pack(mini: &[u64; DBP_MINI], width: u8, out: &mut Vec<u8>) {
        if width <= 32 {
            pack32(&std::array::from_fn(|i| mini[i] as u32), width, out);
        } else {
            pack_wide(mini, width, out);
        }
    }
}

/// The rest of a block after its minimum delta: the `len` deltas (the
/// tail padded with `min`, so it packs as zeros) less `min`, the four
/// miniblock bit widths, then the packed miniblocks that hold values.
#[inline(always)]
fn block_body<W: Word>(deltas: &mut [W; DBP_BLOCK], len: usize, min: W, out: &mut Vec<u8>) {
    deltas[len..].fill(min);
    let minis = len.div_ceil(DBP_MINI);
    let mut widths = [0u8; DBP_MINIBLOCKS];
    for (m, w) in widths.iter_mut().enumerate().take(minis) {
        let mini = &mut deltas[m * DBP_MINI..(m + 1) * DBP_MINI];
        let hi = mini.iter_mut().fold(W::ZERO, |hi, d| {
            *d = d.wrapping_sub(min);
            hi | *d
        });
        *w = (W::BITS - hi.leading_zeros()) as u8;
    }
    out.extend_from_slice(&widths);
    for (m, &w) in widths.iter().enumerate().take(minis) {
        let mini = deltas[m * DBP_MINI..(m + 1) * DBP_MINI]
            .try_into()
            .expect("miniblock");
        W::pack(mini, w, out);
    }
}

/// Packs 32 values of more than 32 bits (a gap of years in `t_ns`).
fn pack_wide(v: &[u64], width: u8, out: &mut Vec<u8>) {
    let mut acc: u128 = 0;
    let mut bits = 0u32;
    for &x in v {
        acc |= (x as u128) << bits;
        bits += width as u32;
        if bits >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            bits -= 64;
        }
    }
    // 32 values × width bits is a whole number of 32-bit words.
    out.extend_from_slice(&(acc as u64).to_le_bytes()[..(bits / 8) as usize]);
}

/// Walks the `seq` or `t_ns` values of a chunk's blocks, a window at a time.
pub struct MonoCursor<'a> {
    blocks: &'a [BlockRec],
    block: usize,
    scan: u64,
    time: bool,
}

impl<'a> MonoCursor<'a> {
    /// `seq` values (`time == false`) or `t_ns` values of `blocks`.
    pub fn new(blocks: &'a [BlockRec], time: bool) -> Self {
        Self {
            blocks,
            block: 0,
            scan: 0,
            time,
        }
    }

    /// Fills `out` with the next values (there must be enough), or when
    /// they all lie in one block and step by a whole number, only the last
    /// one, returning the step (see [`dbp_int64`]).
    pub fn window(&mut self, out: &mut [i64]) -> Option<i64> {
        let b = &self.blocks[self.block];
        let n = out.len() as u64;
        let integral = !self.time || b.period_q16 & 0xFFFF == 0;
        // A window may stand for its values by its last one only if every
        // value, the first included, is one step from the one before: so it
        // must start inside the block (a block's first scan may follow a
        // gap, or a measured time, not the previous scan plus one step).
        if !integral || self.scan == 0 || self.scan + n > b.scans as u64 || n == 0 {
            self.fill(out);
            return None;
        }
        let last = self.scan + n - 1;
        let (value, step) = if self.time {
            (b.time_of(last), (b.period_q16 >> 16) as i64)
        } else {
            (b.seq_of(last), 1)
        };
        out[out.len() - 1] = value;
        self.advance(n);
        Some(step)
    }

    /// Moves past `n` scans of the current block.
    fn advance(&mut self, n: u64) {
        self.scan += n;
        if self.scan == self.blocks[self.block].scans as u64 {
            self.block += 1;
            self.scan = 0;
        }
    }

    /// Fills `out` with the next values (there must be enough).
    pub fn fill(&mut self, mut out: &mut [i64]) {
        while !out.is_empty() {
            let b = &self.blocks[self.block];
            let n = ((b.scans as u64 - self.scan) as usize).min(out.len());
            let (now, rest) = out.split_at_mut(n);
            let at = |k: usize| self.scan + k as u64;
            if self.time {
                now.iter_mut()
                    .enumerate()
                    .for_each(|(k, v)| *v = b.time_of(at(k)));
            } else {
                now.iter_mut()
                    .enumerate()
                    .for_each(|(k, v)| *v = b.seq_of(at(k)));
            }
            self.advance(n as u64);
            out = rest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parquet crate's own DELTA_BINARY_PACKED encoder, for comparison.
    fn stock<T: parquet::data_type::DataType>(values: &[T::T]) -> Vec<u8> {
        use parquet::encodings::encoding::{DeltaBitPackEncoder, Encoder};
        let mut e = DeltaBitPackEncoder::<T>::new();
        e.put(values).unwrap();
        e.flush_buffer().unwrap().to_vec()
    }

    /// A small deterministic generator (xorshift), so a failure reproduces.
    fn noise(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed | 1;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// Columns a recorder meets: noise of every width, constants, ramps,
    /// full-scale steps that wrap the INT32 delta, every length around the
    /// miniblock (32) and block (128) edges.
    fn columns_i32() -> Vec<Vec<i32>> {
        let mut r = noise(0x9e37_79b9_7f4a_7c15);
        let mut cols: Vec<Vec<i32>> = Vec::new();
        for len in [
            1, 2, 3, 31, 32, 33, 127, 128, 129, 130, 255, 256, 257, 1000, 4097,
        ] {
            for bits in [0u32, 1, 3, 8, 12, 16, 24, 31, 32] {
                cols.push(
                    (0..len)
                        .map(|_| {
                            let v = r();
                            if bits == 32 {
                                v as i32
                            } else {
                                (v % (1u64 << bits)) as i32 - (1i32 << bits.saturating_sub(1))
                            }
                        })
                        .collect(),
                );
            }
            cols.push(vec![7; len]);
            cols.push((0..len as i32).map(|i| i * 3 - 5).collect());
            cols.push(
                (0..len)
                    .map(|i| if i % 2 == 0 { i32::MIN } else { i32::MAX })
                    .collect(),
            );
        }
        cols
    }

    #[test]
    fn int32_pages_equal_the_parquet_crates_byte_for_byte() {
        for (k, col) in columns_i32().iter().enumerate() {
            let mut ours = Vec::new();
            dbp_int32(col, &mut ours);
            let theirs = stock::<parquet::data_type::Int32Type>(col);
            assert_eq!(
                ours,
                theirs,
                "column {k} ({} values, first {:?})",
                col.len(),
                &col[..col.len().min(4)]
            );
        }
        // i16 widened to INT32, as the channel columns are written.
        let mut r = noise(42);
        let v16: Vec<i16> = (0..5000).map(|_| r() as i16).collect();
        let mut ours = Vec::new();
        dbp_int32(&v16, &mut ours);
        let wide: Vec<i32> = v16.iter().map(|&v| v.into()).collect();
        assert_eq!(ours, stock::<parquet::data_type::Int32Type>(&wide));
    }

    #[test]
    /// INT64 pages cannot equal the crate's byte for byte: it packs INT64 in
    /// 64-value miniblocks (256-value blocks), we in 32-value ones (128), so
    /// that `seq`/`t_ns` windows of width ≤ 32 share the INT32 packer. Both
    /// are valid DELTA_BINARY_PACKED; the crate's decoder must read ours
    /// back value for value.
    fn int64_pages_decode_with_the_parquet_crates_decoder() {
        let mut r = noise(7);
        let mut cols: Vec<Vec<i64>> = Vec::new();
        for len in [1usize, 2, 33, 128, 129, 1000, 4097] {
            // seq: steps of one with gaps; t_ns: a period with jitter and a
            // gap of years; raw noise; the extremes.
            let mut s = 1_000_000_000i64;
            cols.push(
                (0..len)
                    .map(|_| {
                        s += if r() % 97 == 0 {
                            1 + (r() % 5000) as i64
                        } else {
                            1
                        };
                        s
                    })
                    .collect(),
            );
            let mut t = 1_700_000_000_000_000_000i64;
            cols.push(
                (0..len)
                    .map(|i| {
                        t += 31_250 + (r() % 64) as i64 - 32
                            + if i == len / 2 { 1 << 55 } else { 0 };
                        t
                    })
                    .collect(),
            );
            cols.push((0..len).map(|_| r() as i64).collect());
            cols.push(
                (0..len)
                    .map(|i| if i % 2 == 0 { i64::MIN } else { i64::MAX })
                    .collect(),
            );
        }
        for (k, col) in cols.iter().enumerate() {
            let mut pos = 0;
            let mut ours = Vec::new();
            dbp_int64(
                col.len(),
                |w| {
                    w.copy_from_slice(&col[pos..pos + w.len()]);
                    pos += w.len();
                    None
                },
                &mut ours,
            );
            use parquet::encodings::decoding::{Decoder, DeltaBitPackDecoder};
            let mut d = DeltaBitPackDecoder::<parquet::data_type::Int64Type>::new();
            d.set_data(bytes::Bytes::from(ours.clone()), col.len())
                .unwrap();
            let mut back = vec![0i64; col.len()];
            assert_eq!(d.get(&mut back).unwrap(), col.len(), "column {k}");
            assert_eq!(&back, col, "column {k} ({} values)", col.len());
            // And our header and block framing are the format's: the crate's
            // own page of the same values decodes to the same column.
            let theirs = stock::<parquet::data_type::Int64Type>(col);
            let mut d = DeltaBitPackDecoder::<parquet::data_type::Int64Type>::new();
            d.set_data(bytes::Bytes::from(theirs), col.len()).unwrap();
            let mut again = vec![0i64; col.len()];
            d.get(&mut again).unwrap();
            assert_eq!(again, back, "column {k}");
        }
    }

    #[test]
    fn mono_cursor_walks_blocks_across_windows() {
        let blocks = [
            BlockRec {
                flags: 0,
                first_seq: 0,
                scans: 3,
                t_ns: 100,
                period_q16: 2 << 16,
                ..Default::default()
            },
            BlockRec {
                flags: 0,
                first_seq: 10,
                scans: 2,
                t_ns: 500,
                period_q16: 2 << 16,
                ..Default::default()
            },
        ];
        for time in [false, true] {
            let want: Vec<i64> = blocks
                .iter()
                .flat_map(|b| {
                    if time {
                        b.times().collect::<Vec<_>>()
                    } else {
                        b.seqs().collect()
                    }
                })
                .collect();
            let mut c = MonoCursor::new(&blocks, time);
            let mut got = vec![0; 5];
            c.fill(&mut got[..2]);
            c.fill(&mut got[2..]);
            assert_eq!(got, want);
        }
    }

    #[test]
    fn constant_windows_encode_like_filled_ones() {
        // Blocks with integral and fractional periods, and a gap: the
        // shortcut must produce the very bytes of the value-by-value path.
        let blocks = [
            BlockRec {
                flags: 0,
                first_seq: 0,
                scans: 300,
                t_ns: 7,
                period_q16: 50 << 16,
                ..Default::default()
            },
            BlockRec {
                flags: 0,
                first_seq: 900,
                scans: 200,
                t_ns: 90_000,
                period_q16: 50 << 16,
                ..Default::default()
            },
            BlockRec {
                flags: 0,
                first_seq: 1100,
                scans: 333,
                t_ns: 100_000,
                period_q16: (50 << 16) + 1234,
                ..Default::default()
            },
        ];
        let rows = 833;
        // The same with the gap's block starting exactly where a 128-value
        // window starts (row 129: the first value is the header's).
        let mut aligned = blocks;
        aligned[0].scans = 129;
        aligned[1].first_seq = 729;
        aligned[1].scans = 371;
        for (blocks, time) in [
            (blocks, false),
            (blocks, true),
            (aligned, false),
            (aligned, true),
        ] {
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            let mut c = MonoCursor::new(&blocks, time);
            dbp_int64(rows, |w| c.window(w), &mut fast);
            let mut c = MonoCursor::new(&blocks, time);
            dbp_int64(
                rows,
                |w| {
                    c.fill(w);
                    None
                },
                &mut slow,
            );
            assert_eq!(fast, slow, "time {time}");
        }
    }

    #[test]
    fn wide_deltas_round_trip_through_the_wide_packer() {
        // A jump of 2^40 ns forces a 41-bit miniblock; compare with a
        // straightforward bit-by-bit packing.
        let v: Vec<i64> = (0..40)
            .map(|i| if i < 20 { i } else { (1 << 40) + i })
            .collect();
        let mut out = Vec::new();
        let mut it = v.iter().copied();
        dbp_int64(
            v.len(),
            |w| {
                w.iter_mut().for_each(|x| *x = it.next().unwrap());
                None
            },
            &mut out,
        );
        // Header 4 varints, min delta 1 (zigzag 2), widths [41, 0, 0, 0].
        let header = [0x80, 0x01, 4, 40, 0, 2];
        assert_eq!(&out[..6], &header);
        assert_eq!(&out[6..10], &[41, 0, 0, 0]);
        assert_eq!(out.len(), 10 + 4 * 41);
        let bit = |k: usize| (out[10 + k / 8] >> (k % 8)) & 1;
        // Miniblock 0 holds deltas 0..32; the rest (all the minimum) need 0 bits.
        for (i, d) in v
            .windows(2)
            .map(|w| (w[1] - w[0] - 1) as u64)
            .take(32)
            .enumerate()
        {
            let got: u64 = (0..41).map(|b| (bit(i * 41 + b) as u64) << b).sum();
            assert_eq!(got, d, "delta {i}");
        }
    }

    #[test]
    fn bss_sign_extends_i16() {
        let mut out = Vec::new();
        channel_page(
            &Column::I16(vec![-32767, 32767]),
            0..2,
            ChannelEncoding::Bss,
            &mut out,
        );
        assert_eq!(out, [0x01, 0xff, 0x80, 0x7f, 0xff, 0x00, 0xff, 0x00]);
    }

    #[test]
    fn dbp_constant_deltas_need_no_bits() {
        let mut out = Vec::new();
        let mut next = 0..;
        dbp_int64(
            129,
            |w| {
                w.iter_mut().for_each(|v| *v = next.next().unwrap());
                None
            },
            &mut out,
        );
        // header (4 varints) + min delta + 4 widths, all zero bits.
        assert_eq!(out, [0x80, 0x01, 4, 0x81, 0x01, 0, 2, 0, 0, 0, 0]);
    }

    #[test]
    fn dbp_int32_matches_the_generic_encoder() {
        // The specialised INT32 path and the plain 64-bit loop must produce
        // the same bytes wherever deltas fit both (|delta| < 2^31).
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let v: Vec<i16> = (0..5000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i % 700 < 3 {
                    i16::MIN
                } else {
                    (x >> 48) as i16 / (1 + (i as i16 % 50))
                }
            })
            .collect();
        for n in [0, 1, 2, 33, 128, 129, 130, 257, 5000] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            dbp_int32(&v[..n], &mut a);
            let mut it = v[..n].iter().map(|&x| x as i64);
            dbp_int64(
                n,
                |w| {
                    w.iter_mut().for_each(|x| *x = it.next().unwrap());
                    None
                },
                &mut b,
            );
            assert_eq!(a, b, "{n} values");
        }
    }
}
