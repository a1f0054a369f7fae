//! The tracepoint `sock:inet_sock_set_state`: the kernel's own record of every TCP state change.
//!
//! Read first: the kernel's tracefs docs (Documentation/trace/ftrace.rst, "Instances") and
//! include/trace/events/sock.h (`inet_sock_set_state`). Needs root.
//!
//! A [`TraceSession`] owns a private tracefs instance `socklab-<pid>`, never the global buffer,
//! with its clock set to `mono` so that line times are CLOCK_MONOTONIC like every other event.
//! The event fires in softirq context too, so the pid on a line is not the socket's owner:
//! events carry pid 0 and the caller attributes them by port.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::kill;
use nix::unistd::{Pid, geteuid};

use super::ObserveError;
use crate::event::Event;
use crate::event::tcp_state::TcpState;

/// Where tracefs is mounted (and where socklab mounts it when it is not).
pub const TRACEFS: &str = "/sys/kernel/tracing";
/// The event, relative to an instance's `events/` directory.
const EVENT: &str = "sock/inet_sock_set_state";
/// Instance names start with this, then the owner's pid.
const PREFIX: &str = "socklab-";
/// What the text of a line says between its head and its fields.
const MARK: &str = ": inet_sock_set_state: ";

/// One parsed line of the instance's `trace_pipe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLine {
    /// The line's timestamp (trace_clock `mono`: CLOCK_MONOTONIC), in ns; text has µs resolution.
    pub t_ns: u64,
    /// The task running when the event fired (often not the socket's owner).
    pub comm: String,
    /// That task's pid.
    pub pid: u32,
    /// The CPU it ran on.
    pub cpu: u32,
    /// `AF_INET` or `AF_INET6`.
    pub family: String,
    /// Local port (0 for a connecting socket before its port is chosen).
    pub sport: u16,
    /// Remote port.
    pub dport: u16,
    /// Local address.
    pub saddr: IpAddr,
    /// Remote address.
    pub daddr: IpAddr,
    /// The state before.
    pub old: TcpState,
    /// The state after.
    pub new: TcpState,
}

impl TraceLine {
    /// The lab event: a state change from source `tracepoint`, pid 0, lane
    /// [`Lane::Lab`](crate::event::Lane::Lab).
    pub fn to_event(&self) -> Event {
        Event::lab_state(
            self.t_ns,
            Some(self.old),
            self.new,
            SocketAddr::new(self.saddr, self.sport),
            SocketAddr::new(self.daddr, self.dport),
            "tracepoint",
        )
    }
}

/// Parses one text line of the event; `None` for anything else (headers, `[LOST n EVENTS]`).
///
/// A line reads `<comm>-<pid> [cpu] flags secs.usecs: inet_sock_set_state: family=AF_INET
/// ... oldstate=TCP_CLOSE newstate=TCP_LISTEN`. The head is read from the right, because a
/// comm may hold spaces, dashes and brackets.
pub fn parse_line(line: &str) -> Option<TraceLine> {
    let (head, fields) = line.split_once(MARK)?;
    let (comm, pid, cpu, t_ns) = parse_head(head)?;

    let mut f = Fields::default();
    for tok in fields.split_ascii_whitespace() {
        let Some((k, v)) = tok.split_once('=') else {
            continue;
        };
        match k {
            "family" => f.family = Some(v),
            "protocol" => f.protocol = Some(v),
            "sport" => f.sport = Some(v.parse().ok()?),
            "dport" => f.dport = Some(v.parse().ok()?),
            "saddr" => f.saddr = Some(v.parse().ok()?),
            "daddr" => f.daddr = Some(v.parse().ok()?),
            "saddrv6" => f.saddr6 = Some(v.parse().ok()?),
            "daddrv6" => f.daddr6 = Some(v.parse().ok()?),
            "oldstate" => f.old = Some(parse_state(v)?),
            "newstate" => f.new = Some(parse_state(v)?),
            // Fields a later kernel may add.
            _ => {}
        }
    }
    if f.protocol.is_some_and(|p| p != "IPPROTO_TCP") {
        return None;
    }
    let family = f.family?;
    let (saddr, daddr) = match family {
        // For AF_INET the v6 fields are the v4-mapped form; prefer the plain ones.
        "AF_INET" => (
            IpAddr::V4(f.saddr.or_else(|| f.saddr6?.to_ipv4_mapped())?),
            IpAddr::V4(f.daddr.or_else(|| f.daddr6?.to_ipv4_mapped())?),
        ),
        // For AF_INET6 the v4 fields hold junk (seen: 127.0.0.6 for ::1).
        "AF_INET6" => (IpAddr::V6(f.saddr6?), IpAddr::V6(f.daddr6?)),
        _ => return None,
    };
    Some(TraceLine {
        t_ns,
        comm: comm.to_string(),
        pid,
        cpu,
        family: family.to_string(),
        sport: f.sport?,
        dport: f.dport?,
        saddr,
        daddr,
        old: f.old?,
        new: f.new?,
    })
}

#[derive(Default)]
struct Fields<'a> {
    family: Option<&'a str>,
    protocol: Option<&'a str>,
    sport: Option<u16>,
    dport: Option<u16>,
    saddr: Option<Ipv4Addr>,
    daddr: Option<Ipv4Addr>,
    saddr6: Option<Ipv6Addr>,
    daddr6: Option<Ipv6Addr>,
    old: Option<TcpState>,
    new: Option<TcpState>,
}

/// `TCP_SYN_SENT`, or the hex number tracefs prints for a state it has no name for.
fn parse_state(v: &str) -> Option<TcpState> {
    match v.strip_prefix("0x") {
        Some(hex) => TcpState::from_linux(u8::from_str_radix(hex, 16).ok()?),
        None => v.strip_prefix("TCP_")?.parse().ok(),
    }
}

/// `   python3-14451   [000] ..s2.   869.019384` (an optional `(tgid)` before the cpu, and
/// the flags column is optional too) -> (comm, pid, cpu, ns).
fn parse_head(head: &str) -> Option<(&str, u32, u32, u64)> {
    let (rest, ts) = split_last(head)?;
    let t_ns = parse_timestamp(ts)?;
    let (mut rest, mut tok) = split_last(rest)?;
    if !tok.starts_with('[') {
        // The irq-info flags column.
        (rest, tok) = split_last(rest)?;
    }
    let cpu = digits(tok.strip_prefix('[')?.strip_suffix(']')?)?;
    let mut task = rest.trim();
    // With the record-tgid option: `comm-pid (tgid)`.
    if task.ends_with(')')
        && let Some((before, _)) = task.rsplit_once(char::is_whitespace)
    {
        task = before.trim_end();
    }
    let (comm, pid) = task.rsplit_once('-')?;
    Some((comm, digits(pid)?, cpu, t_ns))
}

/// The text before the last whitespace-separated token, and that token.
fn split_last(s: &str) -> Option<(&str, &str)> {
    let (rest, tok) = s.trim_end().rsplit_once(char::is_whitespace)?;
    Some((rest.trim_end(), tok))
}

/// Plain ASCII digits only (`str::parse` would take a leading `+`).
fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `869.019228` (seconds, 1 to 9 fractional digits) -> ns.
fn parse_timestamp(ts: &str) -> Option<u64> {
    let (secs, frac) = ts.split_once('.')?;
    let secs: u64 = digits(secs)?;
    if frac.len() > 9 {
        return None;
    }
    let scale = 10u64.pow(9 - frac.len() as u32);
    let frac: u64 = digits(frac)?;
    secs.checked_mul(1_000_000_000)?
        .checked_add(frac.checked_mul(scale)?)
}

/// `CPU:1 [LOST 12 EVENTS]`: how many events the ring buffer dropped.
fn lost_count(line: &str) -> Option<u64> {
    let rest = line.split_once("[LOST ")?.1;
    digits(rest.strip_suffix(" EVENTS]")?)
}

/// Cheap check that a session can start: root, tracefs (mounted here if it is not, as
/// [`TraceSession::start`] would) and the event in this kernel.
pub fn available() -> Result<(), ObserveError> {
    need_root()?;
    let root = ensure_tracefs()?;
    event_format(&root).map(|_| ())
}

fn need_root() -> Result<(), ObserveError> {
    if geteuid().is_root() {
        Ok(())
    } else {
        Err(ObserveError::NeedsPrivilege("root (tracefs)".to_string()))
    }
}

/// True when /proc/mounts lists tracefs at [`TRACEFS`].
fn tracefs_mounted() -> bool {
    fs::read_to_string("/proc/mounts").is_ok_and(|m| {
        m.lines().any(|l| {
            let mut it = l.split_whitespace().skip(1);
            it.next() == Some(TRACEFS) && it.next() == Some("tracefs")
        })
    })
}

/// Mounts tracefs at [`TRACEFS`] unless it is there already.
fn ensure_tracefs() -> Result<PathBuf, ObserveError> {
    if !tracefs_mounted() {
        mount(
            Some("nodev"),
            TRACEFS,
            Some("tracefs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| match e {
            Errno::EPERM | Errno::EACCES => {
                ObserveError::NeedsPrivilege("root (tracefs)".to_string())
            }
            Errno::ENODEV => ObserveError::Unsupported("this kernel has no tracefs".to_string()),
            e => ObserveError::Failed(format!("mount -t tracefs nodev {TRACEFS}: {e}")),
        })?;
    }
    Ok(PathBuf::from(TRACEFS))
}

/// The event's `format` file, after checking it has the fields the filter names.
fn event_format(root: &Path) -> Result<String, ObserveError> {
    let path = root.join("events").join(EVENT).join("format");
    let text = fs::read_to_string(&path).map_err(|e| {
        ObserveError::Unsupported(format!("no tracepoint sock:inet_sock_set_state ({e})"))
    })?;
    for field in ["protocol", "sport", "dport"] {
        if !text.contains(&format!(" {field};")) {
            return Err(ObserveError::Unsupported(format!(
                "sock:inet_sock_set_state has no field {field} in {}",
                path.display()
            )));
        }
    }
    Ok(text)
}

/// The filter for TCP on `ports` (either end); all TCP when `ports` is empty.
pub fn filter_for(ports: &[u16]) -> String {
    if ports.is_empty() {
        return "protocol == 6".to_string();
    }
    let ends: Vec<String> = ports
        .iter()
        .map(|p| format!("sport == {p} || dport == {p}"))
        .collect();
    format!("protocol == 6 && ({})", ends.join(" || "))
}

/// The pid in an instance name `socklab-<pid>` or `socklab-<pid>-<n>`.
fn owner_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(PREFIX)?;
    digits(rest.split('-').next()?)
}

/// Removes the `socklab-<pid>` instances whose process is gone (killed before it could clean
/// up); returns the directories removed.
pub fn cleanup_stale() -> Result<Vec<PathBuf>, ObserveError> {
    let dir = Path::new(TRACEFS).join("instances");
    let entries = fs::read_dir(&dir)
        .map_err(|e| ObserveError::Failed(format!("cannot list {}: {e}", dir.display())))?;
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(owner_pid) else {
            continue;
        };
        // ESRCH: no such process. EPERM would mean it lives under another user.
        if kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH) {
            let path = entry.path();
            let _ = fs::write(path.join("events").join(EVENT).join("enable"), "0");
            if fs::remove_dir(&path).is_ok() {
                removed.push(path);
            }
        }
    }
    Ok(removed)
}

/// A private tracefs instance recording `sock:inet_sock_set_state`; dropping it removes the
/// instance.
#[derive(Debug)]
pub struct TraceSession {
    dir: PathBuf,
    /// `trace_pipe`, opened O_NONBLOCK; must be closed before the instance can be removed.
    pipe: Option<File>,
    /// The tail of the last read when it ended inside a line.
    partial: Vec<u8>,
    lost: u64,
    removed: bool,
}

impl TraceSession {
    /// Creates the instance, sets its clock to `mono`, filters TCP on `ports` (all TCP when
    /// empty) and enables the event. Removes stale socklab instances first.
    pub fn start(ports: &[u16]) -> Result<TraceSession, ObserveError> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        need_root()?;
        let root = ensure_tracefs()?;
        event_format(&root)?;
        let _ = cleanup_stale();

        let pid = std::process::id();
        let dir = loop {
            // Several sessions in one process get `socklab-<pid>-<n>`.
            let n = SEQ.fetch_add(1, Ordering::Relaxed);
            let name = match n {
                0 => format!("{PREFIX}{pid}"),
                n => format!("{PREFIX}{pid}-{n}"),
            };
            let dir = root.join("instances").join(name);
            match fs::create_dir(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(failed("mkdir", &dir, e)),
            }
        };
        // From here on, Drop removes the instance whatever fails.
        let mut session = TraceSession {
            dir,
            pipe: None,
            partial: Vec::new(),
            lost: 0,
            removed: false,
        };
        session.write("trace_clock", "mono")?;
        // Wake a reader at the first event, not when the buffer is half full.
        session.write("buffer_percent", "0")?;
        session.write(&format!("events/{EVENT}/filter"), &filter_for(ports))?;
        let pipe_path = session.dir.join("trace_pipe");
        let pipe = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&pipe_path)
            .map_err(|e| failed("open", &pipe_path, e))?;
        session.pipe = Some(pipe);
        session.write(&format!("events/{EVENT}/enable"), "1")?;
        Ok(session)
    }

    /// The instance's directory under `/sys/kernel/tracing/instances`.
    pub fn instance_dir(&self) -> &Path {
        &self.dir
    }

    /// Events the ring buffer dropped so far (`[LOST n EVENTS]` lines).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// The events that arrived so far, in time order, without blocking.
    pub fn drain(&mut self) -> Result<Vec<Event>, ObserveError> {
        let Some(pipe) = self.pipe.as_mut() else {
            return Ok(Vec::new());
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.partial.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => break,
                Err(e) => return Err(failed("read", &self.dir.join("trace_pipe"), e)),
            }
        }
        let complete = match self.partial.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => return Ok(Vec::new()),
        };
        let text: Vec<u8> = self.partial.drain(..complete).collect();
        let mut events = Vec::new();
        for line in String::from_utf8_lossy(&text).lines() {
            if let Some(t) = parse_line(line) {
                events.push(t.to_event());
            } else if let Some(n) = lost_count(line) {
                self.lost += n;
            }
        }
        // trace_pipe merges the CPUs' buffers, but a later read may still bring older events.
        events.sort_by_key(|e| e.t);
        Ok(events)
    }

    /// Blocks up to `timeout` until at least one event arrived (or a signal interrupts).
    pub fn wait(&mut self, timeout: Duration) -> Result<Vec<Event>, ObserveError> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.drain()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if !events.is_empty() || left.is_zero() {
                return Ok(events);
            }
            let Some(pipe) = self.pipe.as_ref() else {
                return Ok(events);
            };
            // Round up so a sub-millisecond rest does not spin.
            let ms = u16::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) => {}
                Err(Errno::EINTR) => return self.drain(),
                Err(e) => {
                    return Err(ObserveError::Failed(format!(
                        "poll {}/trace_pipe: {e}",
                        self.dir.display()
                    )));
                }
            }
        }
    }

    /// A final drain, then the instance is disabled and removed.
    pub fn stop(mut self) -> Result<Vec<Event>, ObserveError> {
        let events = self.drain()?;
        self.remove()?;
        Ok(events)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), ObserveError> {
        let path = self.dir.join(file);
        fs::write(&path, value).map_err(|e| failed(&format!("write {value:?} to"), &path, e))
    }

    /// Disables the event, closes the pipe, removes the instance (once).
    fn remove(&mut self) -> Result<(), ObserveError> {
        if self.removed {
            return Ok(());
        }
        let _ = self.write(&format!("events/{EVENT}/enable"), "0");
        // An open trace_pipe holds the instance: rmdir would say EBUSY.
        self.pipe = None;
        let mut tries = 0;
        loop {
            match fs::remove_dir(&self.dir) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(failed("rmdir", &self.dir, e)),
            }
        }
        self.removed = true;
        Ok(())
    }
}

impl Drop for TraceSession {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

fn failed(what: &str, path: &Path, e: io::Error) -> ObserveError {
    ObserveError::Failed(format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Body, Lane};
    use proptest::prelude::*;

    // Captured on this machine (kernel 6.18), from an instance's trace_pipe.
    const LISTEN: &str = "         python3-14451   [000] .....   869.019228: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=4555 dport=0 saddr=127.0.0.1 daddr=0.0.0.0 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:0.0.0.0 oldstate=TCP_CLOSE newstate=TCP_LISTEN";
    const SYN_RECV: &str = "         python3-14451   [000] ..s2.   869.019384: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=4555 dport=56286 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 oldstate=TCP_LISTEN newstate=TCP_SYN_RECV";
    const V6: &str = "         python3-14451   [000] ..s2.   869.019704: inet_sock_set_state: family=AF_INET6 protocol=IPPROTO_TCP sport=4555 dport=59056 saddr=127.0.0.6 daddr=127.0.0.6 saddrv6=::1 daddrv6=::1 oldstate=TCP_LISTEN newstate=TCP_SYN_RECV";
    const SOFTIRQ: &str = "          <idle>-0       [001] ..s1. 123456.000001: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=56286 dport=4555 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 oldstate=TCP_FIN_WAIT1 newstate=TCP_FIN_WAIT2";

    #[test]
    fn parses_a_listen_line() {
        let t = parse_line(LISTEN).unwrap();
        assert_eq!(t.t_ns, 869_019_228_000);
        assert_eq!((t.comm.as_str(), t.pid, t.cpu), ("python3", 14451, 0));
        assert_eq!(t.family, "AF_INET");
        assert_eq!((t.sport, t.dport), (4555, 0));
        assert_eq!(t.saddr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(t.daddr, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!((t.old, t.new), (TcpState::Close, TcpState::Listen));
    }

    #[test]
    fn event_is_a_lab_state_change_without_owner() {
        let ev = parse_line(SYN_RECV).unwrap().to_event();
        assert_eq!((ev.pid, ev.role, ev.lane), (0, None, Lane::Lab));
        let Body::State(st) = ev.body else {
            panic!("not a state event")
        };
        assert_eq!(st.from, Some(TcpState::Listen));
        assert_eq!(st.to, TcpState::SynRecv);
        assert_eq!(st.local.as_deref(), Some("127.0.0.1:4555"));
        assert_eq!(st.remote.as_deref(), Some("127.0.0.1:56286"));
        assert_eq!(st.source, "tracepoint");
    }

    #[test]
    fn v6_uses_the_v6_fields() {
        let t = parse_line(V6).unwrap();
        assert_eq!(t.saddr, "::1".parse::<IpAddr>().unwrap());
        let Body::State(st) = t.to_event().body else {
            panic!()
        };
        assert_eq!(st.local.as_deref(), Some("[::1]:4555"));
    }

    #[test]
    fn softirq_task_and_odd_comms() {
        let t = parse_line(SOFTIRQ).unwrap();
        assert_eq!((t.comm.as_str(), t.pid, t.cpu), ("<idle>", 0, 1));
        assert_eq!(t.t_ns, 123_456_000_001_000);
        let odd = SOFTIRQ.replace("          <idle>-0", "my-prog [x] 2-77");
        let t = parse_line(&odd).unwrap();
        assert_eq!((t.comm.as_str(), t.pid), ("my-prog [x] 2", 77));
    }

    #[test]
    fn optional_columns() {
        let tgid = LISTEN.replace("python3-14451   [000]", "python3-14451 (14451) [000]");
        assert_eq!(parse_line(&tgid).unwrap().pid, 14451);
        let no_flags = LISTEN.replace(" .....", "");
        assert_eq!(parse_line(&no_flags).unwrap().t_ns, 869_019_228_000);
        let hex = LISTEN.replace("newstate=TCP_LISTEN", "newstate=0xd");
        assert_eq!(parse_line(&hex).unwrap().new, TcpState::BoundInactive);
    }

    #[test]
    fn rejects_other_lines() {
        for line in [
            "",
            "# tracer: nop",
            "CPU:1 [LOST 12 EVENTS]",
            &LISTEN.replace("IPPROTO_TCP", "IPPROTO_MPTCP"),
            &LISTEN.replace("AF_INET ", "0x1 "),
            &LISTEN.replace("869.019228", "869"),
            &LISTEN.replace("sport=4555", "sport=+4555x"),
            &LISTEN.replace("TCP_LISTEN", "TCP_BOGUS"),
            &LISTEN.replace("869.019228", "99999999999999999999.0"),
        ] {
            assert_eq!(parse_line(line), None, "{line}");
        }
        assert_eq!(lost_count("CPU:1 [LOST 12 EVENTS]"), Some(12));
    }

    #[test]
    fn filter_names_both_ends() {
        assert_eq!(filter_for(&[]), "protocol == 6");
        assert_eq!(
            filter_for(&[1060, 80]),
            "protocol == 6 && (sport == 1060 || dport == 1060 || sport == 80 || dport == 80)"
        );
    }

    #[test]
    fn instance_names() {
        assert_eq!(owner_pid("socklab-123"), Some(123));
        assert_eq!(owner_pid("socklab-123-4"), Some(123));
        assert_eq!(owner_pid("socklab-x"), None);
        assert_eq!(owner_pid("other-123"), None);
    }

    proptest! {
        #[test]
        fn never_panics_on_random_text(s in "\\PC*") {
            let _ = parse_line(&s);
        }

        #[test]
        fn never_panics_on_line_shaped_text(s in "[ -~]{0,20}-[0-9]{0,6} +\\[[0-9]{0,4}\\] [.sbdNh0-9]{0,5} +[0-9.]{0,20}: inet_sock_set_state: [ -~]{0,200}") {
            let _ = parse_line(&s);
        }

        #[test]
        fn truncations_never_panic(cut in 0usize..400, which in 0usize..4) {
            let line = [LISTEN, SYN_RECV, V6, SOFTIRQ][which];
            let mut end = cut.min(line.len());
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            // Every field is needed and no state name is a prefix of another one here.
            prop_assert_eq!(parse_line(&line[..end]).is_some(), end == line.len());
        }

        #[test]
        fn mutations_never_panic(pos in 0usize..400, byte in any::<char>(), which in 0usize..4, del in any::<bool>()) {
            let line = [LISTEN, SYN_RECV, V6, SOFTIRQ][which];
            let mut chars: Vec<char> = line.chars().collect();
            let pos = pos % chars.len();
            if del { chars.remove(pos); } else { chars[pos] = byte; }
            let s: String = chars.into_iter().collect();
            let _ = parse_line(&s);
        }

        #[test]
        fn any_comm_and_pid_round_trip(comm in "[!-~]([ -~]{0,14}[!-~])?", pid in any::<u32>(), cpu in 0u32..4096) {
            let line = LISTEN.replace("         python3-14451   [000]", &format!("{comm:>16}-{pid:<7} [{cpu:03}]"));
            let t = parse_line(&line).unwrap();
            prop_assert_eq!((t.comm.as_str(), t.pid, t.cpu), (comm.as_str(), pid, cpu));
        }

        #[test]
        fn timestamps_round_trip(secs in 0u64..10_000_000_000, usecs in 0u64..1_000_000) {
            let line = LISTEN.replace("869.019228", &format!("{secs}.{usecs:06}"));
            prop_assert_eq!(parse_line(&line).unwrap().t_ns, secs * 1_000_000_000 + usecs * 1000);
        }
    }
}
