//! Column chunks: what the drain fills from ring blocks and the encoder
//! turns into one Parquet row group.
//!
//! A ring block holds interleaved scans; a Parquet column wants one
//! channel's values in a row. The drain transposes each block once, into
//! per-channel arrays of the native sample type, and keeps one small record
//! per block (first scan, timestamp, loss) from which the `seq` and `t_ns`
//! columns are generated without ever materialising them.

use hsdaq_abi::Format;

/// One ring block as recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockRec {
    /// Sample index of the block's first scan.
    pub first_seq: u64,
    /// Scans recorded from this block.
    pub scans: u32,
    /// CLOCK_MONOTONIC of the first scan.
    pub t_ns: u64,
    /// Scan period, ns ×2^16.
    pub period_q16: u64,
    /// Scans lost just before this block.
    pub lost_before: u64,
    /// The block header's `BLOCK_FLAG_*` bits (what `lost_before` is worth,
    /// whether `t_ns` was measured).
    pub flags: u32,
    /// CLOCK_MONOTONIC when the drain read the block.
    pub arrival_ns: u64,
    /// Ring fill when read, per mille.
    pub ring_fill_permille: u32,
}

impl BlockRec {
    /// The `seq` value of the block's scan `i`.
    pub fn seq_of(&self, i: u64) -> i64 {
        (self.first_seq + i) as i64
    }

    /// The `t_ns` value of the block's scan `i`: its nominal time,
    /// `t_ns + i·period` with the period in ns × 2^16.
    pub fn time_of(&self, i: u64) -> i64 {
        (self.t_ns + ((i * self.period_q16) >> 16)) as i64
    }

    /// The `seq` value of every scan of the block, in order.
    pub fn seqs(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.scans as u64).map(|i| self.seq_of(i))
    }

    /// The `t_ns` value of every scan of the block, in order.
    pub fn times(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.scans as u64).map(|i| self.time_of(i))
    }
}

/// One channel's values, in the stream's sample type.
#[derive(Debug)]
pub enum Column {
    /// 16-bit samples (stored as INT32 annotated INT(16)).
    I16(Vec<i16>),
    /// 32-bit samples.
    I32(Vec<i32>),
}

impl Column {
    fn with_capacity(format: Format, rows: usize) -> Self {
        match format {
            Format::I16 => Column::I16(Vec::with_capacity(rows)),
            Format::I32 => Column::I32(Vec::with_capacity(rows)),
        }
    }

    /// Values held.
    pub fn len(&self) -> usize {
        match self {
            Column::I16(v) => v.len(),
            Column::I32(v) => v.len(),
        }
    }

    /// Whether the column holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn clear(&mut self) {
        match self {
            Column::I16(v) => v.clear(),
            Column::I32(v) => v.clear(),
        }
    }
}

/// A transposed column chunk: becomes one row group.
pub struct Chunk {
    /// Segment this chunk belongs to.
    pub segment: u64,
    /// One column per channel, each `rows()` long.
    pub columns: Vec<Column>,
    /// The blocks the rows came from, in order.
    pub blocks: Vec<BlockRec>,
}

impl Chunk {
    /// An empty chunk with room for `rows` rows of `channels` values.
    pub fn with_capacity(channels: usize, format: Format, rows: usize) -> Self {
        Self {
            segment: 0,
            columns: (0..channels)
                .map(|_| Column::with_capacity(format, rows))
                .collect(),
            blocks: Vec::with_capacity(rows / 16 + 1),
        }
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, Column::len)
    }

    /// Empties the chunk, keeping its allocations.
    pub fn clear(&mut self) {
        self.columns.iter_mut().for_each(Column::clear);
        self.blocks.clear();
    }

    /// Appends the first `scans` interleaved scans of a block payload: one
    /// pass over the payload, each scan's values going to their columns.
    #[inline]
    pub fn transpose(&mut self, payload: &[u8], scans: usize) {
        match self.columns.first() {
            Some(Column::I16(_)) => self.transpose_as::<2>(payload, scans),
            Some(Column::I32(_)) => self.transpose_as::<4>(payload, scans),
            None => {}
        }
    }

    fn transpose_as<const W: usize>(&mut self, payload: &[u8], scans: usize) {
        let channels = self.columns.len();
        let p = &payload[..scans * channels * W];
        // Each column's next `scans` slots, written below and then declared.
        let mut outs: Vec<&mut [std::mem::MaybeUninit<[u8; W]>]> = self
            .columns
            .iter_mut()
            .map(|col| {
                let spare = match col {
                    Column::I16(v) => {
                        v.reserve(scans);
                        spare_bytes::<i16, W>(v)
                    }
                    Column::I32(v) => {
                        v.reserve(scans);
                        spare_bytes::<i32, W>(v)
                    }
                };
                &mut spare[..scans]
            })
            .collect();
        for (s, scan) in p.chunks_exact(channels * W).enumerate() {
            for (out, v) in outs.iter_mut().zip(scan.chunks_exact(W)) {
                out[s].write(v.try_into().expect("W bytes"));
            }
        }
        drop(outs);
        for col in &mut self.columns {
            match col {
                // SAFETY: the loop above initialised the `scans` slots after
                // the old length of every column (one value per scan).
                Column::I16(v) => unsafe { v.set_len(v.len() + scans) },
                // SAFETY: as above.
                Column::I32(v) => unsafe { v.set_len(v.len() + scans) },
            }
        }
    }
}

/// A vector's spare capacity seen as `W`-byte slots.
fn spare_bytes<T, const W: usize>(v: &mut Vec<T>) -> &mut [std::mem::MaybeUninit<[u8; W]>] {
    assert_eq!(std::mem::size_of::<T>(), W);
    let spare = v.spare_capacity_mut();
    // SAFETY: T (i16/i32) and [u8; W] have the same size (asserted) and
    // [u8; W] has alignment 1, so the same memory holds as many slots;
    // MaybeUninit needs no initialisation, and the borrow of `v` carries
    // over to the returned slice.
    unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast(), spare.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_splits_interleaved_scans() {
        let scans: Vec<i16> = vec![1, -2, 3, 4, -5, 6];
        let bytes: Vec<u8> = scans.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let mut c = Chunk::with_capacity(3, Format::I16, 4);
        c.transpose(&bytes, 2);
        match &c.columns[..] {
            [Column::I16(a), Column::I16(b), Column::I16(d)] => {
                assert_eq!(
                    (a.as_slice(), b.as_slice(), d.as_slice()),
                    (&[1, 4][..], &[-2, -5][..], &[3, 6][..])
                );
            }
            _ => panic!("wrong column types"),
        }
        assert_eq!(c.rows(), 2);
    }

    #[test]
    fn block_times_follow_the_period() {
        let b = BlockRec {
            flags: 0,
            first_seq: 10,
            scans: 3,
            t_ns: 1000,
            period_q16: 3 << 15, // 1.5 ns
            ..Default::default()
        };
        assert_eq!(b.seqs().collect::<Vec<_>>(), [10, 11, 12]);
        assert_eq!(b.times().collect::<Vec<_>>(), [1000, 1001, 1003]);
    }
}
