//! Putting the kernel's packet stamps (CLOCK_REALTIME) on the lab's clock (CLOCK_MONOTONIC).

use std::io::IoSliceMut;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_gettime};

pub(super) fn ts_ns(ts: &TimeSpec) -> i128 {
    i128::from(ts.tv_sec()) * 1_000_000_000 + i128::from(ts.tv_nsec())
}

pub(super) fn clock_ns(clock: ClockId) -> i128 {
    clock_gettime(clock).map_or(0, |ts| ts_ns(&ts))
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC, in ns.
///
/// Packet timestamps are CLOCK_REALTIME (the skb stamp); the timeline is CLOCK_MONOTONIC.
/// Reads mono, real, mono a few times and keeps the tightest bracket: its midpoint pairs with
/// the realtime reading to within half the gap (well under 1 µs). A realtime step (NTP,
/// settimeofday) during the capture would shift later packets by the step.
pub(super) fn realtime_offset_ns() -> i128 {
    let mut best = (i128::MAX, 0);
    for _ in 0..8 {
        let m1 = clock_ns(ClockId::CLOCK_MONOTONIC);
        let r = clock_ns(ClockId::CLOCK_REALTIME);
        let m2 = clock_ns(ClockId::CLOCK_MONOTONIC);
        if m2 - m1 < best.0 {
            best = (m2 - m1, r - (m1 + m2) / 2);
        }
    }
    best.1
}

/// Waits (at most about 200 ms) until the kernel stamps packets when they arrive.
///
/// The first SO_TIMESTAMPNS socket in the system turns stamping on from a workqueue
/// (`net_enable_timestamp`, net/core/dev.c); until that runs, packets carry no stamp and
/// recvmsg stamps them when read, up to the whole capture late. A datagram to ourselves
/// tells: stamped before send() returned, or at the read. False if it never was.
pub(super) fn wait_for_arrival_stamps() -> bool {
    let probe = || -> Option<UdpSocket> {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
        sock.connect(sock.local_addr().ok()?).ok()?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .ok()?;
        setsockopt(&sock, sockopt::ReceiveTimestampns, &true).ok()?;
        Some(sock)
    };
    let Some(sock) = probe() else {
        return false;
    };
    let mut buf = [0u8; 8];
    let mut cmsg = nix::cmsg_space!(TimeSpec);
    for _ in 0..200 {
        if sock.send(b"t").is_err() {
            return false;
        }
        let sent = clock_ns(ClockId::CLOCK_REALTIME);
        let stamp = recv_one_stamp(sock.as_fd(), &mut buf, &mut cmsg);
        if stamp.is_some_and(|ts| ts_ns(&ts) <= sent) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

fn recv_one_stamp(fd: BorrowedFd<'_>, buf: &mut [u8], cmsg: &mut [u8]) -> Option<TimeSpec> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(fd.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::empty()).ok()?;
    msg.cmsgs().ok()?.find_map(|c| match c {
        ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
        _ => None,
    })
}
