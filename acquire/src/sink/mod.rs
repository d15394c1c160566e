//! The Parquet sink: page encoders (`pages`), codecs and `auto`'s
//! controller (`codec`), segment files with their block tables
//! (`segment`), and the page-cache-free file writer they sit on (`direct`).

pub mod codec;
pub mod direct;
pub mod pages;
pub mod segment;
