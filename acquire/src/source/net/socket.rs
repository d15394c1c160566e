//! The receive side of a UDP stream: a socket with a large receive buffer
//! (asked for, granted, and said), `SO_RXQ_OVFL` (the socket queue's own
//! drop count, delivered with every datagram), batches of up to [`BATCH`]
//! datagrams per `recvmmsg`, and the kernel's UDP counters around a run.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::{Context, Result};

/// Datagrams per `recvmmsg`.
pub const BATCH: usize = 64;
/// Largest datagram taken (jumbo frames: 9000-octet MTU).
pub const MAX_DATAGRAM: usize = 9216;

/// A bound socket and its receive batch.
pub struct Receiver {
    sock: UdpSocket,
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
    ovfl: Vec<[u64; 4]>,
    /// Latest cumulative socket-queue drop count, from the start.
    drops: Option<(u32, u32)>,
    /// Receive buffer asked for and granted, bytes.
    pub rcvbuf: (usize, usize),
}

fn setsockopt(fd: i32, level: i32, name: i32, value: i32) -> std::io::Result<()> {
    // SAFETY: a valid socket and a pointer to an int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn getsockopt(fd: i32, level: i32, name: i32) -> std::io::Result<i32> {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: a valid socket, an int to fill and its length.
    let rc = unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut i32).cast(), &mut len) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(v)
    }
}

impl Receiver {
    /// Binds `addr` (joining it when multicast) with `rcvbuf` bytes asked.
    pub fn bind(addr: SocketAddr, rcvbuf: usize) -> Result<Self> {
        let local = match addr {
            SocketAddr::V4(a) if a.ip().is_multicast() => {
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, a.port()))
            }
            a => a,
        };
        let sock = UdpSocket::bind(local).with_context(|| format!("cannot bind udp://{local}"))?;
        if let SocketAddr::V4(a) = addr {
            if a.ip().is_multicast() {
                sock.join_multicast_v4(a.ip(), &Ipv4Addr::UNSPECIFIED)
                    .with_context(|| format!("cannot join multicast group {}", a.ip()))?;
            }
        }
        let fd = sock.as_raw_fd();
        // Linux doubles the value for its bookkeeping and caps it at
        // net.core.rmem_max (SO_RCVBUFFORCE would need CAP_NET_ADMIN).
        let _ = setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            rcvbuf.min(i32::MAX as usize / 2) as i32,
        );
        let granted = getsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF).unwrap_or(0) as usize / 2;
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1).context("SO_RXQ_OVFL")?;
        sock.set_nonblocking(true)?;
        Ok(Self {
            sock,
            bufs: (0..BATCH).map(|_| vec![0u8; MAX_DATAGRAM]).collect(),
            lens: vec![0; BATCH],
            ovfl: vec![[0u64; 4]; BATCH],
            drops: None,
            rcvbuf: (rcvbuf, granted),
        })
    }

    /// The local address (for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Waits at most `wait` and receives a batch; returns how many.
    pub fn recv(&mut self, wait: Duration) -> Result<usize> {
        let fd = self.sock.as_raw_fd();
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, wait.as_millis() as libc::c_int) };
        if n <= 0 {
            return Ok(0);
        }
        let mut iov: Vec<libc::iovec> = self
            .bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
            .map(|i| {
                // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
                let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
                h.msg_iov = &mut iov[i];
                h.msg_iovlen = 1;
                h.msg_control = self.ovfl[i].as_mut_ptr().cast();
                h.msg_controllen = std::mem::size_of::<[u64; 4]>() as _;
                libc::mmsghdr {
                    msg_hdr: h,
                    msg_len: 0,
                }
            })
            .collect();
        // SAFETY: BATCH headers, each pointing at its own buffer and
        // control space, all alive until the call returns.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            let e = std::io::Error::last_os_error();
            if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) {
                return Ok(0);
            }
            return Err(e).context("recvmmsg failed");
        }
        for (i, m) in msgs.iter().take(got as usize).enumerate() {
            self.lens[i] = m.msg_len as usize;
            if let Some(d) = ovfl_of(&m.msg_hdr) {
                let first = self.drops.map_or(d, |x| x.0);
                self.drops = Some((first, d));
            }
        }
        Ok(got as usize)
    }

    /// Datagram `i` of the last batch.
    pub fn datagram(&self, i: usize) -> &[u8] {
        &self.bufs[i][..self.lens[i]]
    }

    /// Datagrams the socket queue dropped since the first one received.
    pub fn queue_drops(&self) -> u64 {
        self.drops.map_or(0, |(a, b)| b.wrapping_sub(a) as u64)
    }
}

/// The `SO_RXQ_OVFL` count in a received message's control data.
fn ovfl_of(h: &libc::msghdr) -> Option<u32> {
    // SAFETY: the kernel filled msg_control with msg_controllen bytes of
    // well-formed cmsgs; the CMSG macros walk within them.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_RXQ_OVFL {
                return Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>()));
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

/// The kernel's UDP counters (`/proc/net/snmp`), by name.
pub fn udp_counters() -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("Udp:")).collect();
    let mut out = BTreeMap::new();
    if let [names, values, ..] = lines.as_slice() {
        for (n, v) in names
            .split_whitespace()
            .zip(values.split_whitespace())
            .skip(1)
        {
            if let Ok(v) = v.parse() {
                out.insert(n.to_string(), v);
            }
        }
    }
    out
}

/// `rx_dropped` of every interface, by name.
pub fn interface_drops() -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(v) = std::fs::read_to_string(e.path().join("statistics/rx_dropped"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            out.insert(name, v);
        }
    }
    out
}

/// `net.core.rmem_max`, bytes.
pub fn rmem_max() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()?
        .trim()
        .parse()
        .ok()
}
