//! Page compression: the codec a user asks for, the concrete codec each
//! column chunk is written with, and a reusable compressor.
//!
//! Parquet records the codec per column chunk, so a recording may change
//! codec between row groups and every reader still opens it: that is what
//! `--compression auto` uses (see `adapt`).

use bytes::Bytes;
use parquet::basic::{Compression, ZstdLevel};

/// The codec asked for on the command line or in a board profile.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// No compression.
    None,
    /// LZ4 (raw, Parquet LZ4_RAW).
    #[value(alias = "lz4_raw")]
    #[serde(alias = "lz4_raw")]
    Lz4,
    /// Zstandard level 1.
    Zstd,
    /// The strongest codec that keeps up with the stream, chosen row group
    /// by row group from the encoder's backlog (like `zstd --adapt`).
    Auto,
}

impl Codec {
    /// The name the user typed (`none`, `lz4`, `zstd`, `auto`): the
    /// manifest's `compression`. The concrete Parquet codec of each row
    /// group (`lz4_raw`, `zstd(1)`) is in `compression_changes`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
            Codec::Auto => "auto",
        }
    }

    /// Name for manifests and reports.
    pub fn label(self) -> &'static str {
        match self {
            Codec::Auto => "auto",
            c => c.first_level().label(),
        }
    }

    /// The concrete codec a run starts with. `auto` starts with the
    /// cheapest, so a board short of CPU loses nothing before the first
    /// signals arrive, and climbs as they allow.
    pub fn first_level(self) -> PageCodec {
        match self {
            Codec::None | Codec::Auto => PageCodec::None,
            Codec::Lz4 => PageCodec::Lz4,
            Codec::Zstd => PageCodec::Zstd(1),
        }
    }
}

/// The concrete codec of a column chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageCodec {
    /// Stored as encoded.
    None,
    /// LZ4_RAW.
    Lz4,
    /// Zstandard at a level.
    Zstd(i32),
}

impl PageCodec {
    /// `auto`'s ladder, strongest first: each step is faster and weaker.
    pub const LADDER: [PageCodec; 4] = [
        PageCodec::Zstd(3),
        PageCodec::Zstd(1),
        PageCodec::Lz4,
        PageCodec::None,
    ];

    /// The Parquet codec.
    pub fn parquet(self) -> Compression {
        match self {
            PageCodec::None => Compression::UNCOMPRESSED,
            PageCodec::Lz4 => Compression::LZ4_RAW,
            PageCodec::Zstd(l) => {
                Compression::ZSTD(ZstdLevel::try_new(l).expect("levels come from LADDER"))
            }
        }
    }

    /// Name for manifests and reports.
    pub fn label(self) -> &'static str {
        match self {
            PageCodec::None => "none",
            PageCodec::Lz4 => "lz4_raw",
            PageCodec::Zstd(1) => "zstd(1)",
            PageCodec::Zstd(3) => "zstd(3)",
            PageCodec::Zstd(_) => "zstd",
        }
    }
}

/// Compresses page bodies, reusing its zstd context between pages.
pub struct Compressor {
    zstd: Option<(i32, zstd::bulk::Compressor<'static>)>,
}

impl Compressor {
    /// A compressor with no context yet (made on first zstd use).
    pub fn new() -> Self {
        Self { zstd: None }
    }

    /// `body` compressed with `codec` (moved, not copied, when stored as is).
    pub fn compress(&mut self, codec: PageCodec, body: Vec<u8>) -> std::io::Result<Bytes> {
        Ok(match codec {
            PageCodec::None => Bytes::from(body),
            PageCodec::Lz4 => Bytes::from(lz4_flex::block::compress(&body)),
            PageCodec::Zstd(level) => {
                let z = self.zstd_at(level)?;
                let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(body.len()));
                z.compress_to_buffer(&body, &mut out)?;
                Bytes::from(out)
            }
        })
    }

    fn zstd_at(&mut self, level: i32) -> std::io::Result<&mut zstd::bulk::Compressor<'static>> {
        if self.zstd.as_ref().is_none_or(|(l, _)| *l != level) {
            let mut c = zstd::bulk::Compressor::new(level)?;
            // Every zstd frame carries a checksum of its content, which every
            // reader's decoder checks: a flipped bit in a recording fails to
            // decode instead of reading as a wrong sample.
            c.include_checksum(true)?;
            self.zstd = Some((level, c));
        }
        Ok(&mut self.zstd.as_mut().expect("just made").1)
    }
}

impl Default for Compressor {
    fn default() -> Self {
        Self::new()
    }
}

/// `auto`'s controller, after `zstd --adapt`: it watches which side is
/// behind and moves one step along `PageCodec::LADDER`.
///
/// Two signals per row group: the *backlog* of filled chunks waiting for
/// the encoder (the drain never waits for it, so a growing backlog is the
/// only sign that the recorder is falling behind), and how *busy* the
/// encoders were (encode time ÷ the stream time the chunk covers). Behind
/// and busy: the codec is the bottleneck, step weaker. Behind and idle: the
/// disk is, step stronger (fewer bytes). Caught up for `CALM` row groups
/// with time to spare: try one step stronger. So the level does not
/// oscillate, every step resets the count.
#[derive(Debug)]
pub struct Adapt {
    step: usize,
    calm: u32,
}

impl Adapt {
    const CALM: u32 = 64;

    /// Starts at `first` (one of `PageCodec::LADDER`).
    pub fn new(first: PageCodec) -> Self {
        let step = PageCodec::LADDER
            .iter()
            .position(|c| *c == first)
            .unwrap_or(1);
        Self { step, calm: 0 }
    }

    /// The codec to use now.
    pub fn current(&self) -> PageCodec {
        PageCodec::LADDER[self.step]
    }

    /// Feeds one row group's signals: chunks waiting out of `pool`, and the
    /// encoders' busy fraction. Returns the new codec when it changes.
    pub fn observe(&mut self, backlog: usize, pool: usize, busy: f64) -> Option<PageCodec> {
        let before = self.step;
        let weakest = PageCodec::LADDER.len() - 1;
        if backlog * 2 > pool {
            self.calm = 0;
            if busy > 0.6 {
                self.step = (self.step + 1).min(weakest);
            } else if busy < 0.3 {
                self.step = self.step.saturating_sub(1);
            }
        } else if backlog <= 1 && busy < 0.4 {
            self.calm += 1;
            if self.calm >= Self::CALM {
                self.calm = 0;
                self.step = self.step.saturating_sub(1);
            }
        } else {
            self.calm = 0;
        }
        (self.step != before).then(|| self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapt_steps_down_under_backlog_and_back_up_when_calm() {
        let mut a = Adapt::new(PageCodec::Zstd(1));
        assert_eq!(a.observe(5, 6, 0.9), Some(PageCodec::Lz4));
        assert_eq!(a.observe(5, 6, 0.9), Some(PageCodec::None));
        assert_eq!(a.observe(6, 6, 0.9), None, "no step below none");
        assert_eq!(a.observe(3, 6, 0.9), None, "half the pool is not behind");
        for _ in 0..Adapt::CALM - 1 {
            assert_eq!(a.observe(0, 6, 0.1), None);
        }
        assert_eq!(a.observe(0, 6, 0.1), Some(PageCodec::Lz4));
        assert_eq!(a.observe(0, 6, 0.9), None, "busy encoders do not step up");
    }

    #[test]
    fn adapt_compresses_harder_when_the_disk_is_behind() {
        let mut a = Adapt::new(PageCodec::Lz4);
        assert_eq!(a.observe(5, 6, 0.1), Some(PageCodec::Zstd(1)));
        assert_eq!(a.observe(5, 6, 0.1), Some(PageCodec::Zstd(3)));
        assert_eq!(a.observe(5, 6, 0.1), None, "no step above the strongest");
    }

    #[test]
    fn zstd_pages_round_trip_with_checksum() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let z = Compressor::new()
            .compress(PageCodec::Zstd(3), body.clone())
            .unwrap();
        assert!(z.len() < body.len() / 10);
        assert_eq!(zstd::bulk::decompress(&z, body.len()).unwrap(), body);
    }
}
