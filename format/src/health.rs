//! `health.csv`: the recorder's own health once a second (resident memory,
//! descriptors, backlog, ring fill, totals, CPU time), written by `acquire
//! record` beside the segments and read by `analysis` and the soak test by
//! column name.

/// The file's name in the run folder.
pub const HEALTH_FILE: &str = "health.csv";

/// The columns, in the order the recorder writes them.
pub const HEALTH_COLUMNS: [&str; 10] = [
    "elapsed_s",
    "rss_bytes",
    "open_fds",
    "backlog_chunks",
    "ring_fill_permille",
    "scans",
    "lost",
    "segments",
    "bytes_written",
    // The recorder's CPU time so far, user + system, seconds: its cost per
    // second must stay flat with the run's length (the soak checks it).
    "cpu_s",
];
