//! `socklab run -- PROGRAM`: a traced program's socket calls as the lab's own events, with the
//! observers beside them, on one timeline.
//!
//! Each call the tracer reports is looked up in [`crate::sys::CALLS`], decoded with the same
//! spellings as the wrappers ([`super::args`]), and kept when it is about a socket (the
//! descriptor is one, per `/proc/PID/fd`) or about processes. At the call's exit stop the lab
//! looks at the socket through a duplicate of the program's descriptor (`pidfd_getfd`): its
//! type and addresses (`getsockname`, `getpeername`) and, for TCP, its state (`TCP_INFO`);
//! the duplicate is closed before the program resumes. What the lab learns per descriptor is
//! the same [`FdInfo`] the wrappers keep, so the narrator gives the same notes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use nix::sys::socket::{self as nsock, SockType, SockaddrLike, SockaddrStorage, sockopt};
use serde_json::Value;

use super::args;
use super::fds::{FdCache, FdKind};
use super::live::{LiveEvent, LiveView};
use super::{Call, Exit, Seen, Stopped};
use crate::course::notes;
use crate::error::Error;
use crate::event::record::{FdInfo, FdTable, Transport};
use crate::event::tcp_state::TcpState;
use crate::event::{AcceptQueue, Args, Body, Event, Lane, Role, Syscall, timeline};
use crate::observe::capture::PortWatch;
use crate::observe::session::{ObserveOptions, Observers, Place, Scope, tiers};
use crate::render::prompt::{Input, LineReader};
use crate::sys::ffi::TcpInfoRaw;
use crate::sys::names;
use crate::sys::table::{self, CallSpec, Kind, Probe};

/// What the lab says it did to look at a socket after a call.
const PROBE: &str = "pidfd_getfd+getsockopt(TCP_INFO)";

/// How to run and watch a program.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// The program and its arguments (looked up on PATH as a shell does).
    pub argv: Vec<OsString>,
    /// Attach to this running process instead of starting `argv`.
    pub pid: Option<i32>,
    /// Read TCP_INFO after each call on a TCP socket.
    pub probe: bool,
    /// Probe after every data call, even on a busy connection (else sampled as the wrappers
    /// do: `--probe-all`).
    pub probe_all: bool,
    /// Which observers to run beside the tracer.
    pub observe: ObserveOptions,
    /// Pause before each socket call of the program until Enter (q: run to the end).
    pub step: bool,
    /// Show the events on stdout as they happen, in this format (JSON lines when true).
    pub live: Option<bool>,
    /// Live, keep no timeline for the end (nothing is drawn from it): the memory stays flat
    /// however long the program runs.
    pub live_only: bool,
}

/// One process of the traced program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Its process id.
    pub pid: u32,
    /// The process it was forked from (None for the one socklab started).
    pub parent: Option<u32>,
    /// Its program's name (`python3`).
    pub name: String,
    /// Server once it listened, client once it connected (the first of the two).
    pub role: Option<Role>,
    /// How it ended, if it did while traced.
    pub exit: Option<Exit>,
}

impl Process {
    /// `python3[4242]`, as the timeline names it.
    pub fn label(&self) -> String {
        format!("{}[{}]", self.name, self.pid)
    }
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Traced {
    /// The merged timeline: calls, process events, state changes and packets.
    pub events: Vec<Event>,
    /// How the launched (or attached) program ended; None when socklab detached from it.
    pub exit: Option<Exit>,
    /// Every process seen, by pid.
    pub processes: BTreeMap<u32, Process>,
    /// Why an observer could not run (one line each).
    pub notices: Vec<String>,
    /// The local ports the program's sockets had.
    pub ports: Vec<u16>,
}

impl Traced {
    /// The label of `pid` (`python3[4242]`), or `pid 4242` for a process not seen.
    pub fn label(&self, pid: u32) -> String {
        self.processes
            .get(&pid)
            .map_or_else(|| format!("pid {pid}"), Process::label)
    }
}

/// The calls the seccomp filter stops at: every row of the table.
pub fn traced_numbers() -> Vec<u32> {
    // execve is followed through the exec event; a stop at it would add nothing.
    table::CALLS
        .iter()
        .filter(|c| c.name != "execve")
        .map(|c| c.nr as u32)
        .collect()
}

/// Starts the observers, runs `cfg.argv` under the tracer until it and all its processes end
/// (or Ctrl-C ends them), and returns the merged timeline.
pub fn run(cfg: &RunConfig) -> Result<Traced, Error> {
    // The state observers see every TCP socket (what is not the program's is dropped); the
    // capture keeps the ports the program's calls name, learned before each call goes on.
    let place = Place::default();
    let watch = PortWatch::new();
    let scope = Scope {
        learned: Some(watch.clone()),
        ..Scope::default()
    };
    let observers = Observers::start_tiers(&scope, tiers(&cfg.observe, &place));
    let mut book = Book::new(cfg.probe);
    if observers.has_capture() {
        book.watch = Some(watch);
    }
    book.stepping = cfg.step;
    book.probe_all = cfg.probe_all;
    // Live, a thread takes the observers and shows the events as they come.
    let mut said = Vec::new();
    let (observers, view) = match cfg.live {
        Some(json) => {
            for n in observers.notices() {
                if let Body::Note(n) = &n.body {
                    eprintln!("socklab: {}", n.text);
                    said.push(n.text.clone());
                }
            }
            let (view, tx) =
                LiveView::start(observers, Arc::clone(&book.owners), json, !cfg.live_only)
                    .map_err(|e| Error::Other(format!("cannot start the live view: {e}")))?;
            book.live = Some(tx);
            book.keep = !cfg.live_only;
            (None, Some(view))
        }
        None => (Some(observers), None),
    };
    let mut seen = |stopped: &Stopped<'_>, seen: Seen| book.seen(stopped, seen);
    let res = match cfg.pid {
        Some(pid) => super::attach(pid, &traced_numbers(), &mut seen),
        None => super::run(&cfg.argv, &traced_numbers(), &mut seen).map(Some),
    };
    book.live = None;
    let observed = match (observers, view) {
        (Some(observers), _) => observers.finish(),
        (None, Some(view)) => view.finish(),
        (None, None) => Vec::new(),
    };
    let exit = res?;
    let mut traced = book.finish(observed, exit);
    traced.notices.retain(|n| !said.contains(n));
    if let Some(path) = &cfg.observe.pcap
        && path.exists()
    {
        // The capture kept the ports the program named; the file keeps its own packets only.
        let ports: HashSet<u16> = traced.ports.iter().copied().collect();
        if let Err(e) = crate::observe::capture::keep_ports(path, |s, d| {
            ports.contains(&s) || ports.contains(&d)
        }) {
            traced.notices.push(e.to_string());
        }
    }
    Ok(traced)
}

/// What the lab knows of one process while it runs.
struct Proc {
    info: Process,
    /// Its descriptors, as the wrappers' table keeps them.
    fds: FdTable,
    /// Its epoll instances that watch a socket.
    epolls: HashSet<i32>,
    /// It made a 32-bit call (said once).
    foreign: bool,
    /// Its role comes from its own listen or connect, not from its parent's.
    own_role: bool,
}

/// Which process the kernel's events belong to, from what the calls showed: shared with the
/// live view, which places the kernel's events as they come.
#[derive(Debug, Default)]
pub(super) struct Owners {
    /// Local TCP/UDP ports of the program's sockets, and the process that had each.
    ports: HashMap<u16, u32>,
    /// The remote addresses the program's sockets connected to: when each process started
    /// its call, in order (two processes may connect to the same server one after the other).
    peers: HashMap<SocketAddr, Vec<(u64, u32)>>,
}

impl Owners {
    fn learn(&mut self, pid: u32, t: u64, info: &FdInfo) {
        if let Some(a) = info.local
            && a.port() != 0
        {
            self.ports.insert(a.port(), pid);
        }
        if let Some(r) = info.remote {
            self.connecting(r, t, pid, false);
        }
    }

    /// `pid` began connecting to `target` at `t` (`again`: a new attempt counts even when
    /// this process was seen there before).
    fn connecting(&mut self, target: SocketAddr, t: u64, pid: u32, again: bool) {
        let seen = self.peers.entry(target).or_default();
        if again || !seen.iter().any(|&(_, p)| p == pid) {
            seen.push((t, pid));
        }
    }

    /// The process a kernel state change at `t` belongs to: the one whose socket has its local
    /// port, else (a connect's first state, before the port shows) the last one that began
    /// connecting to its remote address before `t`.
    pub(super) fn owner(&self, t: u64, local: Option<&str>, remote: Option<&str>) -> Option<u32> {
        let by_port = local
            .and_then(timeline::port_of)
            .and_then(|p| self.ports.get(&p).copied());
        by_port.or_else(|| {
            let remote: SocketAddr = remote?.parse().ok()?;
            let seen = self.peers.get(&remote)?;
            seen.iter()
                .rev()
                .find(|&&(start, _)| start <= t)
                .or(seen.first())
                .map(|&(_, pid)| pid)
        })
    }

    /// True when a packet between `src` and `dst` has a port of the program's at one end.
    pub(super) fn owns_packet(&self, src: &str, dst: &str) -> bool {
        [src, dst]
            .map(|a| timeline::port_of(a).unwrap_or(0))
            .iter()
            .any(|p| self.ports.contains_key(p))
    }

    /// The event `ev` as the program's (its pid set), or None when it is not about the
    /// program's sockets: a state change goes to its owner, a packet stays on the wire.
    pub(super) fn place(&self, mut ev: Event) -> Option<Event> {
        match &ev.body {
            Body::State(st) => {
                ev.pid = self.owner(ev.t, st.local.as_deref(), st.remote.as_deref())?;
                Some(ev)
            }
            Body::Packet(p) => self.owns_packet(&p.src, &p.dst).then_some(ev),
            _ => None,
        }
    }
}

/// Turns what the tracer reports into events.
struct Book {
    probe: bool,
    kinds: FdCache,
    procs: HashMap<u32, Proc>,
    events: Vec<Event>,
    owners: Arc<Mutex<Owners>>,
    /// The live view's end of its channel, when the events are shown as they come.
    live: Option<Sender<LiveEvent>>,
    /// Keep the events for the finished timeline (not when only the live view wants them).
    keep: bool,
    /// `--probe-all`: a probe after every data call, none sampled.
    probe_all: bool,
    /// Step mode: pause before each socket call (until q, end of input or Ctrl-C).
    stepping: bool,
    /// The answers at the pauses.
    answers: LineReader,
    /// The capture's ports, when packets are captured: each port the program uses is added
    /// before its call goes on.
    watch: Option<PortWatch>,
}

impl Book {
    fn new(probe: bool) -> Book {
        Book {
            probe,
            kinds: FdCache::default(),
            procs: HashMap::new(),
            events: Vec::new(),
            owners: Arc::default(),
            live: None,
            keep: true,
            probe_all: false,
            stepping: false,
            answers: LineReader::default(),
            watch: None,
        }
    }

    fn proc_mut(&mut self, pid: u32) -> &mut Proc {
        self.procs.entry(pid).or_insert_with(|| Proc {
            info: Process {
                pid,
                parent: None,
                name: comm(pid),
                role: None,
                exit: None,
            },
            fds: FdTable::default(),
            epolls: HashSet::new(),
            foreign: false,
            own_role: false,
        })
    }

    /// Keeps `ev` for the timeline, and shows it now in a live view.
    fn push(&mut self, ev: Event) {
        if let Some(tx) = &self.live {
            let label = self
                .procs
                .get(&ev.pid)
                .map(|p| p.info.label())
                .unwrap_or_default();
            // A live view that ended (its output closed) leaves the rest to the timeline.
            if !self.keep {
                let _ = tx.send(LiveEvent { event: ev, label });
                return;
            }
            let _ = tx.send(LiveEvent {
                event: ev.clone(),
                label,
            });
        }
        self.events.push(ev);
    }

    fn action(&mut self, pid: u32, tid: u32, key: &str, args: &[(&str, String)]) {
        self.push(Event {
            t: crate::event::record::now_ns(),
            pid,
            tid,
            role: None,
            lane: Lane::Lab,
            body: Body::Note(notes::note(key, args)),
        });
    }

    fn seen(&mut self, stopped: &Stopped<'_>, seen: Seen) {
        match seen {
            Seen::Call(c) => self.call(stopped, &c),
            Seen::Entering { pid, tid, nr, args } => {
                // A read or write of a file, a pipe, a terminal: not the lab's, so no exit stop.
                if matches!(
                    nr as i64,
                    libc::SYS_read
                        | libc::SYS_write
                        | libc::SYS_readv
                        | libc::SYS_writev
                        | libc::SYS_close
                ) && !matches!(self.kinds.kind(pid, args[0] as i32), FdKind::Socket { .. })
                    && self.proc_mut(pid as u32).fds.get(args[0] as i32).is_none()
                {
                    stopped.skip_exit();
                    return;
                }
                if self.watch.is_some() {
                    self.watch_target(stopped, nr, &args);
                }
                if self.stepping {
                    self.pause(stopped, pid, tid, nr, &args);
                }
            }
            Seen::Spawned {
                parent_pid,
                tid,
                pid,
            } => {
                // A thread shares its process's descriptors; only a new process is news.
                if pid == parent_pid || tid != pid {
                    return;
                }
                let (parent, child) = (parent_pid as u32, pid as u32);
                let copy = self.proc_mut(parent).clone_for_child(child);
                self.procs.insert(child, copy);
                self.kinds.inherit(parent_pid, pid);
                let parent_label = self.proc_mut(parent).info.label();
                self.action(
                    child,
                    child,
                    "proc.started",
                    &[("pid", child.to_string()), ("parent", parent_label)],
                );
            }
            Seen::Exec { pid, exe } => {
                let p = pid as u32;
                self.kinds.forget_process(pid);
                let name = exe
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| comm(p));
                let proc = self.proc_mut(p);
                proc.info.name = name;
                // Close-on-exec descriptors are gone now.
                proc.fds
                    .retain(|fd| Path::new(&format!("/proc/{pid}/fd/{fd}")).exists());
                proc.epolls.clear();
                let program = exe.display().to_string();
                self.action(
                    p,
                    p,
                    "proc.exec",
                    &[("pid", p.to_string()), ("program", program)],
                );
            }
            Seen::Foreign { pid, tid, nr, .. } => {
                let proc = self.proc_mut(pid as u32);
                if !std::mem::replace(&mut proc.foreign, true) {
                    self.action(
                        pid as u32,
                        tid as u32,
                        "proc.foreign",
                        &[("pid", pid.to_string()), ("nr", nr.to_string())],
                    );
                }
            }
            Seen::Attached { pid, threads } => {
                self.watch_open_sockets(pid);
                // On stderr, beside the program's output: from here every call is seen.
                eprintln!(
                    "socklab: {}",
                    notes::text(
                        "run.attached",
                        &[("pid", pid.to_string()), ("threads", threads.to_string())]
                    )
                );
            }
            Seen::Exited { pid, tid, how } => {
                if pid != tid {
                    return;
                }
                let p = pid as u32;
                self.proc_mut(p).info.exit = Some(how);
                self.kinds.forget_process(pid);
                let (key, args) = match how {
                    Exit::Code(code) => ("proc.exited", ("code", code.to_string())),
                    Exit::Signal(sig) => ("proc.killed", ("signal", sig.as_str().to_string())),
                };
                self.action(p, p, key, &[("pid", p.to_string()), args]);
            }
        }
    }

    fn call(&mut self, stopped: &Stopped<'_>, c: &Call) {
        let Some(row) = table::by_nr(c.nr as i64) else {
            return;
        };
        // restart_syscall goes on with an interrupted call: that call's row decides all but
        // the name (its descriptors, its result in memory, whether the lab looks).
        let spec = c
            .resumes
            .and_then(|nr| table::by_nr(nr as i64))
            .unwrap_or(row);
        let (pid, tid) = (c.pid as u32, c.tid as u32);
        let new_fds = args::new_fds(spec, &c.args, c.ret, stopped);
        for &fd in &new_fds {
            self.kinds.forget(c.pid, fd);
            // The number holds something new (a dup2 may put a file where a socket was).
            self.proc_mut(pid).fds.remove(fd);
        }
        // SCM_RIGHTS: a number that held a file may hold a received socket now.
        let received = super::inject::received(spec.nr, &c.args, c.ret, &|a, n| stopped.read(a, n));
        for fd in received {
            self.kinds.forget(c.pid, fd);
            self.proc_mut(pid).fds.remove(fd);
        }
        if spec.name == "close_range"
            && c.errno.is_none()
            && c.args[2] & u64::from(libc::CLOSE_RANGE_CLOEXEC) == 0
        {
            let (first, last) = (c.args[0] as u32, c.args[1] as u32);
            self.kinds.forget_range(c.pid, first, last);
            let closed = |fd: i32| (first..=last).contains(&(fd as u32));
            self.proc_mut(pid).fds.retain(|fd| !closed(fd));
            self.proc_mut(pid).epolls.retain(|&fd| !closed(fd));
        }
        let fd = args::fd_with(spec, &c.args, c.ret, stopped);
        let Some(fd) = self.concerns(spec, c, fd, &new_fds, stopped) else {
            return;
        };
        let before = fd.and_then(|fd| self.proc_mut(pid).fds.get(fd).cloned());
        let mut decoded = args::decode(spec, &c.args, c.ret, stopped);
        if c.resumes.is_some() {
            decoded = resuming(spec.name, decoded);
        }
        let ok = c.errno.is_none();

        // What the call did to the descriptors.
        let mut probe_state = None;
        for &new in &new_fds {
            let Some(dup) = stopped.socket(new) else {
                continue;
            };
            let accepts = matches!(spec.name, "accept" | "accept4");
            if accepts || matches!(spec.name, "socket" | "socketpair") {
                // These calls make sockets only: no /proc link to read at the next call.
                if let Ok(st) = nix::sys::stat::fstat(&dup) {
                    self.kinds
                        .set(c.pid, new, FdKind::Socket { inode: st.st_ino });
                }
            }
            let accepted = accepts
                .then(|| self.accepted(pid, c, stopped, &dup))
                .flatten();
            let look = accepted.unwrap_or_else(|| look(&dup));
            if fd == Some(new) {
                probe_state = self.state(spec, look.transport, &dup);
            }
            drop(dup);
            let mut info = look.info();
            if matches!(spec.name, "accept" | "accept4") {
                info.accepted_from = c.args.first().map(|&l| l as i32);
            }
            self.learn_port(pid, c.start_ns, &info);
            self.proc_mut(pid).fds.insert(new, info);
        }
        // A busy connection's data call: its addresses are known and its state is sampled as
        // the wrappers sample theirs, so most such calls need no look at the socket at all.
        let mut sampling_began = false;
        // A call that neither probes nor changes a known socket (close, epoll_ctl, dup)
        // needs no look either.
        let quiet = fd
            .filter(|&fd| {
                let data = spec.probe == Probe::Sampled && c.ret > 0;
                let inert = spec.probe == Probe::None && spec.name != "close";
                (data || inert) && !new_fds.contains(&fd)
            })
            .is_some_and(|fd| {
                let (probe, probe_all) = (self.probe, self.probe_all);
                let Some(i) = self.proc_mut(pid).fds.get_mut(fd) else {
                    return false;
                };
                if spec.probe == Probe::None {
                    return true;
                }
                if i.local.is_none() || i.remote.is_none() {
                    return false;
                }
                let skip = !probe
                    || i.transport != Transport::Tcp
                    || (!probe_all && i.may_skip_probe(c.end_ns));
                sampling_began = skip && probe && i.transport == Transport::Tcp && i.first_skip();
                skip
            });
        if let Some(fd) = fd
            && !new_fds.contains(&fd)
            && !quiet
        {
            if ok && matches!(spec.name, "close") {
                self.proc_mut(pid).fds.remove(fd);
                self.kinds.forget(c.pid, fd);
            } else if matches!(self.kinds.kind(c.pid, fd), FdKind::Socket { .. })
                && let Some(dup) = stopped.socket(fd)
            {
                let proc = self.proc_mut(pid);
                // A connected socket's addresses cannot change: after a data call only its
                // state is read (three syscalls fewer per call).
                // Nor can a listener's (a later bind fails): an accept that found no
                // connection reads only the queue.
                let look = match proc.fds.get(fd) {
                    Some(i)
                        if spec.probe == Probe::Sampled
                            && i.local.is_some()
                            && i.remote.is_some() =>
                    {
                        Look::of(i)
                    }
                    Some(i) if i.listening && i.local.is_some() => Look::of(i),
                    _ => look(&dup),
                };
                if proc.fds.get(fd).is_none() {
                    proc.fds.insert(fd, look.info());
                }
                let Some(i) = proc.fds.get_mut(fd) else {
                    return;
                };
                i.local = look.local.or(i.local);
                i.remote = look.remote.or(i.remote);
                match spec.name {
                    "bind" if ok => i.bound = true,
                    "listen" if ok => i.listening = true,
                    "connect" => i.connected = true,
                    _ => {}
                }
                let info = i.clone();
                probe_state = self.state(spec, info.transport, &dup);
                drop(dup);
                if probe_state.is_some()
                    && let Some(i) = self.proc_mut(pid).fds.get_mut(fd)
                {
                    i.probed(c.end_ns);
                }
                self.learn_port(pid, c.start_ns, &info);
            }
        }
        if spec.name == "connect"
            && let Some(bytes) = stopped.read(c.args[1], (c.args[2] as usize).min(128))
            && let Ok(target) = super::decode::sockaddr(&bytes).parse::<SocketAddr>()
        {
            // Even a refused connect's SYN_SENT belongs to this process.
            self.owners().connecting(target, c.start_ns, pid, true);
        }
        if spec.name == "epoll_ctl" && ok {
            self.proc_mut(pid).epolls.insert(c.args[0] as i32);
        }
        // A connect makes a client when it is on a TCP or UDP socket (refused or not) or when
        // it worked: a library's failed look for a local daemon (nscd's Unix socket) does not.
        let inet = fd
            .and_then(|fd| self.proc_mut(pid).fds.get(fd))
            .is_some_and(|i| i.transport != Transport::Other);
        let role = match spec.name {
            // accept too: a process attached after its listen() is a server by its accepts.
            "listen" | "accept" | "accept4" if ok => Some(Role::Server),
            "connect" if ok || inet || c.errno == Some(nix::errno::Errno::EINPROGRESS) => {
                Some(Role::Client)
            }
            _ => None,
        };
        if let Some(role) = role {
            // The first of its own decides; one inherited from the parent gives way.
            let proc = self.proc_mut(pid);
            if !std::mem::replace(&mut proc.own_role, true) {
                proc.info.role = Some(role);
            }
        }

        // The event, as a wrapper would have recorded it.
        let proc = self.proc_mut(pid);
        let mut after = fd.and_then(|fd| proc.fds.get_mut(fd));
        let tcp_state = probe_state.and_then(|ti| TcpState::from_linux(ti.state));
        if let (Some(i), Some(st)) = (after.as_deref_mut(), tcp_state) {
            i.last_state = Some(st);
        }
        if let Some(i) = after.as_deref_mut() {
            i.refresh_texts();
        }
        let after = after.map(|i| i.clone());
        let addrs = after.as_ref().or(before.as_ref());
        let queue = probe_state
            .filter(|_| tcp_state == Some(TcpState::Listen))
            .map(|ti| AcceptQueue {
                len: ti.unacked,
                backlog: ti.sacked,
            });
        let sc = Syscall {
            name: row.name.into(),
            fd,
            args: decoded,
            ret: c.ret,
            // strace's name for an interrupted call: what the program sees depends on its
            // handler (EINTR, or the call made again).
            errno: c.restart.map(String::from).or(c.errno.map(names::errno)),
            dur_ns: c.end_ns.saturating_sub(c.start_ns),
            tcp_state,
            local: addrs.and_then(FdInfo::local_text),
            remote: addrs.and_then(FdInfo::remote_text),
            queue,
            probe: probe_state.map(|_| PROBE.into()),
        };
        let mut notes = notes::narrate_syscall(&sc, before.as_ref(), after.as_ref());
        if sampling_began && let Some(fd) = fd {
            // Why the states stop appearing on this descriptor's lines.
            notes.push(notes::note("probe.sampled", &[("fd", fd.to_string())]));
        }
        let role = proc.info.role;
        let t = c.end_ns;
        self.push(Event {
            t,
            pid,
            tid,
            role,
            lane: role.map_or(Lane::Lab, Role::lane),
            body: Body::Syscall(sc),
        });
        for n in notes {
            self.push(Event {
                t,
                pid,
                tid,
                role,
                lane: role.map_or(Lane::Lab, Role::lane),
                body: Body::Note(n),
            });
        }
    }

    /// Whether the call belongs on the timeline, and the descriptor it is about: a call on a
    /// socket, one that made sockets, a process call, a wait on sockets.
    fn concerns(
        &mut self,
        spec: &CallSpec,
        c: &Call,
        fd: Option<i32>,
        new_fds: &[i32],
        mem: &Stopped<'_>,
    ) -> Option<Option<i32>> {
        let pid = c.pid;
        let is_socket = |book: &mut Book, fd: i32| {
            matches!(book.kinds.kind(pid, fd), FdKind::Socket { .. })
                || book.proc_mut(pid as u32).fds.get(fd).is_some()
        };
        match spec.name {
            "execve" | "openat" => return None,
            "clone" | "clone3" | "fork" | "vfork" | "wait4" | "kill" => return Some(None),
            // The restart of a call the tracer did not see (attached mid-call): what it waits
            // on is not known, so it is shown as it is.
            "restart_syscall" => return Some(None),
            "socket" | "socketpair" => return Some(fd),
            // What an accept returns is a socket.
            "accept" | "accept4" if !new_fds.is_empty() => return Some(fd),
            _ => {}
        }
        if !new_fds.is_empty() {
            // accept, dup of a socket, fcntl(F_DUPFD) of a socket: the new one tells.
            return new_fds.iter().any(|&n| is_socket(self, n)).then_some(fd);
        }
        let about_socket = |book: &mut Book| {
            spec.args
                .iter()
                .zip(c.args)
                .filter(|(a, _)| a.kind == Kind::Fd)
                .any(|(_, raw)| is_socket(book, raw as i32))
        };
        match spec.name {
            "epoll_wait" | "epoll_pwait" | "epoll_pwait2" => self
                .proc_mut(pid as u32)
                .epolls
                .contains(&(c.args[0] as i32))
                .then_some(fd),
            "poll" | "ppoll" | "select" | "pselect6" => {
                // A wait on sockets: the event names the first descriptor, as the wrapper's
                // does (and strace's line), and the lab looks at it only when it is a socket.
                let fds = args::waited_fds(spec.name, &c.args, mem).unwrap_or_default();
                let any = fds.iter().any(|&f| is_socket(self, f));
                any.then(|| fd.filter(|&f| is_socket(self, f)))
            }
            _ if about_socket(self) => Some(fd),
            _ => None,
        }
    }

    /// What an accept's new socket is, from the call itself: the peer's address the kernel
    /// wrote (or, passed none, `getpeername`), the listener's address and transport (fewer
    /// syscalls than a look). None when the listener's address is a wildcard.
    fn accepted(&mut self, pid: u32, c: &Call, mem: &Stopped<'_>, dup: &OwnedFd) -> Option<Look> {
        let listener = self.proc_mut(pid).fds.get(c.args[0] as i32)?;
        let local = listener.local.filter(|a| !a.ip().is_unspecified())?;
        let transport = listener.transport;
        if c.args[1] == 0 || c.args[2] == 0 {
            // accept(fd, NULL, NULL): the peer from the socket itself.
            let remote = nsock::getpeername::<SockaddrStorage>(dup.as_raw_fd()).ok();
            return Some(Look {
                transport,
                local: Some(local),
                remote: inet(remote.as_ref()?),
            });
        }
        let len = mem.read(c.args[2], 4).filter(|b| b.len() == 4)?;
        let len = u32::from_ne_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let bytes = mem.read(c.args[1], len.min(128))?;
        let remote = super::decode::sockaddr(&bytes).parse::<SocketAddr>().ok()?;
        Some(Look {
            transport,
            local: Some(local),
            remote: Some(remote),
        })
    }

    /// Step mode: before a socket call, says which process is about to make which call and
    /// why, and waits for Enter (the program stays stopped at the call's entry meanwhile).
    fn pause(&mut self, stopped: &Stopped<'_>, pid: i32, tid: i32, nr: u64, raw: &[u64; 6]) {
        let Some(spec) = table::by_nr(nr as i64) else {
            return;
        };
        // A wait pauses when it waits on a socket, as its event is shown only then.
        let fds = match spec.name {
            "socket" | "socketpair" => None,
            "epoll_wait" | "epoll_pwait" | "epoll_pwait2" => {
                if !self.proc_mut(pid as u32).epolls.contains(&(raw[0] as i32)) {
                    return;
                }
                None
            }
            _ => args::waited_fds(spec.name, raw, stopped).or_else(|| {
                let named = spec
                    .args
                    .iter()
                    .zip(raw)
                    .filter(|(a, _)| a.kind == Kind::Fd);
                Some(named.map(|(_, &fd)| fd as i32).collect())
            }),
        };
        let socket_call = fds.is_none_or(|fds| {
            fds.into_iter()
                .any(|fd| matches!(self.kinds.kind(pid, fd), FdKind::Socket { .. }))
        });
        if !socket_call {
            return;
        }
        let head = Syscall {
            name: spec.name.into(),
            fd: None,
            args: args::decode(spec, raw, -1, stopped),
            ret: 0,
            errno: None,
            dur_ns: 0,
            tcp_state: None,
            local: None,
            remote: None,
            queue: None,
            probe: None,
        };
        let label = self.proc_mut(pid as u32).info.label();
        let who = if tid == pid {
            label
        } else {
            format!("{label} [tid {tid}]")
        };
        let call = crate::render::live::human::call_head(&head);
        eprintln!("{who}  {}", notes::text("step.paused", &[("call", call)]));
        eprintln!("    \u{21b3} {}", crate::programs::step::why(spec.name));
        eprint!("{}", notes::text("run.step_prompt", &[]));
        let quit = loop {
            match self.answers.poll(std::time::Duration::from_secs(1)) {
                Input::Line(l) if matches!(l.trim(), "q" | "quit") => break Some("step.quit"),
                Input::Line(_) => break None,
                Input::Eof => break Some("step.eof"),
                Input::Interrupted => break Some("run.step_interrupted"),
                Input::Nothing => {}
            }
        };
        if let Some(key) = quit {
            eprintln!();
            eprintln!("{}", notes::text(key, &[]));
            self.stepping = false;
        }
    }

    /// TCP_INFO through the duplicate `dup`, when the lab probes after this call.
    fn state(&self, spec: &CallSpec, transport: Transport, dup: &OwnedFd) -> Option<TcpInfoRaw> {
        let wanted = self.probe && transport == Transport::Tcp && spec.probe != Probe::None;
        wanted
            .then(|| crate::sys::ffi::tcp_info(dup.as_raw_fd()).ok())
            .flatten()
    }

    fn learn_port(&mut self, pid: u32, t: u64, info: &FdInfo) {
        self.owners().learn(pid, t, info);
        // A client's socket is kept by its peer's port (its own changes with each connect);
        // any other by its own.
        let port = match (info.remote, info.local) {
            (Some(r), _) if info.accepted_from.is_none() => Some(r.port()),
            (_, Some(l)) => Some(l.port()),
            _ => None,
        };
        if let Some(port) = port {
            self.watch_port(port);
        }
    }

    /// The capture keeps `port` from now on.
    fn watch_port(&mut self, port: u16) {
        let Some(watch) = &self.watch else {
            return;
        };
        if let Err(e) = watch.add(port) {
            // Said once; the capture then keeps what it kept.
            eprintln!("socklab: the capture cannot follow port {port}: {e}");
            self.watch = None;
        }
    }

    /// At a bind, connect, sendto, sendmsg or sendmmsg, before it goes on: the ports it
    /// names, so the capture keeps its first packet (a connect's SYN) too.
    fn watch_target(&mut self, stopped: &Stopped<'_>, nr: u64, raw: &[u64; 6]) {
        for (addr, len) in args::destinations(nr as i64, raw, stopped) {
            if addr == 0 || len < 4 {
                continue;
            }
            if let Some(port) = stopped
                .read(addr, len.min(128) as usize)
                .and_then(|b| super::decode::inet_port(&b))
            {
                self.watch_port(port);
            }
        }
    }

    /// Attached to a running process: the ports of the sockets it holds already.
    fn watch_open_sockets(&mut self, pid: i32) {
        if self.watch.is_none() {
            return;
        }
        let Ok(pidfd) = crate::sys::ffi::pidfd_open(nix::unistd::Pid::from_raw(pid)) else {
            return;
        };
        for fd in super::inject::sockets_of(pid) {
            let Ok(dup) = crate::sys::ffi::pidfd_getfd(std::os::fd::AsFd::as_fd(&pidfd), fd) else {
                continue;
            };
            let seen = look(&dup);
            drop(dup);
            for a in [seen.local, seen.remote].into_iter().flatten() {
                self.watch_port(a.port());
            }
        }
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, Owners> {
        self.owners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The merged timeline: the calls, and what the observers saw of the program's sockets.
    fn finish(mut self, observed: Vec<Event>, exit: Option<Exit>) -> Traced {
        self.drop_unrelated_processes();
        let mut notices = Vec::new();
        let owners = std::mem::take(&mut *self.owners());
        for ev in observed {
            if let Body::Note(n) = &ev.body {
                notices.push(n.text.clone());
            } else if let Some(ev) = owners.place(ev) {
                self.events.push(ev);
            }
        }
        // Every event of a process goes on the lane of the role it ended with.
        for ev in &mut self.events {
            if matches!(ev.body, Body::Packet(_)) {
                continue;
            }
            if let Some(p) = self.procs.get(&ev.pid)
                && let Some(role) = p.info.role
            {
                ev.role = Some(role);
                ev.lane = role.lane();
            }
        }
        let listener = self.procs.values().find_map(|p| {
            (p.info.role == Some(Role::Server))
                .then(|| owners.ports.iter().find(|(_, pid)| **pid == p.info.pid))
                .flatten()
                .map(|(port, _)| *port)
        });
        if let Some(port) = listener {
            timeline::assign_lanes(&mut self.events, port);
        }
        timeline::sort(&mut self.events);
        timeline::add_insight_notes(&mut self.events);
        timeline::sort(&mut self.events);
        let processes = self
            .procs
            .into_iter()
            .map(|(pid, p)| (pid, p.info))
            .collect();
        let mut ports: Vec<u16> = owners.ports.keys().copied().collect();
        ports.sort_unstable();
        Traced {
            events: self.events,
            exit,
            processes,
            notices,
            ports,
        }
    }
}

/// A process's own life (started, exec, exited) or its calls about processes (clone, wait4,
/// kill), as opposed to its socket calls.
pub(super) fn is_process_event(ev: &Event) -> bool {
    match &ev.body {
        Body::Note(n) => n.key.starts_with("proc."),
        Body::Syscall(sc) => matches!(
            sc.name.as_ref(),
            "clone" | "clone3" | "fork" | "vfork" | "wait4" | "kill"
        ),
        _ => false,
    }
}

impl Book {
    /// Keeps the process events of the processes that used sockets, from the exec of the
    /// program that used them on: a shell or launcher around the program, and what a process
    /// did before it became that program, are not the lesson.
    fn drop_unrelated_processes(&mut self) {
        let mut first_socket: HashMap<u32, u64> = HashMap::new();
        for ev in &self.events {
            let socket_call = matches!(ev.body, Body::Syscall(_)) && !is_process_event(ev);
            if socket_call {
                let t = ev.t.saturating_sub(ev.syscall().map_or(0, |sc| sc.dur_ns));
                first_socket
                    .entry(ev.pid)
                    .and_modify(|f| *f = (*f).min(t))
                    .or_insert(t);
            }
        }
        let mut since: HashMap<u32, u64> = HashMap::new();
        for ev in &self.events {
            let Some(&first) = first_socket.get(&ev.pid) else {
                continue;
            };
            if let Body::Note(n) = &ev.body
                && n.key == "proc.exec"
                && ev.t <= first
            {
                since.insert(ev.pid, ev.t);
            }
        }
        let kept = |ev: &Event| match first_socket.get(&ev.pid) {
            None => false,
            Some(_) => ev.t >= since.get(&ev.pid).copied().unwrap_or(0),
        };
        // A dropped call's notes go with it (same process, thread and time).
        let dropped: HashSet<(u32, u32, u64)> = self
            .events
            .iter()
            .filter(|ev| matches!(ev.body, Body::Syscall(_)) && is_process_event(ev) && !kept(ev))
            .map(|ev| (ev.pid, ev.tid, ev.t))
            .collect();
        self.events.retain(|ev| {
            if is_process_event(ev) {
                return kept(ev);
            }
            !(matches!(ev.body, Body::Note(_)) && dropped.contains(&(ev.pid, ev.tid, ev.t)))
        });
    }
}

impl Proc {
    /// The child's copy after fork: the same descriptors, and the same role (a forking
    /// server's child serves).
    fn clone_for_child(&self, pid: u32) -> Proc {
        Proc {
            info: Process {
                pid,
                parent: Some(self.info.pid),
                name: self.info.name.clone(),
                role: self.info.role,
                exit: None,
            },
            fds: self.fds.clone(),
            epolls: self.epolls.clone(),
            foreign: false,
            own_role: false,
        }
    }
}

/// restart_syscall's arguments: `resumes` (the interrupted call's name, shown as strace
/// shows it: `<... resuming interrupted poll ...>`), then that call's, decoded at the restart's
/// end (poll's `revents`).
fn resuming(call: &'static str, decoded: Args) -> Args {
    let mut args = Args::with_capacity(decoded.entries().len() + 1);
    args.push("resumes", Value::from(call));
    for (k, v) in decoded.entries() {
        args.insert(k.clone(), v.clone());
    }
    args
}

/// `/proc/PID/comm`: the program's name as the kernel keeps it.
fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// What a socket is, read through the lab's duplicate.
struct Look {
    transport: Transport,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
}

impl Look {
    /// What the lab already knows of a socket.
    fn of(i: &FdInfo) -> Look {
        Look {
            transport: i.transport,
            local: i.local,
            remote: i.remote,
        }
    }

    /// A fresh descriptor entry for it.
    fn info(&self) -> FdInfo {
        let mut i = FdInfo::new(self.transport);
        i.local = self.local;
        i.remote = self.remote;
        i
    }
}

fn inet(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(a) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from(*a));
    }
    addr.as_sockaddr_in6().map(|a| SocketAddr::from(*a))
}

/// The socket's type and addresses (`getsockopt(SO_TYPE)`, `getsockname`, `getpeername` on the
/// duplicate). An unbound port 0 is no address yet.
fn look(dup: &OwnedFd) -> Look {
    let fd = dup.as_raw_fd();
    let local = nsock::getsockname::<SockaddrStorage>(fd).ok();
    let inet_family = local
        .as_ref()
        .and_then(SockaddrLike::family)
        .is_some_and(|f| matches!(f, nsock::AddressFamily::Inet | nsock::AddressFamily::Inet6));
    let transport = match nsock::getsockopt(dup, sockopt::SockType) {
        Ok(SockType::Stream) if inet_family => Transport::Tcp,
        Ok(SockType::Datagram) if inet_family => Transport::Udp,
        _ => Transport::Other,
    };
    let local = local
        .as_ref()
        .and_then(inet)
        .filter(|a| a.port() != 0 || !a.ip().is_unspecified());
    let remote = nsock::getpeername::<SockaddrStorage>(fd)
        .ok()
        .as_ref()
        .and_then(inet);
    Look {
        transport,
        local,
        remote,
    }
}
