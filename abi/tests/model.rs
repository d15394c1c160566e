//! Model check of the head/tail protocol with loom: every interleaving (and
//! every weak-memory outcome loom models) of one producer and one consumer
//! running the recorder's own cursors over a 2-slot ring. loom's `UnsafeCell`
//! flags any read of a slot that is not ordered after its write (or a write
//! not ordered after the previous read): a Relaxed store or load where the
//! protocol needs Release/Acquire fails this test.

use std::sync::atomic::Ordering;

use hsdaq_abi::cursor::{ConsumerCursor, Counter, ProducerCursor};
use loom::cell::UnsafeCell;
use loom::sync::atomic::AtomicU64;
use loom::sync::Arc;

struct LoomCounter(AtomicU64);

impl Counter for LoomCounter {
    fn load(&self, order: Ordering) -> u64 {
        self.0.load(order)
    }
    fn store(&self, value: u64, order: Ordering) {
        self.0.store(value, order)
    }
}

struct Ring {
    head: LoomCounter,
    tail: LoomCounter,
    slots: [UnsafeCell<u64>; 2],
}

const SLOT: u64 = 8;
const SIZE: u64 = 2 * SLOT;

#[test]
fn spsc_protocol_is_race_free_in_order_and_wraps() {
    static EXECUTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    loom::model(|| {
        EXECUTIONS.fetch_add(1, Ordering::Relaxed);
        let ring = Arc::new(Ring {
            head: LoomCounter(AtomicU64::new(0)),
            tail: LoomCounter(AtomicU64::new(0)),
            slots: [UnsafeCell::new(0), UnsafeCell::new(0)],
        });
        let r = ring.clone();
        // Three blocks through two slots: the producer must wrap and, at
        // least in some interleavings, find the ring full and wait.
        let producer = loom::thread::spawn(move || {
            let mut p = ProducerCursor::new(&r.head, &r.tail, SIZE);
            for value in 1..=3u64 {
                let pos = loop {
                    match p.reserve(SLOT) {
                        Some(pos) => break pos,
                        None => loom::thread::yield_now(),
                    }
                };
                // SAFETY (model): the slot is ours until published.
                r.slots[(pos / SLOT) as usize].with_mut(|s| unsafe { *s = value });
                p.publish(SLOT);
            }
        });
        let mut c = ConsumerCursor::new(&ring.head, &ring.tail, SIZE);
        let mut seen = Vec::new();
        while seen.len() < 3 {
            match c.peek(SLOT).expect("counters stay consistent") {
                Some(pos) => {
                    // SAFETY (model): published and not yet released.
                    seen.push(ring.slots[(pos / SLOT) as usize].with(|s| unsafe { *s }));
                    c.release(SLOT);
                }
                None => loom::thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(seen, [1, 2, 3]);
    });
    let n = EXECUTIONS.load(Ordering::Relaxed);
    eprintln!("loom explored {n} executions");
    assert!(n > 10, "loom explored only {n} executions");
}
