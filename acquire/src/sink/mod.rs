//! The Parquet sink: page encoders (`pages`), codecs and `auto`'s
//! controller (`codec`), segment files with their block tables
//! (`segment`), and the page-cache-free file writer they sit on (`direct`).

pub mod codec;
pub mod direct;
pub mod pages;
pub mod segment;

/// Points in a segment's life where a power cut leaves a different state on
/// the disk; the power-cut test (`--fault powercut:POINT@T`) cuts at each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checkpoint {
    /// A row group was written into the open segment.
    Write,
    /// The footer is written, nothing is synced yet.
    Seal,
    /// Both files are fsynced, neither is renamed.
    Sync,
    /// The block table is renamed, the samples file is not.
    Rename,
    /// The new manifest is durable under its temporary name, not renamed.
    Manifest,
}

impl Checkpoint {
    /// Every checkpoint, in the order a segment passes them.
    pub const ALL: [Checkpoint; 5] = [
        Checkpoint::Write,
        Checkpoint::Seal,
        Checkpoint::Sync,
        Checkpoint::Rename,
        Checkpoint::Manifest,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Checkpoint::Write => "write",
            Checkpoint::Seal => "seal",
            Checkpoint::Sync => "sync",
            Checkpoint::Rename => "rename",
            Checkpoint::Manifest => "manifest",
        }
    }
}

/// Called by the writer at every [`Checkpoint`].
pub type Hook<'a> = &'a (dyn Fn(Checkpoint) + Sync);
