//! Column chunks: what the drain fills from ring blocks and the encoder
//! turns into one Parquet row group.
//!
//! A ring block holds interleaved scans; a Parquet column wants one
//! channel's values in a row. The drain transposes each block once, into
//! per-channel arrays of the native sample type, and keeps one small record
//! per block (first scan, timestamp, loss) from which the `seq` and `t_ns`
//! columns are generated without ever materialising them.

use std::mem::MaybeUninit;

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

    /// The block from its scan `off` on (`0 < off < scans`): that scan
    /// follows the one before it, so no gap is before it.
    pub fn tail_from(&self, off: u64) -> BlockRec {
        BlockRec {
            first_seq: self.first_seq + off,
            scans: self.scans - off as u32,
            t_ns: self.time_of(off) as u64,
            lost_before: 0,
            // Its time is the block's (measured or nominal) stamp plus
            // `off` periods: the same time base, so the same flag.
            flags: self.flags & hsdaq_abi::layout::BLOCK_FLAG_TIME_MEASURED,
            ..*self
        }
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
    /// The snapshot window the rows belong to (triggered recordings).
    pub window: Option<hsdaq_format::manifest::Window>,
    /// Scans lost after the last row and before the window's end: a gap
    /// that straddles the end, whose later part is outside the window.
    pub lost_after: u64,
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
            window: None,
            lost_after: 0,
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
        self.window = None;
        self.lost_after = 0;
    }

    /// The row holding scan `seq`, or the first row after it when `seq`
    /// fell in a gap; `rows()` when every row is before it.
    pub fn row_at_or_after(&self, seq: u64) -> usize {
        let mut row = 0;
        for b in &self.blocks {
            if seq < b.first_seq {
                return row;
            }
            if seq < b.first_seq + b.scans as u64 {
                return row + (seq - b.first_seq) as usize;
            }
            row += b.scans as usize;
        }
        row
    }

    /// The `seq` of row `row` (which must exist).
    pub fn seq_at_row(&self, mut row: usize) -> u64 {
        for b in &self.blocks {
            if row < b.scans as usize {
                return b.first_seq + row as u64;
            }
            row -= b.scans as usize;
        }
        panic!("row beyond the chunk");
    }

    /// One past the last scan held (`None` when empty).
    pub fn end_seq(&self) -> Option<u64> {
        self.blocks.last().map(|b| b.first_seq + b.scans as u64)
    }

    /// Scans lost in the gaps before the first `rows` rows' blocks (the
    /// gaps a cut at `rows` leaves behind it).
    pub fn lost_before_row(&self, rows: usize) -> u64 {
        let mut at = 0;
        let mut lost = 0;
        for b in &self.blocks {
            if at >= rows {
                break;
            }
            lost += b.lost_before;
            at += b.scans as usize;
        }
        lost
    }

    /// Drops the first `rows` rows (a window starts after them): the block
    /// cut in two keeps its later scans, starting with no gap before them.
    pub fn drop_front(&mut self, rows: usize) {
        if rows == 0 {
            return;
        }
        let mut left = rows;
        let mut keep_from = self.blocks.len();
        for (i, b) in self.blocks.iter_mut().enumerate() {
            if left == 0 {
                // A cut on a block boundary keeps the block whole, the gap
                // before it included.
                keep_from = i;
                break;
            }
            if left < b.scans as usize {
                *b = b.tail_from(left as u64);
                keep_from = i;
                break;
            }
            left -= b.scans as usize;
        }
        self.blocks.drain(..keep_from);
        for col in &mut self.columns {
            match col {
                Column::I16(v) => drop(v.drain(..rows)),
                Column::I32(v) => drop(v.drain(..rows)),
            }
        }
    }

    /// Moves the rows from `at` on into `tail` (empty, same shape): a
    /// window ends at `at`, and what follows is the next window's history.
    pub fn split_off_into(&mut self, at: usize, tail: &mut Chunk) {
        debug_assert!(tail.rows() == 0 && tail.blocks.is_empty());
        tail.segment = self.segment;
        let mut row = 0;
        let mut cut = self.blocks.len();
        for (i, b) in self.blocks.iter_mut().enumerate() {
            let n = b.scans as usize;
            if at < row + n {
                let off = (at - row) as u64;
                if off == 0 {
                    cut = i;
                } else {
                    tail.blocks.push(b.tail_from(off));
                    b.scans = off as u32;
                    cut = i + 1;
                }
                break;
            }
            row += n;
        }
        tail.blocks.extend(self.blocks.drain(cut..));
        for (src, dst) in self.columns.iter_mut().zip(&mut tail.columns) {
            match (src, dst) {
                (Column::I16(s), Column::I16(d)) => d.extend(s.drain(at..)),
                (Column::I32(s), Column::I32(d)) => d.extend(s.drain(at..)),
                _ => unreachable!("chunks of one run have one sample type"),
            }
        }
    }

    /// Appends the first `scans` interleaved scans of a block payload: one
    /// pass over the payload, each scan's values going to their columns.
    #[inline]
    pub fn transpose(&mut self, payload: &[u8], scans: usize) {
        self.transpose_into(payload, scans, &mut []);
    }

    /// [`Self::transpose`], also giving each channel's minimum and maximum
    /// over the appended scans (the live view's envelope, `extents` one
    /// per channel) from the same pass: the values are in registers then,
    /// where a second pass read them back from memory (a sixth of the
    /// drain's time).
    #[inline]
    pub fn transpose_measured(&mut self, payload: &[u8], scans: usize, extents: &mut [(i32, i32)]) {
        assert_eq!(extents.len(), self.columns.len(), "one extent a channel");
        self.transpose_into(payload, scans, extents);
    }

    fn transpose_into(&mut self, payload: &[u8], scans: usize, extents: &mut [(i32, i32)]) {
        match self.columns.first() {
            Some(Column::I16(_)) => self.transpose_as::<i16>(payload, scans, extents),
            Some(Column::I32(_)) => self.transpose_as::<i32>(payload, scans, extents),
            None => {}
        }
    }

    fn transpose_as<T: Sample>(&mut self, payload: &[u8], scans: usize, ext: &mut [(i32, i32)]) {
        let p = &payload[..scans * self.columns.len() * T::BYTES];
        // Each column's next `scans` slots, written below and then declared.
        let mut outs: Vec<&mut [MaybeUninit<T>]> = self
            .columns
            .iter_mut()
            .map(|col| {
                let v = T::values(col);
                v.reserve(scans);
                &mut v.spare_capacity_mut()[..scans]
            })
            .collect();
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            unsafe { scatter_avx2(p, &mut outs, ext) };
        } else {
            scatter_for(p, &mut outs, ext);
        }
        #[cfg(not(target_arch = "x86_64"))]
        scatter_for(p, &mut outs, ext);
        drop(outs);
        for col in &mut self.columns {
            let v = T::values(col);
            // SAFETY: the scatter above initialised the `scans` slots after
            // the old length of every column (one value per scan).
            unsafe { v.set_len(v.len() + scans) };
        }
    }
}

/// A column's sample type.
trait Sample: Copy + Ord + Into<i32> {
    const BYTES: usize;
    const MIN: Self;
    const MAX: Self;
    /// The value of `BYTES` native-endian bytes.
    fn from_ne(b: &[u8]) -> Self;
    /// The column's values (which must be of this type).
    fn values(col: &mut Column) -> &mut Vec<Self>;
}

impl Sample for i16 {
    const BYTES: usize = 2;
    const MIN: Self = i16::MIN;
    const MAX: Self = i16::MAX;
    #[inline(always)]
    fn from_ne(b: &[u8]) -> Self {
        i16::from_ne_bytes([b[0], b[1]])
    }
    fn values(col: &mut Column) -> &mut Vec<Self> {
        match col {
            Column::I16(v) => v,
            Column::I32(_) => unreachable!("a chunk's columns share one type"),
        }
    }
}

impl Sample for i32 {
    const BYTES: usize = 4;
    const MIN: Self = i32::MIN;
    const MAX: Self = i32::MAX;
    #[inline(always)]
    fn from_ne(b: &[u8]) -> Self {
        i32::from_ne_bytes([b[0], b[1], b[2], b[3]])
    }
    fn values(col: &mut Column) -> &mut Vec<Self> {
        match col {
            Column::I32(v) => v,
            Column::I16(_) => unreachable!("a chunk's columns share one type"),
        }
    }
}

/// The output slots of one transpose: a column's next values each.
type Outs<'a, 'b, T> = &'a mut [&'b mut [MaybeUninit<T>]];

/// [`scatter_for`] compiled for AVX2 and chosen at run time: its shuffles
/// take 4 × i16 scans apart several at a time where SSE2 moves a value at
/// a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scatter_avx2<T: Sample>(p: &[u8], outs: Outs<T>, ext: &mut [(i32, i32)]) {
    scatter_for(p, outs, ext)
}

/// The scatter specialised for the channel count when it is a usual one,
/// and for whether extents are wanted (`ext` empty: not).
#[inline(always)]
fn scatter_for<T: Sample>(p: &[u8], outs: Outs<T>, ext: &mut [(i32, i32)]) {
    macro_rules! by_count {
        ($e:literal) => {
            match outs.len() {
                1 => scatter::<T, 1, $e>(p, outs, ext),
                2 => scatter::<T, 2, $e>(p, outs, ext),
                3 => scatter::<T, 3, $e>(p, outs, ext),
                4 => scatter::<T, 4, $e>(p, outs, ext),
                6 => scatter::<T, 6, $e>(p, outs, ext),
                8 => scatter::<T, 8, $e>(p, outs, ext),
                16 => scatter::<T, 16, $e>(p, outs, ext),
                _ => scatter_any(p, outs, ext),
            }
        };
    }
    if ext.is_empty() {
        by_count!(false)
    } else {
        by_count!(true)
    }
}

/// Sends each value of the interleaved scans in `p` to its column's slot,
/// for `C` channels known at compile time: with the count a constant the
/// loop is an interleaved access the compiler vectorises. With `E`, also
/// each channel's extent ([`tiled`]).
#[inline(always)]
fn scatter<T: Sample, const C: usize, const E: bool>(
    p: &[u8],
    outs: Outs<T>,
    ext: &mut [(i32, i32)],
) {
    let outs: &mut [&mut [MaybeUninit<T>]; C] = outs.try_into().expect("C columns");
    if !E {
        return scatter_run(p, outs);
    }
    tiled::<T>(p, C, ext, |tile, done, scans| {
        scatter_run(
            tile,
            &mut outs.each_mut().map(|o| &mut o[done..done + scans]),
        )
    });
}

/// [`scatter`] for any number of channels: a scalar loop (the count is not
/// a constant), the extents still from [`tiled`]'s vectorised fold.
#[inline(always)]
fn scatter_any<T: Sample>(p: &[u8], outs: Outs<T>, ext: &mut [(i32, i32)]) {
    let channels = outs.len();
    if ext.is_empty() {
        return scatter_any_run(p, outs);
    }
    if channels > LANES {
        // More channels than lanes (not from the ring: its ABI allows 64):
        // a scalar min/max beside the scatter.
        ext.fill((T::MAX.into(), T::MIN.into()));
        for scan in p.chunks_exact(channels * T::BYTES) {
            for (e, v) in ext.iter_mut().zip(scan.chunks_exact(T::BYTES)) {
                let v: i32 = T::from_ne(v).into();
                *e = (e.0.min(v), e.1.max(v));
            }
        }
        return scatter_any_run(p, outs);
    }
    tiled::<T>(p, channels, ext, |tile, _, scans| {
        scatter_any_run(tile, outs);
        // The next tile's scans go after these.
        for o in outs.iter_mut() {
            *o = &mut std::mem::take(o)[scans..];
        }
    });
}

/// The loop of [`scatter_any`]: scan `s` of `p` to each column's slot `s`.
#[inline(always)]
fn scatter_any_run<T: Sample>(p: &[u8], outs: Outs<T>) {
    for (s, scan) in p.chunks_exact(outs.len() * T::BYTES).enumerate() {
        for (out, v) in outs.iter_mut().zip(scan.chunks_exact(T::BYTES)) {
            out[s].write(T::from_ne(v));
        }
    }
}

/// Lanes of the vertical min/max: every channel count the ring allows.
const LANES: usize = 64;
const _: () = assert!(LANES >= hsdaq_abi::layout::MAX_CHANNELS as usize);

/// Runs `scatter(tile, first scan, scans)` over `p` 4 KiB of whole scans
/// at a time and folds each tile into each channel's extent while the tile
/// is in L1: a vertical min/max over rows of `channels · (LANES / channels)`
/// values (lane `k` is channel `k mod channels`), which vectorises where a
/// per-channel reduction inside the interleaved loop would not. At most
/// [`LANES`] channels.
#[inline(always)]
fn tiled<T: Sample>(
    p: &[u8],
    channels: usize,
    ext: &mut [(i32, i32)],
    mut scatter: impl FnMut(&[u8], usize, usize),
) {
    let scan = channels * T::BYTES;
    let tile = (4096 / scan).max(1) * scan;
    // Values per row of the vertical min/max: a whole number of scans.
    let row = channels * (LANES / channels);
    let (mut lo, mut hi) = ([T::MAX; LANES], [T::MIN; LANES]);
    let mut done = 0;
    for t in p.chunks(tile) {
        let scans = t.len() / scan;
        scatter(t, done, scans);
        let rows = t.chunks_exact(row * T::BYTES);
        let rest = rows.remainder();
        for r in rows {
            fold_lanes(r, &mut lo, &mut hi);
        }
        // Whole scans too, so lane j is still channel j mod channels.
        fold_lanes(rest, &mut lo, &mut hi);
        done += scans;
    }
    for (c, e) in ext.iter_mut().enumerate() {
        let lanes = (c..row).step_by(channels);
        let l = lanes.clone().map(|j| lo[j]).min().expect("a lane");
        let h = lanes.map(|j| hi[j]).max().expect("a lane");
        *e = (l.into(), h.into());
    }
}

/// Folds interleaved values into per-lane minima and maxima: value `j` of
/// `r` into lane `j` (at most [`LANES`] values).
#[inline(always)]
fn fold_lanes<T: Sample>(r: &[u8], lo: &mut [T; LANES], hi: &mut [T; LANES]) {
    for (j, v) in r.chunks_exact(T::BYTES).enumerate() {
        let v = T::from_ne(v);
        lo[j] = lo[j].min(v);
        hi[j] = hi[j].max(v);
    }
}

/// The interleaved loop of [`scatter`] over a run of whole scans.
#[inline(always)]
fn scatter_run<T: Sample, const C: usize>(p: &[u8], outs: &mut [&mut [MaybeUninit<T>]; C]) {
    let scans = p.len() / (C * T::BYTES);
    let mut outs = outs.each_mut().map(|o| &mut o[..scans]);
    for (i, scan) in p.chunks_exact(C * T::BYTES).enumerate() {
        for (c, out) in outs.iter_mut().enumerate() {
            out[i].write(T::from_ne(&scan[c * T::BYTES..]));
        }
    }
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

    /// Every channel count (the specialised ones, the general loop, up to
    /// the ring's 64 and one past the vertical min/max's lanes) and
    /// scan counts around vector widths (the vectorised loop's remainders)
    /// and past a 4 KiB tile (2048 scans of one i16 channel; extents carried
    /// across tiles),
    /// for both sample widths, appended twice so the second block lands
    /// after the first, the second time with each channel's extent.
    #[test]
    fn transpose_matches_the_plain_rule_for_any_layout() {
        for channels in (1..=17usize).chain([31, 32, 63, 64, 65]) {
            for scans in [
                0usize, 1, 7, 8, 9, 15, 16, 17, 31, 33, 83, 512, 513, 1100, 2049, 4097,
            ] {
                let value = |s: usize, c: usize| ((s * 7919 + c * 104_729) % 2003) as i32 - 1001;
                for format in [Format::I16, Format::I32] {
                    let mut bytes = Vec::new();
                    for s in 0..scans {
                        for c in 0..channels {
                            match format {
                                Format::I16 => bytes.extend((value(s, c) as i16).to_ne_bytes()),
                                Format::I32 => bytes.extend((value(s, c) << 12).to_ne_bytes()),
                            }
                        }
                    }
                    let mut chunk = Chunk::with_capacity(channels, format, 1);
                    chunk.transpose(&bytes, scans);
                    let mut ext = vec![(0, 0); channels];
                    chunk.transpose_measured(&bytes, scans, &mut ext);
                    let shift = if format == Format::I32 { 12 } else { 0 };
                    for (c, e) in ext.iter().enumerate() {
                        let vals = (0..scans).map(|s| value(s, c) << shift);
                        let want = match (vals.clone().min(), vals.max()) {
                            (Some(lo), Some(hi)) => (lo, hi),
                            // No scan: the empty extent.
                            _ if format == Format::I16 => (i16::MAX.into(), i16::MIN.into()),
                            _ => (i32::MAX, i32::MIN),
                        };
                        assert_eq!(*e, want, "extent {channels} ch, {scans} scans, {format:?}");
                    }
                    for (c, col) in chunk.columns.iter().enumerate() {
                        let got: Vec<i32> = match col {
                            Column::I16(v) => v.iter().map(|x| *x as i32).collect(),
                            Column::I32(v) => v.iter().map(|x| x >> 12).collect(),
                        };
                        let want: Vec<i32> =
                            (0..2 * scans).map(|s| value(s % scans.max(1), c)).collect();
                        assert_eq!(got, want, "{channels} ch, {scans} scans, {format:?}");
                    }
                }
            }
        }
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

    fn two_blocks() -> Chunk {
        // Blocks of 3 scans at seq 10 and, after a gap of 5, at seq 18.
        let mut c = Chunk::with_capacity(2, Format::I16, 8);
        let vals: Vec<u8> = (0..12i16).flat_map(|v| v.to_ne_bytes()).collect();
        c.transpose(&vals, 6);
        let rec = |first_seq, lost_before| BlockRec {
            first_seq,
            scans: 3,
            t_ns: first_seq * 100,
            period_q16: 100 << 16,
            lost_before,
            flags: hsdaq_abi::layout::BLOCK_FLAG_AFTER_GAP,
            ..Default::default()
        };
        c.blocks = vec![rec(10, 2), rec(18, 5)];
        c
    }

    fn col0(c: &Chunk) -> Vec<i16> {
        match &c.columns[0] {
            Column::I16(v) => v.clone(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn rows_map_to_seqs_across_gaps() {
        let c = two_blocks();
        assert_eq!(c.row_at_or_after(11), 1);
        assert_eq!(
            c.row_at_or_after(14),
            3,
            "a seq in a gap maps to the row after it"
        );
        assert_eq!(c.row_at_or_after(99), 6);
        assert_eq!(c.seq_at_row(4), 19);
        assert_eq!(c.end_seq(), Some(21));
        assert_eq!(c.lost_before_row(1), 2);
        assert_eq!(c.lost_before_row(4), 7);
    }

    #[test]
    fn cuts_keep_rows_and_blocks_together() {
        let mut c = two_blocks();
        c.drop_front(1);
        assert_eq!(col0(&c), [2, 4, 6, 8, 10]);
        let b = c.blocks[0];
        assert_eq!(
            (b.first_seq, b.scans, b.t_ns, b.lost_before, b.flags),
            (11, 2, 1100, 0, 0)
        );
        assert_eq!(c.blocks[1].lost_before, 5, "the later gap stays");

        let mut tail = Chunk::with_capacity(2, Format::I16, 8);
        c.split_off_into(3, &mut tail);
        assert_eq!((col0(&c), col0(&tail)), (vec![2, 4, 6], vec![8, 10]));
        assert_eq!(
            c.blocks
                .iter()
                .map(|b| (b.first_seq, b.scans))
                .collect::<Vec<_>>(),
            [(11, 2), (18, 1)]
        );
        let t = tail.blocks[0];
        assert_eq!(
            (t.first_seq, t.scans, t.t_ns, t.lost_before),
            (19, 2, 1900, 0)
        );

        // A cut on a block boundary moves the whole block, gap and all.
        let mut c = two_blocks();
        let mut tail = Chunk::with_capacity(2, Format::I16, 8);
        c.split_off_into(3, &mut tail);
        assert_eq!((c.blocks.len(), tail.blocks[0].lost_before), (1, 5));

        // So does a front cut on a block boundary.
        let mut c = two_blocks();
        c.drop_front(3);
        assert_eq!(
            (
                c.blocks.len(),
                c.blocks[0].first_seq,
                c.blocks[0].lost_before
            ),
            (1, 18, 5)
        );
        assert_eq!(col0(&c), [6, 8, 10]);
    }
}
