//! hsdaq analysis: read recordings lazily with polars, compute throughput,
//! loss, latency and signal metrics, plot them with plotters and write a
//! report (`summary.json`, text, PNG + SVG plots, `index.html`).

pub mod bench;
pub mod font;
pub mod health;
pub mod load;
pub mod metrics;
pub mod pass;
pub mod plots;
pub mod report;
pub mod timebase;
