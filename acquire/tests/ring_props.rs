//! Property tests of ring wrap, full and drop logic: a producer that drops
//! whole blocks when full and a consumer that reads in place, driven by
//! random schedules over small rings, far past many wraps.

use std::sync::atomic::AtomicU64;

use hsdaq_abi::cursor::{ConsumerCursor, ProducerCursor};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn never_overwrites_and_counts_every_drop(
        slots_log2 in 1u32..5,
        schedule in prop::collection::vec(any::<bool>(), 1..600),
    ) {
        let slot = 16u64;
        let size = slot << slots_log2;
        let head = AtomicU64::new(0);
        let tail = AtomicU64::new(0);
        let mut data = vec![u64::MAX; (size / slot) as usize];
        let mut p = ProducerCursor::new(&head, &tail, size);
        let mut c = ConsumerCursor::new(&head, &tail, size);
        let (mut next, mut dropped, mut pending_lost) = (0u64, 0u64, 0u64);
        let (mut expect, mut lost_seen) = (0u64, 0u64);
        let mut block_lost = vec![0u64; (size / slot) as usize];
        for produce in schedule {
            if produce {
                match p.reserve(slot) {
                    Some(pos) => {
                        let i = (pos / slot) as usize;
                        // The slot must have been consumed (or never used).
                        prop_assert!(data[i] == u64::MAX || data[i] < expect);
                        data[i] = next;
                        block_lost[i] = pending_lost;
                        pending_lost = 0;
                        p.publish(slot);
                    }
                    None => {
                        // Full: exactly `size` bytes are unread.
                        prop_assert_eq!(p.head() - c.tail(), size);
                        dropped += 1;
                        pending_lost += 1;
                    }
                }
                next += 1;
            } else if let Some(pos) = c.peek(slot).unwrap() {
                let i = (pos / slot) as usize;
                // In order, with the gap announced by the block itself.
                prop_assert_eq!(data[i], expect + block_lost[i]);
                lost_seen += block_lost[i];
                expect = data[i] + 1;
                c.release(slot);
            }
            prop_assert!(p.head() - c.tail() <= size);
            prop_assert_eq!(p.head() & (slot - 1), 0);
        }
        while let Some(pos) = c.peek(slot).unwrap() {
            let i = (pos / slot) as usize;
            lost_seen += block_lost[i];
            c.release(slot);
        }
        // Every drop is accounted for: announced by a later block or still pending.
        prop_assert_eq!(lost_seen + pending_lost, dropped);
    }

    #[test]
    fn consumer_rejects_impossible_heads(h in any::<u64>(), t in 0u64..1_000_000) {
        let size = 1u64 << 12;
        let head = AtomicU64::new(h);
        let tail = AtomicU64::new(t);
        let mut c = ConsumerCursor::new(&head, &tail, size);
        let r = c.peek(64);
        if h < t || h - t > size {
            prop_assert!(r.is_err());
        } else {
            prop_assert!(r.is_ok());
        }
    }

    #[test]
    fn producer_ignores_a_hostile_tail(bad in any::<u64>()) {
        let size = 1u64 << 10;
        let head = AtomicU64::new(0);
        let tail = AtomicU64::new(0);
        let mut p = ProducerCursor::new(&head, &tail, size);
        for _ in 0..(size / 64) {
            p.reserve(64).unwrap();
            p.publish(64);
        }
        tail.store(bad, std::sync::atomic::Ordering::Relaxed);
        let legal = bad <= p.head();
        // A tail beyond head never frees space that was not consumed.
        prop_assert_eq!(p.reserve(64).is_some(), legal && bad >= 64);
    }
}
