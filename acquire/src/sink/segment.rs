//! Parquet segment files: one row group per column chunk, written as
//! `*.partial` and renamed only once complete and synced, so a killed
//! recorder never leaves a file that looks whole but is not.
//!
//! Columns: `seq` (i64 sample index, DELTA_BINARY_PACKED), `t_ns` (i64
//! CLOCK_MONOTONIC, DELTA_BINARY_PACKED), then one INT32 column per channel
//! (DELTA_BINARY_PACKED or BYTE_STREAM_SPLIT; logical type INT(16) for i16
//! streams). A row group is encoded by [`PageEncoder::encode`] (one per
//! core, each on its own row group) into a [`RowGroup`], then written by
//! [`SegmentWriter`]; a full segment is [`SegmentWriter::seal`]ed and
//! [`Sealed::commit`]ted. Dictionaries
//! and per-page statistics are off: they cost per-value work and never pay
//! for noisy sample data. Each segment has a companion block table in
//! `blocks/` (one row per ring block: arrival time, loss, ring fill).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use parquet::basic::{Encoding, LogicalType, Repetition, Type as PhysicalType};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::{Int32Type, Int64Type};
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::statistics::Statistics;
use parquet::file::writer::SerializedFileWriter;
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::{ColumnDescPtr, Type};

pub use crate::chunk::{BlockRec, Chunk};
use hsdaq_format::clock::{self, ClockSample};

use crate::manifest::{sync_dir, Gap, Manifest, SegmentInfo, KV_MANIFEST, KV_SEGMENT};
use crate::sink::codec::{Compressor, PageCodec};
use crate::sink::direct::DirectWriter;
use crate::sink::pages::{self, ChannelEncoding};
use crate::sink::{Checkpoint, Hook};

/// Bytes buffered in user space before a `write(2)`: the parquet crate
/// copies column chunks in 8 KiB pieces, and a syscall per piece costs
/// more than the copy (and `O_DIRECT` wants large aligned writes). The
/// writer holds two (one filling, one being written): 4 MiB in all.
const WRITE_BUFFER: usize = 2 << 20;

/// Schema and properties shared by every segment of a run.
#[derive(Clone)]
pub struct SegmentFormat {
    encoding: ChannelEncoding,
    samples_schema: Arc<Type>,
    blocks_schema: Arc<Type>,
    samples_props: Arc<WriterProperties>,
    blocks_props: Arc<WriterProperties>,
}

fn column(name: &str, t: PhysicalType, logical: Option<LogicalType>) -> Arc<Type> {
    Arc::new(
        Type::primitive_type_builder(name, t)
            .with_repetition(Repetition::REQUIRED)
            .with_logical_type(logical)
            .build()
            .expect("valid primitive column"),
    )
}

fn group(name: &str, fields: Vec<Arc<Type>>) -> Arc<Type> {
    Arc::new(
        Type::group_type_builder(name)
            .with_fields(fields)
            .build()
            .expect("valid schema"),
    )
}

impl SegmentFormat {
    /// Encoding of the channel columns.
    pub fn encoding(&self) -> ChannelEncoding {
        self.encoding
    }

    /// Builds the schema for `names` channels of `format`.
    pub fn new(names: &[String], format: hsdaq_abi::Format, encoding: ChannelEncoding) -> Self {
        let int16 = Some(LogicalType::Integer(parquet::basic::IntType {
            bit_width: 16,
            is_signed: true,
        }));
        let mut fields = vec![
            column("seq", PhysicalType::INT64, None),
            column("t_ns", PhysicalType::INT64, None),
        ];
        for n in names {
            let logical = if format == hsdaq_abi::Format::I16 {
                int16.clone()
            } else {
                None
            };
            fields.push(column(n, PhysicalType::INT32, logical));
        }
        let samples_schema = group("hsdaq", fields);
        // Pages are built by `pages`; these properties only shape the file
        // (format version, created_by) since no value goes through the
        // crate's column writers.
        let samples_props = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_2_0)
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::None)
            .set_created_by(format!("hsdaq acquire {}", env!("CARGO_PKG_VERSION")))
            .build();
        let block_fields = vec![
            column("seq", PhysicalType::INT64, None),
            column("scans", PhysicalType::INT32, None),
            column("t_ns", PhysicalType::INT64, None),
            column("arrival_ns", PhysicalType::INT64, None),
            column("lost_before", PhysicalType::INT64, None),
            column("ring_fill_permille", PhysicalType::INT32, None),
            // The block header's BLOCK_FLAG_* bits: bit 1 = `lost_before` is
            // an estimate (inferred gap), bit 2 = `t_ns` was measured.
            column("flags", PhysicalType::INT32, None),
        ];
        let blocks_schema = group("hsdaq_blocks", block_fields);
        let blocks_props = WriterProperties::builder()
            .set_compression(PageCodec::Zstd(1).parquet())
            .set_dictionary_enabled(false)
            .set_created_by(format!("hsdaq acquire {}", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            encoding,
            samples_schema,
            blocks_schema,
            samples_props: Arc::new(samples_props),
            blocks_props: Arc::new(blocks_props),
        }
    }
}

/// File name of segment `index`.
pub fn segment_name(index: u64) -> String {
    format!("segment-{index:06}.parquet")
}

/// Turns an I/O failure into the message a user needs (disk full, quota, …).
pub fn explain_write_error(e: &anyhow::Error) -> String {
    let io = e.chain().find_map(|c| c.downcast_ref::<std::io::Error>());
    let what = e.to_string();
    match (io, io.and_then(|i| i.raw_os_error())) {
        (Some(io), Some(libc::ENOSPC)) => format!("disk full while {what}: {io}"),
        (Some(io), Some(libc::EFBIG)) => {
            format!("file size limit reached (RLIMIT_FSIZE) while {what}: {io}")
        }
        (Some(io), Some(libc::EDQUOT)) => format!("disk quota exceeded while {what}: {io}"),
        _ => format!("{e:#}"),
    }
}

type ParquetFile = SerializedFileWriter<DirectWriter>;

/// Writes ready pages as one column chunk of the open row group.
fn append_pages(
    rg: &mut parquet::file::writer::SerializedRowGroupWriter<'_, DirectWriter>,
    descr: ColumnDescPtr,
    pages: Vec<CompressedPage>,
    rows: usize,
    codec: PageCodec,
    stats: Option<Statistics>,
) -> Result<()> {
    let encoding = pages.first().map_or(Encoding::PLAIN, |p| p.encoding());
    let mut sink = TrackedWrite::new(ChunkBytes::expecting(&pages));
    let mut uncompressed = 0i64;
    {
        let mut w = SerializedPageWriter::new(&mut sink);
        for p in pages {
            let spec = w.write_page(p)?;
            uncompressed += spec.uncompressed_size as i64;
        }
        w.close()?;
    }
    let mut chunk = sink.into_inner()?;
    chunk.seal();
    let mut meta = ColumnChunkMetaData::builder(descr)
        .set_compression(codec.parquet())
        .set_encodings(vec![encoding])
        .set_num_values(rows as i64)
        .set_total_compressed_size(chunk.len as i64)
        .set_total_uncompressed_size(uncompressed)
        .set_data_page_offset(0);
    if let Some(s) = stats {
        meta = meta.set_statistics(s);
    }
    let close = ColumnCloseResult {
        bytes_written: chunk.len,
        rows_written: rows as u64,
        metadata: meta.build()?,
        bloom_filter: None,
        column_index: None,
        offset_index: None,
    };
    rg.append_column(&chunk, close)?;
    Ok(())
}

/// A column chunk as the parquet crate's page writer lays it out, without
/// a copy of the page bodies: the writer writes each page's header, then
/// its body as one slice of the page's own buffer (`std::io::BufWriter`,
/// inside the crate's `TrackedWrite`, passes a write at least its
/// capacity straight through). A write that is exactly an expected body is
/// kept as that buffer; anything else (headers, small pages) is copied.
/// The bodies then reach the write buffer through the crate's splice
/// (`append_column`: 8 KiB at a time through the stack) alone, not first
/// into one more chunk-sized buffer: the writer thread's copies were a
/// fifth of a `none` recording's CPU, three per byte, now two.
#[derive(Default)]
struct ChunkBytes {
    /// The chunk, in order.
    parts: Vec<Bytes>,
    /// Bytes written since the last kept body.
    pending: Vec<u8>,
    /// Page bodies still to come, in order.
    bodies: std::collections::VecDeque<Bytes>,
    /// Bytes in all.
    len: u64,
}

impl ChunkBytes {
    /// A sink that will keep `pages`' bodies when they come whole.
    fn expecting(pages: &[CompressedPage]) -> Self {
        Self {
            bodies: pages
                .iter()
                .map(|p| p.compressed_page().buffer().clone())
                .collect(),
            ..Self::default()
        }
    }

    /// Moves the bytes written since the last body into the chunk.
    fn seal(&mut self) {
        if !self.pending.is_empty() {
            self.parts
                .push(Bytes::from(std::mem::take(&mut self.pending)));
        }
    }
}

impl std::io::Write for ChunkBytes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Bodies are distinct buffers, so address and length name one.
        // Bodies before it went through the buffer with their headers
        // (small pages) and were copied.
        let body = self
            .bodies
            .iter()
            .position(|b| !b.is_empty() && b.as_ptr() == buf.as_ptr() && b.len() == buf.len());
        match body {
            Some(k) => {
                self.seal();
                self.bodies.drain(..k);
                self.parts.push(self.bodies.pop_front().expect("the body"));
            }
            None => self.pending.extend_from_slice(buf),
        }
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl parquet::file::reader::Length for ChunkBytes {
    fn len(&self) -> u64 {
        self.len
    }
}

impl parquet::file::reader::ChunkReader for ChunkBytes {
    type T = PartsReader;

    fn get_read(&self, start: u64) -> parquet::errors::Result<PartsReader> {
        let mut r = PartsReader {
            parts: self.parts.clone().into(),
        };
        std::io::copy(
            &mut std::io::Read::take(&mut r, start),
            &mut std::io::sink(),
        )?;
        Ok(r)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let mut out = Vec::with_capacity(length);
        std::io::Read::read_to_end(
            &mut std::io::Read::take(self.get_read(start)?, length as u64),
            &mut out,
        )?;
        Ok(out.into())
    }
}

/// Reads a [`ChunkBytes`]'s parts in order.
struct PartsReader {
    parts: std::collections::VecDeque<Bytes>,
}

impl std::io::Read for PartsReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(p) = self.parts.front_mut() {
            if p.is_empty() {
                self.parts.pop_front();
                continue;
            }
            let n = p.len().min(buf.len());
            buf[..n].copy_from_slice(&p[..n]);
            bytes::Buf::advance(p, n);
            return Ok(n);
        }
        Ok(0)
    }
}

/// One page to encode: a monotonic column or a slice of a channel.
#[derive(Clone, Debug)]
enum Job {
    Seq,
    Time,
    Channel(usize, std::ops::Range<usize>),
}

/// A chunk encoded: every page of one row group, ready to be written.
pub struct RowGroup {
    /// Segment the rows belong to.
    pub segment: u64,
    /// The blocks the rows came from.
    pub blocks: Vec<BlockRec>,
    /// `seq`, `t_ns`, then each channel's pages.
    pub pages: Vec<CompressedPage>,
    /// Rows.
    pub rows: usize,
    /// Codec of every page.
    pub codec: PageCodec,
    /// Time the encoders took: `auto`'s busy signal.
    pub encoding_time: std::time::Duration,
    /// The snapshot window the rows belong to (triggered runs).
    pub window: Option<hsdaq_format::manifest::Window>,
    /// Scans lost after the rows and before their window's end.
    pub lost_after: u64,
}

/// A page encoder: one per encoder thread, its compressor kept across row
/// groups and segments so zstd contexts are made once. A row group is
/// encoded on one core; the pipeline runs one encoder per core, each on its
/// own chunk, so no core waits for another at a row group's end.
#[derive(Default)]
pub struct PageEncoder {
    compressor: Compressor,
}

impl PageEncoder {
    /// Encodes and compresses every page of `chunk` with `enc` for the
    /// channels and `codec`.
    pub fn encode(
        &mut self,
        chunk: &Chunk,
        enc: ChannelEncoding,
        codec: PageCodec,
    ) -> std::io::Result<RowGroup> {
        let rows = chunk.rows();
        let t = std::time::Instant::now();
        let mut pages = Vec::new();
        if rows > 0 {
            let mut jobs = vec![Job::Seq, Job::Time];
            for c in 0..chunk.columns.len() {
                jobs.extend(pages::page_ranges(rows).map(|r| Job::Channel(c, r)));
            }
            for job in &jobs {
                pages.push(encode_job(chunk, job, enc, codec, &mut self.compressor)?);
            }
        }
        Ok(RowGroup {
            segment: chunk.segment,
            blocks: chunk.blocks.clone(),
            pages,
            rows,
            codec,
            encoding_time: t.elapsed(),
            window: chunk.window,
            lost_after: chunk.lost_after,
        })
    }
}

/// Builds one compressed data page.
fn encode_job(
    chunk: &Chunk,
    job: &Job,
    enc: ChannelEncoding,
    codec: PageCodec,
    comp: &mut Compressor,
) -> std::io::Result<CompressedPage> {
    let rows = chunk.rows();
    let mut body = Vec::new();
    let (values, encoding) = match job {
        Job::Seq | Job::Time => {
            let mut cursor = pages::MonoCursor::new(&chunk.blocks, matches!(job, Job::Time));
            pages::dbp_int64(rows, |w| cursor.window(w), &mut body);
            (rows, Encoding::DELTA_BINARY_PACKED)
        }
        Job::Channel(c, range) => {
            pages::channel_page(&chunk.columns[*c], range.clone(), enc, &mut body);
            (range.len(), enc.parquet())
        }
    };
    let uncompressed = body.len();
    // Version 1 data pages: required columns carry no level bytes, so the
    // body is the encoded values alone, and every reader we check decodes
    // them (fastparquet 2026.9 misreads INT64 DELTA_BINARY_PACKED in v2
    // pages, even pyarrow's; docs/RECORDINGS.md, readers).
    let page = Page::DataPage {
        buf: comp.compress(codec, body)?,
        num_values: values as u32,
        encoding,
        def_level_encoding: Encoding::RLE,
        rep_level_encoding: Encoding::RLE,
        statistics: None,
    };
    Ok(CompressedPage::new(page, uncompressed))
}

/// Rows of the block table buffered before they become a row group.
const BLOCK_TABLE_FLUSH: usize = 64 * 1024;

/// An open segment.
pub struct SegmentWriter {
    index: u64,
    dir: PathBuf,
    samples: ParquetFile,
    blocks: ParquetFile,
    block_buf: Vec<BlockRec>,
    first_seq: Option<i64>,
    last_seq: i64,
    rows: u64,
    blocks_written: u64,
    lost: u64,
    gaps: Vec<Gap>,
    window: Option<hsdaq_format::manifest::Window>,
    lost_after: u64,
}

fn partial(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".partial");
    p.into()
}

impl SegmentWriter {
    /// Creates `segment-INDEX.parquet.partial` (and its block table) in `dir`.
    pub fn create(dir: &Path, index: u64, fmt: &SegmentFormat) -> Result<Self> {
        let name = segment_name(index);
        let open = |path: PathBuf,
                    schema: &Arc<Type>,
                    props: &Arc<WriterProperties>,
                    buffer: usize|
         -> Result<ParquetFile> {
            let f = DirectWriter::create(&path, buffer)
                .with_context(|| format!("cannot create {}", path.display()))?;
            SerializedFileWriter::new(f, schema.clone(), props.clone())
                .with_context(|| format!("cannot start {}", path.display()))
        };
        let samples = open(
            partial(&dir.join(&name)),
            &fmt.samples_schema,
            &fmt.samples_props,
            WRITE_BUFFER,
        )?;
        let blocks = open(
            partial(&dir.join("blocks").join(&name)),
            &fmt.blocks_schema,
            &fmt.blocks_props,
            64 << 10,
        )?;
        Ok(Self {
            index,
            dir: dir.to_path_buf(),
            samples,
            blocks,
            block_buf: Vec::new(),
            first_seq: None,
            last_seq: -1,
            rows: 0,
            blocks_written: 0,
            lost: 0,
            gaps: Vec::new(),
            window: None,
            lost_after: 0,
        })
    }

    /// Segment number.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Writes an encoded row group (its pages in column order) and records
    /// its blocks and gaps.
    pub fn write_row_group(&mut self, rg: RowGroup) -> Result<()> {
        let RowGroup {
            blocks,
            pages,
            rows,
            codec,
            window,
            lost_after,
            ..
        } = rg;
        self.lost_after += lost_after;
        if rows == 0 {
            return Ok(());
        }
        self.window = self.window.or(window);
        for b in &blocks {
            if b.lost_before > 0 {
                self.gaps.push(Gap {
                    at_seq: b.first_seq as i64,
                    lost: b.lost_before,
                    kind: hsdaq_abi::layout::GapKind::of_flags(b.flags).into(),
                });
                self.lost += b.lost_before;
            }
        }
        let (head, tail) = (blocks[0], *blocks.last().expect("blocks"));
        let first = head.seq_of(0);
        let last = tail.seq_of(tail.scans as u64 - 1);
        self.first_seq.get_or_insert(first);
        self.last_seq = last;
        self.rows += rows as u64;

        let mut pages = pages.into_iter();
        let schema = self.samples.schema_descr();
        let descrs: Vec<_> = (0..schema.num_columns())
            .map(|i| schema.column(i))
            .collect();
        let mut w = self.samples.next_row_group()?;
        // seq and t_ns: one page each, with min/max for readers' pruning.
        let last_t = tail.time_of(tail.scans as u64 - 1);
        let stats = [
            Statistics::int64(Some(first), Some(last), None, Some(0), false),
            Statistics::int64(Some(head.time_of(0)), Some(last_t), None, Some(0), false),
        ];
        for (descr, s) in descrs.iter().zip(stats) {
            let page = pages.next().expect("mono page");
            append_pages(&mut w, descr.clone(), vec![page], rows, codec, Some(s))?;
        }
        let per_channel = pages::page_ranges(rows).count();
        for descr in &descrs[2..] {
            let col: Vec<_> = pages.by_ref().take(per_channel).collect();
            append_pages(&mut w, descr.clone(), col, rows, codec, None)?;
        }
        w.close()?;
        self.blocks_written += blocks.len() as u64;
        self.block_buf.extend_from_slice(&blocks);
        if self.block_buf.len() >= BLOCK_TABLE_FLUSH {
            self.flush_blocks()?;
        }
        Ok(())
    }

    /// Bytes of the samples file so far.
    pub fn bytes_written(&self) -> u64 {
        self.samples.bytes_written() as u64
    }
    fn flush_blocks(&mut self) -> Result<()> {
        if self.block_buf.is_empty() {
            return Ok(());
        }
        let b = &self.block_buf;
        let i64s: [Vec<i64>; 4] = [
            b.iter().map(|r| r.first_seq as i64).collect(),
            b.iter().map(|r| r.t_ns as i64).collect(),
            b.iter().map(|r| r.arrival_ns as i64).collect(),
            b.iter().map(|r| r.lost_before as i64).collect(),
        ];
        let scans: Vec<i32> = b.iter().map(|r| r.scans as i32).collect();
        let fill: Vec<i32> = b.iter().map(|r| r.ring_fill_permille as i32).collect();
        let flags: Vec<i32> = b.iter().map(|r| r.flags as i32).collect();
        let mut rg = self.blocks.next_row_group()?;
        let mut i = 0;
        while let Some(mut col) = rg.next_column()? {
            match i {
                0 => col.typed::<Int64Type>().write_batch(&i64s[0], None, None)?,
                1 => col.typed::<Int32Type>().write_batch(&scans, None, None)?,
                2 => col.typed::<Int64Type>().write_batch(&i64s[1], None, None)?,
                3 => col.typed::<Int64Type>().write_batch(&i64s[2], None, None)?,
                4 => col.typed::<Int64Type>().write_batch(&i64s[3], None, None)?,
                5 => col.typed::<Int32Type>().write_batch(&fill, None, None)?,
                _ => col.typed::<Int32Type>().write_batch(&flags, None, None)?,
            };
            col.close()?;
            i += 1;
        }
        rg.close()?;
        self.block_buf.clear();
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Finishes both files (footers carrying `manifest`, the run's manifest
    /// without its segment list, which grows with the run: the segment's
    /// own record is stored beside it) and hands them
    /// over as a [`Sealed`] segment, still named `.partial`: making it
    /// durable and visible is [`Sealed::commit`]'s job, off the encoder's
    /// path.
    /// `clock` holds the clock-correlation rows of this segment's samples
    /// (`hsdaq_format::clock`), written beside it and made durable with it.
    pub fn seal(self, manifest: &Manifest, clock: &[ClockSample]) -> Result<Sealed> {
        let (dir, name) = (self.dir.clone(), segment_name(self.index));
        let r = self.finish(manifest, clock);
        if r.is_err() {
            // An unfinished file must not stay behind looking like data.
            let _ = std::fs::remove_file(partial(&dir.join(&name)));
            let _ = std::fs::remove_file(partial(&dir.join("blocks").join(&name)));
            let _ = std::fs::remove_file(partial(&clock::file_for(&dir, &name)));
        }
        r
    }

    fn finish(mut self, manifest: &Manifest, clock_rows: &[ClockSample]) -> Result<Sealed> {
        self.flush_blocks()?;
        let name = segment_name(self.index);
        let info = SegmentInfo {
            index: self.index,
            file: name.clone(),
            first_seq: self.first_seq.unwrap_or(0),
            last_seq: self.last_seq,
            rows: self.rows,
            lost: self.lost,
            gaps: std::mem::take(&mut self.gaps),
            blocks: self.blocks_written,
            bytes: 0,
            close_ms: None,
            window: self.window,
            lost_after: self.lost_after,
        };
        anyhow::ensure!(
            manifest.segments.is_empty(),
            "a segment's copy lists no segments"
        );
        let m = serde_json::to_string(manifest)?;
        let s = serde_json::to_string(&info)?;
        for w in [&mut self.samples, &mut self.blocks] {
            w.append_key_value_metadata(KeyValue::new(KV_MANIFEST.to_string(), m.clone()));
            w.append_key_value_metadata(KeyValue::new(KV_SEGMENT.to_string(), s.clone()));
        }
        let into_file = |w: ParquetFile| -> Result<File> { Ok(w.into_inner()?.finish()?) };
        let blocks = into_file(self.blocks)?;
        let samples = into_file(self.samples)?;
        let mut files = vec![
            (samples, self.dir.join(&name)),
            (blocks, self.dir.join("blocks").join(&name)),
        ];
        if !clock_rows.is_empty() {
            let path = clock::file_for(&self.dir, &name);
            std::fs::create_dir_all(path.parent().expect("clock/ folder"))
                .with_context(|| format!("cannot create {}", clock::CLOCK_DIR))?;
            files.push((clock::write(&partial(&path), clock_rows)?, path));
        }
        Ok(Sealed { info, files })
    }

    /// Abandons the segment: removes the partial files (after an error).
    pub fn abandon(self) {
        let name = segment_name(self.index);
        drop(self.samples);
        drop(self.blocks);
        let _ = std::fs::remove_file(partial(&self.dir.join(&name)));
        let _ = std::fs::remove_file(partial(&self.dir.join("blocks").join(&name)));
    }
}

/// A segment whose files are complete but not yet durable or visible.
pub struct Sealed {
    info: SegmentInfo,
    /// Samples, the block table, and the clock table when it has rows,
    /// each with its final path.
    files: Vec<(File, PathBuf)>,
}

impl Sealed {
    /// The segment's record (its `bytes` is filled in by `commit`).
    pub fn info(&self) -> &SegmentInfo {
        &self.info
    }

    /// Makes the segment durable, then visible: its files are fsynced
    /// before they are renamed, and the folders after, so a name without
    /// `.partial` always means data on the disk. `at` is called at each
    /// [`Checkpoint`] on the way.
    pub fn commit(self, at: Hook) -> Result<SegmentInfo> {
        let r = (|| -> Result<u64> {
            for (f, p) in &self.files {
                f.sync_all()
                    .with_context(|| format!("cannot sync {}", partial(p).display()))?;
            }
            at(Checkpoint::Sync);
            // The tables first (clock, then blocks), the samples last: a
            // visible segment always has its tables.
            for (_, p) in self.files.iter().rev() {
                if p == &self.files[0].1 {
                    at(Checkpoint::Rename);
                }
                std::fs::rename(partial(p), p)
                    .with_context(|| format!("cannot rename {}", partial(p).display()))?;
            }
            for (_, p) in self.files.iter().rev() {
                sync_dir(p.parent().expect("a file in the run folder"))?;
            }
            Ok(self.files[0].0.metadata()?.len())
        })();
        match r {
            Ok(bytes) => Ok(SegmentInfo { bytes, ..self.info }),
            Err(e) => {
                for (_, p) in &self.files {
                    let _ = std::fs::remove_file(partial(p));
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::ChunkReader;
    use std::io::Read;

    fn page(len: usize, seed: u8) -> CompressedPage {
        let body: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect();
        let page = Page::DataPage {
            buf: Bytes::from(body),
            num_values: len as u32,
            encoding: Encoding::PLAIN,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        CompressedPage::new(page, len)
    }

    /// Large bodies are kept as the encoder's buffers, small ones copied
    /// with their headers, and the chunk reads back byte for byte as the
    /// page writer laid it out into a plain buffer.
    #[test]
    fn chunk_bytes_keep_large_bodies_and_read_back_as_written() {
        // Small, large, two large of one length, and an empty one.
        let sizes = [3usize, 100_000, 10, 20, 70_000, 70_000, 0, 9000, 1];
        let pages = || sizes.iter().enumerate().map(|(k, &n)| page(n, k as u8));
        let mut plain = TrackedWrite::new(Vec::new());
        {
            let mut w = SerializedPageWriter::new(&mut plain);
            for p in pages() {
                w.write_page(p).unwrap();
            }
            w.close().unwrap();
        }
        let plain = plain.into_inner().unwrap();

        let pages: Vec<_> = pages().collect();
        let kept: Vec<*const u8> = pages
            .iter()
            .filter(|p| p.data().len() >= 8192)
            .map(|p| p.data().as_ptr())
            .collect();
        let mut sink = TrackedWrite::new(ChunkBytes::expecting(&pages));
        {
            let mut w = SerializedPageWriter::new(&mut sink);
            for p in pages {
                w.write_page(p).unwrap();
            }
            w.close().unwrap();
        }
        let mut chunk = sink.into_inner().unwrap();
        chunk.seal();
        assert_eq!(chunk.len, plain.len() as u64);
        for ptr in kept {
            assert!(
                chunk.parts.iter().any(|p| p.as_ptr() == ptr),
                "a large body was copied"
            );
        }
        let mut back = Vec::new();
        chunk.get_read(0).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, plain);
        let mid = chunk.get_bytes(5, 100_050).unwrap();
        assert_eq!(&mid[..], &plain[5..100_055]);
    }
}
