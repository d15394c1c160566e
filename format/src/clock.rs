//! The clock-correlation table: when each sample happened, on every clock
//! the recorder can read.
//!
//! Each closed segment has `clock/segment-NNNNNN.parquet` beside it, made
//! durable with the segment (fsynced and renamed before it), so a run
//! recovered after a crash keeps its table up to its last closed segment.
//! The recorder adds a row at the first block of every segment, once a
//! second, and at the last block of the run. A row pairs a sample index
//! (`seq`) with the producer's CLOCK_MONOTONIC stamp of that sample (the
//! block header's), and that instant on CLOCK_REALTIME and CLOCK_TAI (and a
//! PTP hardware clock when one was named), from offsets read as
//! `MONOTONIC, REALTIME, TAI[, PHC], MONOTONIC`: half the time between the
//! two monotonic reads bounds each offset (`uncertainty_ns`).
//!
//! [`Timebase`] maps any `seq` to a time on any of these clocks for readers
//! in Rust; in Python, `pl.read_parquet("RUN/clock/*.parquet")` and a
//! linear interpolation do the same (README, "When did sample N happen").

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use parquet::basic::{LogicalType, Repetition, Type as PhysicalType};
use parquet::column::reader::ColumnReader;
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

/// The table's folder in a run.
pub const CLOCK_DIR: &str = "clock";

/// The clocks a [`Timebase`] maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// CLOCK_MONOTONIC: the producer's stamps.
    Monotonic,
    /// CLOCK_REALTIME: UTC as this machine keeps it.
    Realtime,
    /// CLOCK_TAI (equal to REALTIME where the kernel's TAI offset is unset:
    /// see [`ClockSample::tai_offset_s`]).
    Tai,
    /// The PTP hardware clock named with `--phc`.
    Phc,
    /// The source's own time stamps (a VRT/DIFI digitizer's packet
    /// timestamps): [`ClockSample::source_ns`].
    Source,
}

impl Clock {
    /// Every clock, in the table's column order.
    pub const ALL: [Clock; 5] = [
        Clock::Monotonic,
        Clock::Realtime,
        Clock::Tai,
        Clock::Phc,
        Clock::Source,
    ];

    /// Its name in reports (`monotonic`, `realtime`, `tai`, `phc`, `source`).
    pub fn name(self) -> &'static str {
        match self {
            Clock::Monotonic => "monotonic",
            Clock::Realtime => "realtime",
            Clock::Tai => "tai",
            Clock::Phc => "phc",
            Clock::Source => "source",
        }
    }
}

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClockSample {
    /// The sample index (the stream's own, as in the segments' `seq`).
    pub seq: i64,
    /// CLOCK_MONOTONIC of that sample: the producer's stamp.
    pub mono_ns: i64,
    /// CLOCK_REALTIME of that sample (ns since the Unix epoch, UTC).
    pub realtime_ns: i64,
    /// CLOCK_TAI of that sample.
    pub tai_ns: i64,
    /// The PTP hardware clock's time of that sample, when one was named.
    pub phc_ns: Option<i64>,
    /// CLOCK_MONOTONIC when the offsets were read (mid-point of the
    /// bracket).
    pub read_mono_ns: i64,
    /// Half the bracket: each offset is known within ± this.
    pub uncertainty_ns: i64,
    /// The kernel's view of the clock's discipline (`adjtimex`):
    /// `synchronized`, `unsynchronized` or `unknown`.
    pub sync: String,
    /// The kernel's estimated error of REALTIME (adjtimex `esterror`),
    /// when synchronized.
    pub sync_esterror_ns: Option<i64>,
    /// The kernel's maximum error of REALTIME (adjtimex `maxerror`).
    pub sync_maxerror_ns: Option<i64>,
    /// TAI − UTC as the kernel holds it (0: not set, so CLOCK_TAI reads as
    /// UTC on this machine).
    pub tai_offset_s: i64,
    /// The source's own time of that sample (ns in its epoch, e.g. UTC or
    /// GPS seconds of a VRT stream), from its latest stamped packet and the
    /// nominal period; `manifest.json` `stream.source_clock` says what it
    /// is. Absent for sources without time stamps, and in tables written
    /// before this column existed.
    #[serde(default)]
    pub source_ns: Option<i64>,
}

fn column(name: &str, t: PhysicalType, rep: Repetition, logical: Option<LogicalType>) -> Arc<Type> {
    Arc::new(
        Type::primitive_type_builder(name, t)
            .with_repetition(rep)
            .with_logical_type(logical)
            .build()
            .expect("valid primitive column"),
    )
}

/// The columns, in file order; `source_ns` only in a table that has a
/// source time (so readers from before it still read every other table).
fn schema(with_source: bool) -> Arc<Type> {
    const OPTIONAL: Repetition = Repetition::OPTIONAL;
    const REQUIRED: Repetition = Repetition::REQUIRED;
    let i64s = |n: &str, r| column(n, PhysicalType::INT64, r, None);
    let fields = vec![
        i64s("seq", REQUIRED),
        i64s("mono_ns", REQUIRED),
        i64s("realtime_ns", REQUIRED),
        i64s("tai_ns", REQUIRED),
        i64s("phc_ns", OPTIONAL),
        i64s("read_mono_ns", REQUIRED),
        i64s("uncertainty_ns", REQUIRED),
        column(
            "sync",
            PhysicalType::BYTE_ARRAY,
            REQUIRED,
            Some(LogicalType::String),
        ),
        i64s("sync_esterror_ns", OPTIONAL),
        i64s("sync_maxerror_ns", OPTIONAL),
        i64s("tai_offset_s", REQUIRED),
    ];
    let fields = if with_source {
        fields
            .into_iter()
            .chain([i64s("source_ns", OPTIONAL)])
            .collect()
    } else {
        fields
    };
    Arc::new(
        Type::group_type_builder("hsdaq_clock")
            .with_fields(fields)
            .build()
            .expect("valid schema"),
    )
}

/// The table's file for segment `name` (`segment-NNNNNN.parquet`).
pub fn file_for(run: &Path, segment_name: &str) -> PathBuf {
    run.join(CLOCK_DIR).join(segment_name)
}

/// Writes `rows` as one Parquet file (uncompressed: a few rows a second)
/// and returns it, not yet fsynced.
pub fn write(path: &Path, rows: &[ClockSample]) -> Result<File> {
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let props = Arc::new(WriterProperties::builder().build());
    let with_source = rows.iter().any(|r| r.source_ns.is_some());
    let mut w = SerializedFileWriter::new(f, schema(with_source), props)?;
    let mut rg = w.next_row_group()?;
    let req = |get: fn(&ClockSample) -> i64| rows.iter().map(get).collect::<Vec<i64>>();
    let opt = |get: fn(&ClockSample) -> Option<i64>| {
        let vals: Vec<i64> = rows.iter().filter_map(get).collect();
        let defs: Vec<i16> = rows.iter().map(|r| get(r).is_some() as i16).collect();
        (vals, defs)
    };
    let mut i = 0;
    while let Some(mut col) = rg.next_column()? {
        let (vals, defs) = match i {
            0 => (req(|r| r.seq), None),
            1 => (req(|r| r.mono_ns), None),
            2 => (req(|r| r.realtime_ns), None),
            3 => (req(|r| r.tai_ns), None),
            4 => opt(|r| r.phc_ns).map_defs(),
            5 => (req(|r| r.read_mono_ns), None),
            6 => (req(|r| r.uncertainty_ns), None),
            7 => {
                let s: Vec<ByteArray> = rows
                    .iter()
                    .map(|r| ByteArray::from(r.sync.as_str()))
                    .collect();
                col.typed::<ByteArrayType>().write_batch(&s, None, None)?;
                col.close()?;
                i += 1;
                continue;
            }
            8 => opt(|r| r.sync_esterror_ns).map_defs(),
            9 => opt(|r| r.sync_maxerror_ns).map_defs(),
            10 => (req(|r| r.tai_offset_s), None),
            _ => opt(|r| r.source_ns).map_defs(),
        };
        col.typed::<Int64Type>()
            .write_batch(&vals, defs.as_deref(), None)?;
        col.close()?;
        i += 1;
    }
    rg.close()?;
    Ok(w.into_inner()?)
}

/// `(values, def levels)` as `write_batch` takes them.
trait MapDefs {
    fn map_defs(self) -> (Vec<i64>, Option<Vec<i16>>);
}

impl MapDefs for (Vec<i64>, Vec<i16>) {
    fn map_defs(self) -> (Vec<i64>, Option<Vec<i16>>) {
        (self.0, Some(self.1))
    }
}

/// Reads one clock file.
pub fn read_file(path: &Path) -> Result<Vec<ClockSample>> {
    let r = SerializedFileReader::try_from(
        File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    )
    .with_context(|| format!("{} is not a readable Parquet file", path.display()))?;
    let mut out = Vec::new();
    for g in 0..r.num_row_groups() {
        let rg = r.get_row_group(g)?;
        let n = rg.metadata().num_rows() as usize;
        let mut i64_cols: Vec<Vec<Option<i64>>> = Vec::new();
        let mut sync = Vec::new();
        for c in 0..rg.num_columns() {
            match rg.get_column_reader(c)? {
                ColumnReader::Int64ColumnReader(mut cr) => {
                    let (mut v, mut d) = (Vec::with_capacity(n), Vec::with_capacity(n));
                    cr.read_records(n, Some(&mut d), None, &mut v)?;
                    let mut vals = v.into_iter();
                    let col = if d.is_empty() {
                        vals.map(Some).collect()
                    } else {
                        d.iter()
                            .map(|&l| if l > 0 { vals.next() } else { None })
                            .collect()
                    };
                    i64_cols.push(col);
                }
                ColumnReader::ByteArrayColumnReader(mut cr) => {
                    let mut v = Vec::with_capacity(n);
                    cr.read_records(n, None, None, &mut v)?;
                    sync = v
                        .iter()
                        .map(|b| String::from_utf8_lossy(b.data()).into_owned())
                        .collect();
                }
                _ => bail!("{}: column {c} is not a clock column", path.display()),
            }
        }
        // Ten before the source's own time was added as an eleventh.
        let cols = i64_cols.len();
        if !(10..=11).contains(&cols) || sync.len() != n || i64_cols.iter().any(|c| c.len() != n) {
            bail!("{}: not a clock table of this version", path.display());
        }
        let req = |c: usize, i: usize| i64_cols[c][i].unwrap_or(0);
        for (i, sync) in sync.into_iter().enumerate() {
            out.push(ClockSample {
                seq: req(0, i),
                mono_ns: req(1, i),
                realtime_ns: req(2, i),
                tai_ns: req(3, i),
                phc_ns: i64_cols[4][i],
                read_mono_ns: req(5, i),
                uncertainty_ns: req(6, i),
                sync,
                sync_esterror_ns: i64_cols[7][i],
                sync_maxerror_ns: i64_cols[8][i],
                tai_offset_s: req(9, i),
                source_ns: i64_cols.get(10).and_then(|c| c[i]),
            });
        }
    }
    Ok(out)
}

/// The whole table of a run: the rows of every closed segment's clock
/// file, in `seq` order (files of segments the folder lacks are left
/// out). Runs recorded before the table existed give an empty table.
pub fn read_run(run: &Path) -> Result<Vec<ClockSample>> {
    let (segments, _) = crate::run::run_files(run)?;
    let mut rows = Vec::new();
    for s in segments {
        let name = s.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let p = file_for(run, name);
        if p.exists() {
            rows.extend(read_file(&p)?);
        }
    }
    rows.sort_by_key(|r| (r.seq, r.read_mono_ns));
    Ok(rows)
}

/// Maps sample indices to times by the table: linear between the rows
/// around `seq`, and by the nearest two rows' slope beyond either end.
#[derive(Clone, Debug)]
pub struct Timebase {
    rows: Vec<ClockSample>,
}

impl Timebase {
    /// A time base from a table (any order); `None` with fewer than two
    /// rows at distinct `seq` (one row has no rate).
    pub fn new(mut rows: Vec<ClockSample>) -> Option<Self> {
        rows.sort_by_key(|r| r.seq);
        rows.dedup_by_key(|r| r.seq);
        (rows.len() >= 2).then_some(Self { rows })
    }

    /// The table it was built from, one row per `seq`.
    pub fn rows(&self) -> &[ClockSample] {
        &self.rows
    }

    fn value(r: &ClockSample, clock: Clock) -> Option<i64> {
        match clock {
            Clock::Monotonic => Some(r.mono_ns),
            Clock::Realtime => Some(r.realtime_ns),
            Clock::Tai => Some(r.tai_ns),
            Clock::Phc => r.phc_ns,
            Clock::Source => r.source_ns,
        }
    }

    /// The two rows whose line maps `seq`.
    fn around(&self, seq: i64) -> (&ClockSample, &ClockSample) {
        let i = self.rows.partition_point(|r| r.seq <= seq);
        let i = i.clamp(1, self.rows.len() - 1);
        (&self.rows[i - 1], &self.rows[i])
    }

    /// Sample `seq`'s time on `clock`, ns, rounded to the nearest (None:
    /// that clock was not read). Computed in integers: an f64 holds a
    /// REALTIME of ~1.8e18 ns only to 256 ns.
    pub fn time_ns(&self, seq: i64, clock: Clock) -> Option<i64> {
        let (a, b) = self.around(seq);
        let (ta, tb) = (
            Self::value(a, clock)? as i128,
            Self::value(b, clock)? as i128,
        );
        let (num, den) = ((seq - a.seq) as i128 * (tb - ta), (b.seq - a.seq) as i128);
        // Rounded to nearest, halves away from zero.
        let step = (2 * num + num.signum() * den) / (2 * den);
        i64::try_from(ta + step).ok()
    }

    /// How well `time_ns(seq, clock)` is known against the producer's
    /// monotonic stamps: the larger offset uncertainty of the two rows
    /// used (0 for CLOCK_MONOTONIC itself).
    pub fn uncertainty_ns(&self, seq: i64, clock: Clock) -> i64 {
        if clock == Clock::Monotonic {
            return 0;
        }
        let (a, b) = self.around(seq);
        a.uncertainty_ns.max(b.uncertainty_ns)
    }

    /// The sample rate measured against `clock`: the least-squares slope
    /// of `seq` over the clock's seconds (None: that clock was not read).
    pub fn rate_hz(&self, clock: Clock) -> Option<f64> {
        let pts: Vec<(f64, f64)> = self
            .rows
            .iter()
            .map(|r| {
                Some((
                    (Self::value(r, clock)? - Self::value(&self.rows[0], clock)?) as f64 * 1e-9,
                    (r.seq - self.rows[0].seq) as f64,
                ))
            })
            .collect::<Option<_>>()?;
        let n = pts.len() as f64;
        let (mx, my) = pts
            .iter()
            .fold((0.0, 0.0), |(x, y), p| (x + p.0 / n, y + p.1 / n));
        let (sxy, sxx) = pts.iter().fold((0.0, 0.0), |(a, b), p| {
            (a + (p.0 - mx) * (p.1 - my), b + (p.0 - mx) * (p.0 - mx))
        });
        (sxx > 0.0).then(|| sxy / sxx)
    }

    /// How far the rate against `clock` moved over the run, ppm: the
    /// first half's rate against the second half's (None with fewer than
    /// four rows or without that clock).
    pub fn drift_ppm(&self, clock: Clock) -> Option<f64> {
        if self.rows.len() < 4 {
            return None;
        }
        let mid = self.rows.len() / 2;
        let first = Timebase::new(self.rows[..=mid].to_vec())?.rate_hz(clock)?;
        let second = Timebase::new(self.rows[mid..].to_vec())?.rate_hz(clock)?;
        Some((second / first - 1.0) * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, mono: i64, offset: i64) -> ClockSample {
        ClockSample {
            seq,
            mono_ns: mono,
            realtime_ns: mono + offset,
            tai_ns: mono + offset + 37_000_000_000,
            phc_ns: None,
            source_ns: None,
            read_mono_ns: mono,
            uncertainty_ns: 100 + seq % 7,
            sync: "unknown".into(),
            sync_esterror_ns: None,
            sync_maxerror_ns: Some(16_000_000),
            tai_offset_s: 37,
        }
    }

    #[test]
    fn maps_between_and_beyond_rows() {
        // 1 kHz against MONOTONIC; REALTIME steps 1 µs ahead over the run.
        let rows = vec![
            row(0, 0, 1_000),
            row(1000, 1_000_000_000, 2_000),
            row(3000, 3_000_000_000, 2_000),
        ];
        let tb = Timebase::new(rows).expect("two rows");
        assert_eq!(tb.time_ns(500, Clock::Monotonic), Some(500_000_000));
        assert_eq!(tb.time_ns(500, Clock::Realtime), Some(500_001_500));
        assert_eq!(
            tb.time_ns(2000, Clock::Tai),
            Some(2_000_000_000 + 2_000 + 37_000_000_000)
        );
        // Beyond the ends: the nearest pair's line.
        assert_eq!(tb.time_ns(-1000, Clock::Monotonic), Some(-1_000_000_000));
        assert_eq!(tb.time_ns(4000, Clock::Monotonic), Some(4_000_000_000));
        // Today's REALTIME, to the nanosecond (an f64 would round to 256 ns).
        let now = 1_796_000_000_123_456_789;
        let today = Timebase::new(vec![row(0, 0, now), row(3, 3_000, now)]).unwrap();
        assert_eq!(today.time_ns(1, Clock::Realtime), Some(now + 1_000));
        assert_eq!(tb.time_ns(10, Clock::Phc), None);
        assert_eq!(tb.uncertainty_ns(1500, Clock::Realtime), 106);
        assert_eq!(tb.uncertainty_ns(1500, Clock::Monotonic), 0);
        let rate = tb.rate_hz(Clock::Monotonic).expect("rate");
        assert!((rate - 1000.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn drift_is_the_change_of_rate() {
        // 1000 Hz for 10 s, then 1000.1 Hz (100 ppm faster) for 10 s.
        let mut rows = Vec::new();
        for s in 0..=10 {
            rows.push(row(s * 1000, s * 1_000_000_000, 0));
        }
        for s in 1..=10 {
            rows.push(row(10_000 + s * 1000 + s / 10, (10 + s) * 1_000_000_000, 0));
        }
        let tb = Timebase::new(rows).expect("rows");
        let d = tb.drift_ppm(Clock::Monotonic).expect("drift");
        assert!(d > 5.0 && d < 150.0, "{d}");
        assert!(Timebase::new(vec![row(0, 0, 0)]).is_none());
    }

    #[test]
    fn round_trips_through_parquet() {
        let dir = std::env::temp_dir().join(format!("hsdaq-clock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.parquet");
        let mut rows: Vec<_> = (0..5).map(|i| row(i * 10, i * 1000, 5)).collect();
        rows[2].phc_ns = Some(42);
        rows[3].sync = "synchronized".into();
        rows[3].sync_esterror_ns = Some(1234);
        rows[4].sync_maxerror_ns = None;
        write(&p, &rows).unwrap().sync_all().unwrap();
        assert_eq!(read_file(&p).unwrap(), rows);
        let columns = |p: &Path| {
            let r = SerializedFileReader::try_from(File::open(p).unwrap()).unwrap();
            r.metadata().file_metadata().schema_descr().num_columns()
        };
        // No source time: the eleven columns every reader knows.
        assert_eq!(columns(&p), 11);
        rows[1].source_ns = Some(-7);
        write(&p, &rows).unwrap().sync_all().unwrap();
        assert_eq!(read_file(&p).unwrap(), rows);
        assert_eq!(columns(&p), 12);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
