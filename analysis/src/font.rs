//! Plot text needs one TrueType font; plotters' ab_glyph backend takes its
//! bytes. We look in `HSDAQ_FONT` and the usual system places rather than
//! linking fontconfig, so the binary has no system library dependencies.

use anyhow::{bail, Result};
use plotters::style::{register_font, FontStyle};

const CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Registers a sans-serif font once; a clear error names what to install.
pub fn init() -> Result<()> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let r = DONE.get_or_init(|| {
        let env = std::env::var("HSDAQ_FONT").ok();
        for p in env.iter().map(String::as_str).chain(CANDIDATES.iter().copied()) {
            if let Ok(bytes) = std::fs::read(p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        Err("no TrueType font found for plot labels: install fonts-dejavu-core or set HSDAQ_FONT=/path/to/font.ttf".into())
    });
    match r {
        Ok(()) => Ok(()),
        Err(e) => bail!("{e}"),
    }
}
