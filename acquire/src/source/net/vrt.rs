//! VITA 49 (VRT) packets: what the receiver reads of them and what the test
//! sender writes. Only the prologue, the trailer and two context fields
//! (sample rate, payload format) are needed, so this is a small reader over
//! the datagram's bytes, allocation-free on the hot path (the `vita49`
//! crate parses whole packets into owned structures; `vrt` reads headers
//! but not context fields).
//!
//! Layout (big-endian 32-bit words): header; stream ID (packet types 1, 3,
//! 4, 5); class ID (2 words, when C); integer timestamp (when TSI ≠ 0);
//! fractional timestamp (2 words, when TSF ≠ 0); payload; trailer (data
//! packets, when T). Header: type 31-28, C 27, T 26 (data), TSI 23-22, TSF
//! 21-20, packet count 19-16 (modulo 16), size in words 15-0.

/// `TSF` = sample count within the integer second.
pub const TSF_SAMPLES: u8 = 1;
/// `TSF` = picoseconds within the integer second.
pub const TSF_PICOSECONDS: u8 = 2;
/// `TSF` = free-running count (here: the stream's sample index).
pub const TSF_FREE_RUNNING: u8 = 3;
/// DIFI's OUI in the class ID (IEEE-ISTO 4900).
pub const DIFI_OUI: u32 = 0x6A_621E;

/// Trailer: enable bit and indicator bit of "sample loss".
const TRAILER_LOSS_ENABLE: u32 = 1 << 24;
const TRAILER_LOSS: u32 = 1 << 12;
/// Trailer: enable and indicator of "valid data".
const TRAILER_VALID_ENABLE: u32 = 1 << 30;
const TRAILER_VALID: u32 = 1 << 18;

/// Why a datagram is not a usable VRT packet (counted per reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Shorter than its prologue.
    #[error("short")]
    Short,
    /// The header's size field disagrees with the datagram's length.
    #[error("size-field")]
    Size,
    /// A packet type the receiver does not take (command, extension).
    #[error("packet-type")]
    Type,
    /// Another stream than the one asked for.
    #[error("stream-id")]
    StreamId,
    /// A payload that is not whole scans.
    #[error("payload-size")]
    Payload,
    /// A context field past the packet's end.
    #[error("context")]
    Context,
}

/// Data or context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Signal data (types 0, 1).
    Data,
    /// Context (type 4).
    Context,
}

/// The fields of one packet, borrowing its payload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Packet<'a> {
    /// Data or context.
    pub kind: Kind,
    /// The 4-bit packet count.
    pub count: u8,
    /// Stream ID, if present.
    pub stream_id: Option<u32>,
    /// Class ID OUI, if present.
    pub oui: Option<u32>,
    /// Integer-seconds timestamp type and value.
    pub tsi: u8,
    /// Integer seconds, if TSI ≠ 0.
    pub seconds: Option<u32>,
    /// Fractional timestamp type.
    pub tsf: u8,
    /// Fractional timestamp, if TSF ≠ 0.
    pub fraction: Option<u64>,
    /// Payload (data) or context fields (context).
    pub payload: &'a [u8],
    /// Trailer word, if present.
    pub trailer: Option<u32>,
}

fn word(b: &[u8], i: usize) -> Option<u32> {
    b.get(i * 4..i * 4 + 4)
        .map(|w| u32::from_be_bytes(w.try_into().expect("4 bytes")))
}

/// Reads a datagram as one VRT packet.
pub fn parse(d: &[u8]) -> Result<Packet<'_>, Malformed> {
    let h = word(d, 0).ok_or(Malformed::Short)?;
    let ty = (h >> 28) as u8;
    let kind = match ty {
        0 | 1 => Kind::Data,
        4 => Kind::Context,
        _ => return Err(Malformed::Type),
    };
    let size = (h & 0xffff) as usize * 4;
    if size != d.len() {
        return Err(Malformed::Size);
    }
    let (c, t) = (h >> 27 & 1 == 1, kind == Kind::Data && h >> 26 & 1 == 1);
    let (tsi, tsf) = ((h >> 22 & 3) as u8, (h >> 20 & 3) as u8);
    let mut i = 1;
    let stream_id = if ty != 0 {
        i += 1;
        Some(word(d, 1).ok_or(Malformed::Short)?)
    } else {
        None
    };
    let oui = if c {
        let w = word(d, i).ok_or(Malformed::Short)?;
        i += 2;
        Some(w & 0xff_ffff)
    } else {
        None
    };
    let seconds = if tsi != 0 {
        i += 1;
        Some(word(d, i - 1).ok_or(Malformed::Short)?)
    } else {
        None
    };
    let fraction = if tsf != 0 {
        let hi = word(d, i).ok_or(Malformed::Short)? as u64;
        let lo = word(d, i + 1).ok_or(Malformed::Short)? as u64;
        i += 2;
        Some(hi << 32 | lo)
    } else {
        None
    };
    let end = d.len() / 4 - usize::from(t);
    if i > end {
        return Err(Malformed::Short);
    }
    Ok(Packet {
        kind,
        count: (h >> 16 & 0xf) as u8,
        stream_id,
        oui,
        tsi,
        seconds,
        tsf,
        fraction,
        payload: &d[i * 4..end * 4],
        trailer: if t { word(d, end) } else { None },
    })
}

impl Packet<'_> {
    /// The trailer says the device lost samples before this packet.
    pub fn sample_loss(&self) -> bool {
        self.trailer
            .is_some_and(|t| t & TRAILER_LOSS_ENABLE != 0 && t & TRAILER_LOSS != 0)
    }

    /// The packet's first sample on the stream's own clock, ns since that
    /// clock's epoch: integer seconds of UTC or GPS time (TSI 1 or 2) plus
    /// picoseconds or a sample count (TSF 2 or 1). None otherwise.
    pub fn time_ns(&self, rate_hz: u64) -> Option<i64> {
        let (s, f) = (i128::from(self.seconds?), i128::from(self.fraction?));
        if !matches!(self.tsi, 1 | 2) {
            return None;
        }
        let sub = match self.tsf {
            TSF_PICOSECONDS => f / 1000,
            TSF_SAMPLES => f * 1_000_000_000 / i128::from(rate_hz.max(1)),
            _ => return None,
        };
        i64::try_from(s * 1_000_000_000 + sub).ok()
    }

    /// The stream's index of the packet's first sample, when its timestamp
    /// gives one at `rate_hz`.
    pub fn sample_index(&self, rate_hz: u64) -> Option<u64> {
        let f = self.fraction?;
        match (self.tsf, self.seconds) {
            (TSF_FREE_RUNNING, _) => Some(f),
            (TSF_SAMPLES, Some(s)) => Some(s as u64 * rate_hz + f),
            (TSF_PICOSECONDS, Some(s)) => {
                Some(s as u64 * rate_hz + (f as u128 * rate_hz as u128 / 1_000_000_000_000) as u64)
            }
            _ => None,
        }
    }
}

/// What a context packet says about the stream.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Context {
    /// Sample rate, Hz.
    pub rate_hz: Option<f64>,
    /// Bits per item and whether items are complex (I/Q pairs).
    pub item: Option<(u8, bool)>,
}

/// Words of each CIF0 field from bit 30 down to bit 15.
const CIF0_WORDS: [usize; 16] = [1, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 1, 1, 2, 1, 2];

/// Reads the sample rate (CIF0 bit 21) and payload format (bit 15).
pub fn context(p: &Packet<'_>) -> Result<Context, Malformed> {
    let b = p.payload;
    let cif0 = word(b, 0).ok_or(Malformed::Context)?;
    // CIF1, CIF2, CIF3 and CIF7 words follow CIF0 when enabled.
    let mut i = 1 + [1u32, 2, 3, 7]
        .iter()
        .filter(|&&k| cif0 >> k & 1 == 1)
        .count();
    let mut out = Context::default();
    for (n, words) in CIF0_WORDS.iter().enumerate() {
        let bit = 30 - n as u32;
        if cif0 >> bit & 1 == 0 {
            continue;
        }
        let hi = word(b, i).ok_or(Malformed::Context)?;
        if bit == 21 {
            let lo = word(b, i + 1).ok_or(Malformed::Context)?;
            let fixed = ((hi as u64) << 32 | lo as u64) as i64;
            out.rate_hz = Some(fixed as f64 / (1u64 << 20) as f64);
        }
        if bit == 15 {
            word(b, i + 1).ok_or(Malformed::Context)?;
            let complex = hi >> 29 & 3 == 1;
            out.item = Some(((hi & 0x3f) as u8 + 1, complex));
        }
        i += words;
    }
    Ok(out)
}

/// What the sender puts in a data packet's prologue.
#[derive(Clone, Copy, Debug)]
pub struct Prologue {
    /// Stream ID.
    pub stream_id: u32,
    /// DIFI (class ID with DIFI's OUI, UTC seconds + picoseconds) or plain
    /// VRT (free-running sample count).
    pub difi: bool,
    /// 4-bit packet count.
    pub count: u8,
    /// Index of the first sample.
    pub index: u64,
    /// Stream rate (for DIFI's picosecond stamps).
    pub rate_hz: u64,
    /// Set the trailer's sample-loss indicator.
    pub loss: bool,
}

/// Writes one data packet around `payload` (big-endian items) into `out`.
pub fn build_data(out: &mut Vec<u8>, p: &Prologue, payload: &[u8]) {
    out.clear();
    let words = 1 + 1 + 2 * usize::from(p.difi) + 1 + 2 + payload.len() / 4 + 1;
    let (tsi, tsf) = if p.difi { (1u32, 2u32) } else { (3, 3) };
    let h = 1u32 << 28
        | u32::from(p.difi) << 27
        | 1 << 26
        | tsi << 22
        | tsf << 20
        | (p.count as u32 & 0xf) << 16
        | words as u32;
    out.extend_from_slice(&h.to_be_bytes());
    out.extend_from_slice(&p.stream_id.to_be_bytes());
    if p.difi {
        out.extend_from_slice(&DIFI_OUI.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
    }
    let (secs, frac) = if p.difi {
        let s = p.index / p.rate_hz;
        let ps = ((p.index % p.rate_hz) as u128 * 1_000_000_000_000 / p.rate_hz as u128) as u64;
        (s as u32, ps)
    } else {
        // TSI "other" carries nothing useful here; the count is the index.
        (0, p.index)
    };
    out.extend_from_slice(&secs.to_be_bytes());
    out.extend_from_slice(&frac.to_be_bytes());
    out.extend_from_slice(payload);
    let mut trailer = TRAILER_VALID_ENABLE | TRAILER_VALID;
    if p.loss {
        trailer |= TRAILER_LOSS_ENABLE | TRAILER_LOSS;
    }
    out.extend_from_slice(&trailer.to_be_bytes());
}

/// Writes a context packet: sample rate and payload format (`bits`-bit
/// signed items, complex or real).
pub fn build_context(out: &mut Vec<u8>, stream_id: u32, rate_hz: u64, bits: u8, complex: bool) {
    out.clear();
    let words = 1 + 1 + 1 + 2 + 2;
    let h = 4u32 << 28 | words as u32;
    out.extend_from_slice(&h.to_be_bytes());
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(&(1u32 << 21 | 1 << 15).to_be_bytes());
    out.extend_from_slice(&((rate_hz as i64) << 20).to_be_bytes());
    let fmt = u32::from(complex) << 29 | (bits as u32 - 1) << 6 | (bits as u32 - 1);
    out.extend_from_slice(&fmt.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_packets_round_trip() {
        let payload: Vec<u8> = (0..64u8).collect();
        for difi in [false, true] {
            let mut out = Vec::new();
            let p = Prologue {
                stream_id: 7,
                difi,
                count: 19,
                index: 3_000_123,
                rate_hz: 1_000_000,
                loss: difi,
            };
            build_data(&mut out, &p, &payload);
            let q = parse(&out).unwrap();
            assert_eq!(q.kind, Kind::Data);
            assert_eq!(q.count, 3, "modulo 16");
            assert_eq!(q.stream_id, Some(7));
            assert_eq!(q.oui, difi.then_some(DIFI_OUI));
            assert_eq!(q.payload, &payload[..]);
            assert_eq!(q.sample_loss(), difi);
            assert_eq!(q.sample_index(1_000_000), Some(3_000_123));
        }
    }

    #[test]
    fn context_fields_are_read() {
        let mut out = Vec::new();
        build_context(&mut out, 7, 250_000, 16, true);
        let p = parse(&out).unwrap();
        assert_eq!(p.kind, Kind::Context);
        let c = context(&p).unwrap();
        assert_eq!(c.rate_hz, Some(250_000.0));
        assert_eq!(c.item, Some((16, true)));
    }

    #[test]
    fn malformed_datagrams_are_named() {
        let mut out = Vec::new();
        build_data(
            &mut out,
            &Prologue {
                stream_id: 1,
                difi: false,
                count: 0,
                index: 0,
                rate_hz: 1,
                loss: false,
            },
            &[0; 8],
        );
        assert_eq!(parse(&out[..3]).unwrap_err(), Malformed::Short);
        assert_eq!(parse(&out[..out.len() - 4]).unwrap_err(), Malformed::Size);
        let mut cmd = out.clone();
        cmd[0] = 0x60;
        assert_eq!(parse(&cmd).unwrap_err(), Malformed::Type);
        // A size field claiming only the header: the prologue does not fit.
        let h = 1u32 << 28 | 1 << 20 | 1;
        assert_eq!(parse(&h.to_be_bytes()).unwrap_err(), Malformed::Short);
    }
}
