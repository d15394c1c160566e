//! Parquet segment files: one row group per column chunk, written as
//! `*.partial` and renamed only once complete, so a killed recorder never
//! leaves a file that looks whole but is not.
//!
//! Columns: `seq` (i64 sample index, DELTA_BINARY_PACKED), `t_ns` (i64
//! CLOCK_MONOTONIC, DELTA_BINARY_PACKED), then one INT32 column per channel
//! (BYTE_STREAM_SPLIT; logical type INT(16) for i16 streams). Dictionaries
//! and per-page statistics are off: they cost per-value work and never pay
//! for noisy sample data. Each segment has a companion block table in
//! `blocks/` (one row per ring block: arrival time, loss, ring fill).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use parquet::basic::{Compression, Encoding, LogicalType, Repetition, Type as PhysicalType};
use parquet::column::page::PageWriter;
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::{Int32Type, Int64Type};
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::statistics::Statistics;
use parquet::file::writer::SerializedFileWriter;
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::{ColumnPath, Type};

use crate::manifest::{Gap, Manifest, SegmentInfo, KV_MANIFEST, KV_SEGMENT};
use crate::pages::{self, Compressor};

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
    /// CLOCK_MONOTONIC when the drain read the block.
    pub arrival_ns: u64,
    /// Ring fill when read, per mille.
    pub ring_fill_permille: u32,
}

/// A transposed column chunk: becomes one row group.
///
/// Each channel is kept as its little-endian byte streams (2 for i16, 4 for
/// i32): exactly the layout of a BYTE_STREAM_SPLIT page, so encoding is
/// copying (see `pages`).
pub struct Chunk {
    /// Segment this chunk belongs to.
    pub segment: u64,
    /// `streams[channel][byte]`, each `rows` long.
    pub streams: Vec<Vec<Vec<u8>>>,
    /// The blocks the rows came from, in order.
    pub blocks: Vec<BlockRec>,
}

impl Chunk {
    /// An empty chunk with room for `rows` rows of `channels` values of `width` bytes.
    pub fn with_capacity(channels: usize, width: usize, rows: usize) -> Self {
        Self {
            segment: 0,
            streams: (0..channels)
                .map(|_| (0..width).map(|_| Vec::with_capacity(rows)).collect())
                .collect(),
            blocks: Vec::with_capacity(rows / 16 + 1),
        }
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.streams
            .first()
            .and_then(|c| c.first())
            .map_or(0, Vec::len)
    }

    /// Empties the chunk, keeping its allocations.
    pub fn clear(&mut self) {
        self.streams.iter_mut().flatten().for_each(Vec::clear);
        self.blocks.clear();
    }
}

/// Codec choice.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// No compression.
    None,
    /// LZ4 (raw, Parquet LZ4_RAW).
    Lz4,
    /// Zstandard level 1.
    Zstd,
}

impl Codec {
    /// The Parquet codec.
    pub fn parquet(self) -> Compression {
        match self {
            Codec::None => Compression::UNCOMPRESSED,
            Codec::Lz4 => Compression::LZ4_RAW,
            Codec::Zstd => {
                Compression::ZSTD(parquet::basic::ZstdLevel::try_new(1).expect("level 1 is valid"))
            }
        }
    }

    /// Name for manifests and reports.
    pub fn label(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Lz4 => "lz4_raw",
            Codec::Zstd => "zstd(1)",
        }
    }
}

/// Schema and properties shared by every segment of a run.
#[derive(Clone)]
pub struct SegmentFormat {
    codec: Codec,
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

impl SegmentFormat {
    /// Builds the schema for `names` channels of `format`.
    pub fn new(names: &[String], format: hsdaq_abi::Format, codec: Codec) -> Self {
        let int16 = Some(LogicalType::Integer {
            bit_width: 16,
            is_signed: true,
        });
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
        let samples_schema = Arc::new(
            Type::group_type_builder("hsdaq")
                .with_fields(fields)
                .build()
                .expect("valid schema"),
        );
        let mut b = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_2_0)
            .set_compression(codec.parquet())
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::None)
            .set_data_page_size_limit(1 << 20)
            .set_write_batch_size(64 * 1024)
            .set_created_by(format!("hsdaq acquire {}", env!("CARGO_PKG_VERSION")));
        for mono in ["seq", "t_ns"] {
            b = b
                .set_column_encoding(ColumnPath::from(mono), Encoding::DELTA_BINARY_PACKED)
                .set_column_statistics_enabled(ColumnPath::from(mono), EnabledStatistics::Chunk);
        }
        for n in names {
            b = b.set_column_encoding(ColumnPath::from(n.as_str()), Encoding::BYTE_STREAM_SPLIT);
        }
        let block_fields = vec![
            column("seq", PhysicalType::INT64, None),
            column("scans", PhysicalType::INT32, None),
            column("t_ns", PhysicalType::INT64, None),
            column("arrival_ns", PhysicalType::INT64, None),
            column("lost_before", PhysicalType::INT64, None),
            column("ring_fill_permille", PhysicalType::INT32, None),
        ];
        let blocks_schema = Arc::new(
            Type::group_type_builder("hsdaq_blocks")
                .with_fields(block_fields)
                .build()
                .expect("valid schema"),
        );
        let blocks_props = WriterProperties::builder()
            .set_compression(Codec::Zstd.parquet())
            .set_dictionary_enabled(false)
            .set_created_by(format!("hsdaq acquire {}", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            codec,
            samples_schema,
            blocks_schema,
            samples_props: Arc::new(b.build()),
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

/// Writes ready pages as one column chunk of the open row group.
fn append_pages(
    rg: &mut parquet::file::writer::SerializedRowGroupWriter<'_, File>,
    descr: parquet::schema::types::ColumnDescPtr,
    pages: Vec<parquet::column::page::CompressedPage>,
    rows: usize,
    encoding: Encoding,
    compressor: &Compressor,
    stats: Option<Statistics>,
) -> Result<()> {
    let size: usize = pages.iter().map(|p| p.compressed_size() + 64).sum();
    let mut sink = TrackedWrite::new(Vec::with_capacity(size));
    let mut uncompressed = 0i64;
    {
        let mut w = SerializedPageWriter::new(&mut sink);
        for p in pages {
            let spec = w.write_page(p)?;
            uncompressed += spec.uncompressed_size as i64;
        }
        w.close()?;
    }
    let bytes = Bytes::from(sink.into_inner()?);
    let mut meta = ColumnChunkMetaData::builder(descr)
        .set_compression(compressor.parquet_codec())
        .set_encodings(vec![encoding])
        .set_num_values(rows as i64)
        .set_total_compressed_size(bytes.len() as i64)
        .set_total_uncompressed_size(uncompressed)
        .set_data_page_offset(0);
    if let Some(s) = stats {
        meta = meta.set_statistics(s);
    }
    let close = ColumnCloseResult {
        bytes_written: bytes.len() as u64,
        rows_written: rows as u64,
        metadata: meta.build()?,
        bloom_filter: None,
        column_index: None,
        offset_index: None,
    };
    rg.append_column(&bytes, close)?;
    Ok(())
}

/// Rows of the block table buffered before they become a row group.
const BLOCK_TABLE_FLUSH: usize = 64 * 1024;

/// An open segment.
pub struct SegmentWriter {
    index: u64,
    dir: PathBuf,
    samples: SerializedFileWriter<File>,
    blocks: SerializedFileWriter<File>,
    block_buf: Vec<BlockRec>,
    compressor: Compressor,
    body: Vec<u8>,
    mono: Vec<i64>,
    first_seq: Option<i64>,
    last_seq: i64,
    rows: u64,
    blocks_written: u64,
    lost: u64,
    gaps: Vec<Gap>,
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
                    props: &Arc<WriterProperties>|
         -> Result<SerializedFileWriter<File>> {
            let f =
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            SerializedFileWriter::new(f, schema.clone(), props.clone())
                .with_context(|| format!("cannot start {}", path.display()))
        };
        let samples = open(
            partial(&dir.join(&name)),
            &fmt.samples_schema,
            &fmt.samples_props,
        )?;
        let blocks = open(
            partial(&dir.join("blocks").join(&name)),
            &fmt.blocks_schema,
            &fmt.blocks_props,
        )?;
        Ok(Self {
            index,
            dir: dir.to_path_buf(),
            samples,
            blocks,
            block_buf: Vec::new(),
            compressor: Compressor::new(fmt.codec)?,
            body: Vec::new(),
            mono: Vec::new(),
            first_seq: None,
            last_seq: -1,
            rows: 0,
            blocks_written: 0,
            lost: 0,
            gaps: Vec::new(),
        })
    }

    /// Segment number.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Writes a chunk as one row group, every column through the fast page
    /// encoders.
    pub fn write_chunk(&mut self, chunk: &Chunk) -> Result<()> {
        let rows = chunk.rows();
        if rows == 0 {
            return Ok(());
        }
        for b in &chunk.blocks {
            if b.lost_before > 0 {
                self.gaps.push(Gap {
                    at_seq: b.first_seq as i64,
                    lost: b.lost_before,
                });
                self.lost += b.lost_before;
            }
        }
        let first = chunk.blocks[0].first_seq as i64;
        let last = chunk
            .blocks
            .last()
            .map(|b| (b.first_seq + b.scans as u64) as i64 - 1)
            .expect("blocks");
        self.first_seq.get_or_insert(first);
        self.last_seq = last;
        self.rows += rows as u64;
        let schema = self.samples.schema_descr();
        let descrs: Vec<_> = (0..schema.num_columns())
            .map(|i| schema.column(i))
            .collect();
        let mut rg = self.samples.next_row_group()?;
        // seq and t_ns: one DELTA_BINARY_PACKED page each, with min/max.
        for (col, descr) in descrs.iter().take(2).enumerate() {
            if col == 0 {
                pages::fill_seq(&chunk.blocks, &mut self.mono);
            } else {
                pages::fill_t(&chunk.blocks, &mut self.mono);
            }
            let (lo, hi) = (self.mono[0], self.mono[rows - 1]);
            pages::delta_binary_packed(&self.mono, &mut self.body);
            let page = self
                .compressor
                .page(&self.body, rows, Encoding::DELTA_BINARY_PACKED)?;
            let stats = Statistics::int64(Some(lo), Some(hi), None, Some(0), false);
            append_pages(
                &mut rg,
                descr.clone(),
                vec![page],
                rows,
                Encoding::DELTA_BINARY_PACKED,
                &self.compressor,
                Some(stats),
            )?;
        }
        for (c, streams) in chunk.streams.iter().enumerate() {
            let mut pages = Vec::with_capacity(rows.div_ceil(pages::PAGE_VALUES));
            for start in (0..rows).step_by(pages::PAGE_VALUES) {
                let end = (start + pages::PAGE_VALUES).min(rows);
                pages::bss_int32(streams, start..end, &mut self.body);
                pages.push(self.compressor.page(
                    &self.body,
                    end - start,
                    Encoding::BYTE_STREAM_SPLIT,
                )?);
            }
            append_pages(
                &mut rg,
                descrs[2 + c].clone(),
                pages,
                rows,
                Encoding::BYTE_STREAM_SPLIT,
                &self.compressor,
                None,
            )?;
        }
        rg.close()?;
        self.blocks_written += chunk.blocks.len() as u64;
        self.block_buf.extend_from_slice(&chunk.blocks);
        if self.block_buf.len() >= BLOCK_TABLE_FLUSH {
            self.flush_blocks()?;
        }
        Ok(())
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
        let mut rg = self.blocks.next_row_group()?;
        let mut i = 0;
        while let Some(mut col) = rg.next_column()? {
            match i {
                0 => col.typed::<Int64Type>().write_batch(&i64s[0], None, None)?,
                1 => col.typed::<Int32Type>().write_batch(&scans, None, None)?,
                2 => col.typed::<Int64Type>().write_batch(&i64s[1], None, None)?,
                3 => col.typed::<Int64Type>().write_batch(&i64s[2], None, None)?,
                4 => col.typed::<Int64Type>().write_batch(&i64s[3], None, None)?,
                _ => col.typed::<Int32Type>().write_batch(&fill, None, None)?,
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

    /// Finishes both files (footer with the manifest), fsyncs and renames
    /// them into place. Returns the segment's record.
    pub fn close(self, manifest: &Manifest) -> Result<SegmentInfo> {
        let (dir, name) = (self.dir.clone(), segment_name(self.index));
        let r = self.finish(manifest);
        if r.is_err() {
            // An unfinished file must not stay behind looking like data.
            let _ = std::fs::remove_file(partial(&dir.join(&name)));
            let _ = std::fs::remove_file(partial(&dir.join("blocks").join(&name)));
        }
        r
    }

    fn finish(mut self, manifest: &Manifest) -> Result<SegmentInfo> {
        self.flush_blocks()?;
        let name = segment_name(self.index);
        let mut info = SegmentInfo {
            index: self.index,
            file: name.clone(),
            first_seq: self.first_seq.unwrap_or(0),
            last_seq: self.last_seq,
            rows: self.rows,
            lost: self.lost,
            gaps: std::mem::take(&mut self.gaps),
            blocks: self.blocks_written,
            bytes: 0,
        };
        let m = serde_json::to_string(&manifest.for_segment())?;
        let s = serde_json::to_string(&info)?;
        for w in [&mut self.samples, &mut self.blocks] {
            w.append_key_value_metadata(KeyValue::new(KV_MANIFEST.to_string(), m.clone()));
            w.append_key_value_metadata(KeyValue::new(KV_SEGMENT.to_string(), s.clone()));
        }
        self.blocks.close()?;
        self.samples.close()?;
        let final_blocks = self.dir.join("blocks").join(&name);
        let final_samples = self.dir.join(&name);
        for p in [&final_blocks, &final_samples] {
            let tmp = partial(p);
            File::open(&tmp)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("cannot sync {}", tmp.display()))?;
            std::fs::rename(&tmp, p).with_context(|| format!("cannot rename {}", tmp.display()))?;
        }
        info.bytes = std::fs::metadata(&final_samples)?.len();
        Ok(info)
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
