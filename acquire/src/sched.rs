//! How the recorder's threads ask the scheduler to treat them: the drain
//! and the producer must run as soon as a block is due; the encoders and
//! the writer have a pool of chunks of slack and yield to them. Used by
//! the pipeline, the page encoders and the simulator alike.

/// The cores the machine offers (1 when it cannot say): the default
/// number of page encoders.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Nice value of the encoder and writer threads: they have a pool of
/// chunks of slack, the drain has only the ring. When all cores are busy
/// encoding, a waking drain thread then runs at once instead of waiting for
/// a time slice (docs/BENCHMARKS.md "What the figures say": block latency).
const ENCODER_NICE: libc::c_int = 10;

/// Lowers the calling thread's priority to [`ENCODER_NICE`] (Linux nice
/// values are per thread). Best effort: a failure leaves it as it was.
pub fn yield_to_drain() {
    // SAFETY: gettid has no preconditions; setpriority with PRIO_PROCESS
    // and our own thread id only changes this thread's nice value.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, ENCODER_NICE);
    }
}

/// Asks the scheduler for short time slices for the calling thread (the
/// drain, the simulator's producer): since Linux 6.12 a fair-class thread
/// with a slice shorter than the running one preempts it when it wakes, so
/// a drain that sleeps between blocks runs as soon as a block is due rather
/// than after an encoder's slice. Best effort: older kernels ignore it or
/// refuse it, and nothing else changes.
pub fn short_slices() {
    /// `struct sched_attr`, version 0 (48 bytes), from the Linux UAPI.
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice: 0,
        priority: 0,
        // The shortest slice the kernel accepts (100 µs).
        runtime: 100_000,
        deadline: 0,
        period: 0,
    };
    // SAFETY: sched_setattr(pid 0 = this thread, &attr, flags 0) reads
    // `attr.size` bytes of a valid, initialised struct laid out as the UAPI.
    unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
}
