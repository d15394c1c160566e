//! The single-producer/single-consumer protocol of the crate docs, as code:
//! the cursors user space runs over a mapped ring (`acquire`'s consumer,
//! its simulator's producer). Not part of what the kernel module includes.
//!
//! The cursors are generic over [`Counter`] so that the very code the
//! recorder runs is also the code a loom model check explores
//! (`tests/model.rs`, `cargo test -p hsdaq-abi --features model-check
//! --test model`), with loom's atomics in place of the shared page's.

use core::sync::atomic::{AtomicU64, Ordering};

/// A shared 64-bit counter (`head` or `tail`).
pub trait Counter {
    /// Loads the counter with `order`.
    fn load(&self, order: Ordering) -> u64;
    /// Stores `value` with `order`.
    fn store(&self, value: u64, order: Ordering);
}

impl Counter for AtomicU64 {
    #[inline(always)]
    fn load(&self, order: Ordering) -> u64 {
        AtomicU64::load(self, order)
    }
    #[inline(always)]
    fn store(&self, value: u64, order: Ordering) {
        AtomicU64::store(self, value, order)
    }
}

/// The ring's shared counters look impossible: the producer or the mapping is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingCorrupt {
    /// Loaded head.
    pub head: u64,
    /// Our tail.
    pub tail: u64,
    /// Data area size.
    pub size: u64,
}

impl core::fmt::Display for RingCorrupt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "ring counters are inconsistent: head {}, tail {}, size {}",
            self.head, self.tail, self.size
        )
    }
}

impl core::error::Error for RingCorrupt {}

/// The producer's side: owns `head`, caches `tail`.
pub struct ProducerCursor<'a, C: Counter> {
    head_ref: &'a C,
    tail_ref: &'a C,
    head: u64,
    tail_cache: u64,
    size: u64,
}

impl<'a, C: Counter> ProducerCursor<'a, C> {
    /// A cursor over a ring of `size` bytes whose counters are `head`/`tail`.
    pub fn new(head: &'a C, tail: &'a C, size: u64) -> Self {
        let h = head.load(Ordering::Relaxed);
        let t = tail.load(Ordering::Acquire);
        Self {
            head_ref: head,
            tail_ref: tail,
            head: h,
            tail_cache: t,
            size,
        }
    }

    /// Where `len` bytes may be written, or `None` while the ring is full.
    ///
    /// Reloads `tail` (Acquire) only when the cached value says "full", so
    /// the consumer's cache line is touched once per wrap, not per block. A
    /// tail that moved outside `[cached tail, head]` is ignored (treated as
    /// "nothing freed"): the producer never trusts the consumer.
    #[inline]
    pub fn reserve(&mut self, len: u64) -> Option<u64> {
        if self.head + len - self.tail_cache > self.size {
            let t = self.tail_ref.load(Ordering::Acquire);
            if t >= self.tail_cache && t <= self.head {
                self.tail_cache = t;
            }
            if self.head + len - self.tail_cache > self.size {
                return None;
            }
        }
        Some(self.head & (self.size - 1))
    }

    /// Publishes `len` bytes written at the reserved position (Release).
    #[inline]
    pub fn publish(&mut self, len: u64) {
        self.head += len;
        self.head_ref.store(self.head, Ordering::Release);
    }

    /// Bytes published so far.
    pub fn head(&self) -> u64 {
        self.head
    }
}

/// The consumer's side: owns `tail`, caches `head`.
pub struct ConsumerCursor<'a, C: Counter> {
    head_ref: &'a C,
    tail_ref: &'a C,
    tail: u64,
    head_cache: u64,
    size: u64,
}

impl<'a, C: Counter> ConsumerCursor<'a, C> {
    /// A cursor that resumes at the ring's current `tail`.
    pub fn new(head: &'a C, tail: &'a C, size: u64) -> Self {
        let t = tail.load(Ordering::Relaxed);
        Self {
            head_ref: head,
            tail_ref: tail,
            tail: t,
            head_cache: t,
            size,
        }
    }

    /// Position of the next `len`-byte block if one is readable.
    ///
    /// Reloads `head` (Acquire) only when the cache says "empty".
    #[inline]
    pub fn peek(&mut self, len: u64) -> Result<Option<u64>, RingCorrupt> {
        if self.head_cache - self.tail < len {
            let h = self.head_ref.load(Ordering::Acquire);
            if h < self.tail || h - self.tail > self.size {
                return Err(RingCorrupt {
                    head: h,
                    tail: self.tail,
                    size: self.size,
                });
            }
            self.head_cache = h;
            if h - self.tail < len {
                return Ok(None);
            }
        }
        Ok(Some(self.tail & (self.size - 1)))
    }

    /// Hands `len` bytes back to the producer (Release).
    #[inline]
    pub fn release(&mut self, len: u64) {
        self.tail += len;
        self.tail_ref.store(self.tail, Ordering::Release);
    }

    /// Bytes readable according to the cached head (no shared access).
    pub fn cached_fill(&self) -> u64 {
        self.head_cache - self.tail
    }

    /// Bytes consumed so far.
    pub fn tail(&self) -> u64 {
        self.tail
    }
}
