//! The AF_PACKET socket and its reader thread: [`Capture`] on an [`Interface`].

use std::fs::File;
use std::io::{BufWriter, IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::net::if_::if_nametoindex;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, LinkAddr, MsgFlags, SockFlag, SockType, recvmsg,
    setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;
use nix::time::ClockId;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

use super::bpf::{SNAPLEN, bpf_program_on};
use super::clock::{clock_ns, realtime_offset_ns, ts_ns, wait_for_arrival_stamps};
use super::decode::{SeqTracker, decode, len32};
use super::ports::PortWatch;
use crate::event::{Body, Event, Lane};
use crate::observe::ObserveError;
use crate::sys::ffi;

/// Events kept per capture; later packets still go to the pcap file.
const MAX_EVENTS: usize = 1_000_000;

/// How long the reader sleeps in poll() between checks of the stop flag.
const POLL_MS: u8 = 20;
/// After stop(): the longest the reader keeps draining packets still in flight.
const GRACE: Duration = Duration::from_millis(500);
/// Packets read in one go before the reader looks at the clock and the stop flag again.
const BATCH: usize = 1024;

fn errno_error(what: &str, e: Errno) -> ObserveError {
    match e {
        Errno::EPERM | Errno::EACCES => ObserveError::NeedsPrivilege("root or CAP_NET_RAW".into()),
        Errno::EAFNOSUPPORT => ObserveError::Unsupported(format!("{what}: {e}")),
        _ => ObserveError::Failed(format!("{what}: {e}")),
    }
}

fn pcap_error(e: impl std::fmt::Display) -> ObserveError {
    ObserveError::Failed(format!("pcap: {e}"))
}

/// The interface a capture listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Its name (`lo`, `eth0`).
    pub name: String,
    /// The network namespace it is in (`/run/netns/NAME`); `None`: this process's.
    pub netns: Option<PathBuf>,
}

impl Interface {
    /// `lo` in this process's network namespace.
    pub fn loopback() -> Interface {
        Interface {
            name: "lo".into(),
            netns: None,
        }
    }
}

/// A running capture on one interface; a reader thread collects the packets.
pub struct Capture {
    stop: Arc<AtomicBool>,
    /// The packets read and not yet taken by [`Capture::drain`].
    seen: Arc<Mutex<Vec<Event>>>,
    reader: Option<JoinHandle<Result<(), ObserveError>>>,
}

impl Capture {
    /// Opens an AF_PACKET socket on `lo` keeping the packets of `ports` (see
    /// [`bpf_program`](super::bpf_program)) and starts reading; with `pcap`, also writes them to that file
    /// (LINKTYPE_RAW, nanosecond kernel timestamps).
    ///
    /// Not one syscall: socket, setsockopt (filter, timestamps, buffer), bind, then a thread.
    pub fn start(ports: &[u16], pcap: Option<&Path>) -> Result<Capture, ObserveError> {
        Capture::start_on(&Interface::loopback(), ports, pcap)
    }

    /// [`Capture::start`] on `iface`. An interface in another network namespace is opened by
    /// a short-lived thread that enters that namespace first ([`crate::net::netns::in_netns`]);
    /// the socket stays bound to the interface there.
    pub fn start_on(
        iface: &Interface,
        ports: &[u16],
        pcap: Option<&Path>,
    ) -> Result<Capture, ObserveError> {
        Capture::open(iface, Ports::These(ports), pcap)
    }

    /// [`Capture::start_on`] keeping only the ports in `watch`, none at first: the filter
    /// follows as ports are added to it.
    pub fn start_watched(
        iface: &Interface,
        watch: &PortWatch,
        pcap: Option<&Path>,
    ) -> Result<Capture, ObserveError> {
        Capture::open(iface, Ports::Watched(watch), pcap)
    }

    fn open(
        iface: &Interface,
        ports: Ports<'_>,
        pcap: Option<&Path>,
    ) -> Result<Capture, ObserveError> {
        let loopback = iface.name == "lo";
        let fd = match &iface.netns {
            None => open_packet_socket(&iface.name, ports, loopback)?,
            Some(ns) => {
                crate::net::netns::in_netns(ns, || open_packet_socket(&iface.name, ports, loopback))
                    .map_err(ObserveError::Failed)??
            }
        };
        wait_for_arrival_stamps();

        let writer = match pcap {
            Some(path) => {
                let file = File::create(path).map_err(|e| {
                    ObserveError::Failed(format!("cannot create {}: {e}", path.display()))
                })?;
                let header = PcapHeader {
                    snaplen: SNAPLEN,
                    datalink: DataLink::RAW,
                    ts_resolution: TsResolution::NanoSecond,
                    endianness: Endianness::native(),
                    ..PcapHeader::default()
                };
                Some(PcapWriter::with_header(BufWriter::new(file), header).map_err(pcap_error)?)
            }
            None => None,
        };

        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reader = Reader {
            fd,
            keep_outgoing: !loopback,
            stop: Arc::clone(&stop),
            pcap: writer,
            offset_ns: realtime_offset_ns(),
            seqs: SeqTracker::new(),
            events: Vec::new(),
            seen: Arc::clone(&seen),
            kept: 0,
            buf: vec![0; SNAPLEN as usize],
            cmsg: nix::cmsg_space!(TimeSpec),
        };
        let handle = std::thread::Builder::new()
            .name("socklab-capture".into())
            .spawn(move || reader.run())
            .map_err(|e| ObserveError::Failed(format!("capture thread: {e}")))?;
        Ok(Capture {
            stop,
            seen,
            reader: Some(handle),
        })
    }

    /// Stops the reader (after it drained what is still in flight), flushes the pcap file
    /// and returns the packet events sorted by time: `t` is the kernel's receive timestamp on
    /// CLOCK_MONOTONIC, pid 0, no role, lane [`Lane::Wire`].
    pub fn stop(mut self) -> Result<Vec<Event>, ObserveError> {
        self.finish()?;
        Ok(self.drain())
    }

    /// The packets read since the last drain, sorted by time, while the capture goes on.
    pub fn drain(&self) -> Vec<Event> {
        let mut events = std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()));
        events.sort_by_key(|e| e.t);
        events
    }

    fn finish(&mut self) -> Result<(), ObserveError> {
        self.stop.store(true, Ordering::Release);
        match self.reader.take() {
            Some(h) => h
                .join()
                .map_err(|_| ObserveError::Failed("capture thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// The ports a capture keeps: a fixed list (all when empty), or those of a [`PortWatch`].
#[derive(Clone, Copy)]
enum Ports<'a> {
    These(&'a [u16]),
    Watched(&'a PortWatch),
}

/// `socket(AF_PACKET)` with the filter and kernel timestamps, bound to interface `name` of
/// the calling thread's network namespace.
fn open_packet_socket(
    name: &str,
    ports: Ports<'_>,
    loopback: bool,
) -> Result<Arc<OwnedFd>, ObserveError> {
    // Protocol 0: the socket receives nothing until bind(), so no packet slips in
    // before the filter is attached.
    let fd = nix::sys::socket::socket(
        AddressFamily::Packet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| errno_error("socket(AF_PACKET)", e))?;
    let fd = Arc::new(fd);
    match ports {
        Ports::These(ports) => ffi::attach_filter(fd.as_fd(), &bpf_program_on(ports, loopback))
            .map_err(|e| errno_error("setsockopt(SO_ATTACH_FILTER)", e))?,
        Ports::Watched(watch) => watch.follow(&fd, loopback)?,
    }
    setsockopt(&fd, sockopt::ReceiveTimestampns, &true)
        .map_err(|e| errno_error("setsockopt(SO_TIMESTAMPNS)", e))?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = setsockopt(&fd, sockopt::RcvBuf, &(4 << 20));
    let index =
        if_nametoindex(name).map_err(|e| errno_error(&format!("if_nametoindex({name})"), e))?;
    ffi::bind_packet_all(fd.as_fd(), index)
        .map_err(|e| errno_error(&format!("bind({name})"), e))?;
    Ok(fd)
}

/// The reader thread's state.
struct Reader {
    /// Shared with a [`PortWatch`] that re-filters it.
    fd: Arc<OwnedFd>,
    /// Not loopback: the outgoing frames are the only copy of what this side sent.
    keep_outgoing: bool,
    stop: Arc<AtomicBool>,
    pcap: Option<PcapWriter<BufWriter<File>>>,
    offset_ns: i128,
    seqs: SeqTracker,
    /// This batch's packets, handed to `seen` after each read.
    events: Vec<Event>,
    seen: Arc<Mutex<Vec<Event>>>,
    /// Packets kept so far (at most MAX_EVENTS).
    kept: usize,
    buf: Vec<u8>,
    cmsg: Vec<u8>,
}

impl Reader {
    fn run(mut self) -> Result<(), ObserveError> {
        let mut stopping_since: Option<Instant> = None;
        loop {
            if stopping_since.is_none() && self.stop.load(Ordering::Acquire) {
                stopping_since = Some(Instant::now());
            }
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            let ready = match poll(&mut fds, PollTimeout::from(POLL_MS)) {
                Ok(n) => n > 0,
                Err(Errno::EINTR) => false,
                Err(e) => return Err(errno_error("poll", e)),
            };
            if ready {
                self.read_batch()?;
                if !self.events.is_empty() {
                    let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                    seen.append(&mut self.events);
                }
            }
            // Once stopped, go on until a poll interval passes quietly (packets of the
            // last exchange may still be in the loopback queue), within GRACE.
            if let Some(since) = stopping_since
                && (!ready || since.elapsed() >= GRACE)
            {
                break;
            }
        }
        if let Some(w) = self.pcap.take() {
            w.into_writer()
                .flush()
                .map_err(|e| ObserveError::Failed(format!("pcap: {e}")))?;
        }
        Ok(())
    }

    /// Reads what is queued, up to BATCH packets.
    fn read_batch(&mut self) -> Result<(), ObserveError> {
        for _ in 0..BATCH {
            let got = recv_one(self.fd.as_fd(), &mut self.buf, &mut self.cmsg);
            let (len, pkttype, stamp) = match got {
                Ok(r) => r,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(errno_error("recvmsg", e)),
            };
            // The filter already drops loopback's outgoing copy; this keeps it so without one.
            if pkttype == libc::PACKET_OUTGOING && !self.keep_outgoing {
                continue;
            }
            // Without a kernel stamp (not expected), fall back to the time of reading.
            let real_ns = stamp.map_or_else(|| clock_ns(ClockId::CLOCK_REALTIME), |ts| ts_ns(&ts));
            let data = &self.buf[..len.min(self.buf.len())];
            if let Some(w) = self.pcap.as_mut() {
                let ts = Duration::from_nanos(u64::try_from(real_ns).unwrap_or(0));
                w.write_packet(&PcapPacket::new(ts, len32(len), data))
                    .map_err(pcap_error)?;
            }
            if self.kept < MAX_EVENTS
                && let Some(p) = decode(data, &mut self.seqs)
            {
                self.kept += 1;
                self.events.push(Event {
                    t: u64::try_from(real_ns - self.offset_ns).unwrap_or(0),
                    pid: 0,
                    tid: 0,
                    role: None,
                    lane: Lane::Wire,
                    body: Body::Packet(p),
                });
            }
        }
        Ok(())
    }
}

/// One non-blocking recvmsg: the packet's full length (MSG_TRUNC), its `sll_pkttype` and
/// the kernel's receive timestamp.
fn recv_one(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    cmsg: &mut [u8],
) -> Result<(usize, u8, Option<TimeSpec>), Errno> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<LinkAddr>(
        fd.as_raw_fd(),
        &mut iov,
        Some(cmsg),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
    )?;
    let pkttype = msg.address.map_or(libc::PACKET_HOST, |a| a.pkttype());
    let stamp = msg.cmsgs()?.find_map(|c| match c {
        ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
        _ => None,
    });
    Ok((msg.bytes, pkttype, stamp))
}
