//! The recorder: where every event goes, and what the lab knows about each descriptor.
//!
//! Logging is off until a sink is installed with [`install`]. While it is off, the wrappers in
//! [`crate::sys`] check one atomic flag and call nix directly: no clock reads, no probes, no
//! allocation.
//!
//! Step mode ([`crate::programs::step`]) adds a pre-call hook: with logging on, each wrapper asks it
//! before making its call ([`set_pre_call`]). Without a hook that costs one more atomic load.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;
use nix::time::{ClockId, clock_gettime};

use crate::course::notes;
use crate::event::{Body, Event, Lane, Note, Role};

/// Where events go: a renderer, a collector, a file.
pub trait Sink: Send {
    /// Takes one event. Errors (say, a closed pipe) are the sink's to handle.
    fn record(&mut self, event: &Event);
    /// Pushes buffered output out.
    fn flush(&mut self) {}
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static PROBE: AtomicBool = AtomicBool::new(true);
static PROBE_ALL: AtomicBool = AtomicBool::new(false);
static NARRATE: AtomicBool = AtomicBool::new(true);
static SINK: Mutex<Option<Box<dyn Sink>>> = Mutex::new(None);
static PID: AtomicU32 = AtomicU32::new(0);
static DEFAULT_ROLE: AtomicU8 = AtomicU8::new(0);
static PRE_CALL_ON: AtomicBool = AtomicBool::new(false);
static PRE_CALL: Mutex<Option<PreCallHook>> = Mutex::new(None);

/// Called by every wrapper, with logging on, before it makes its call: the kernel's name for
/// the call (`accept4`) and the descriptor it works on, if any. `Err` (EINTR: the lab was
/// interrupted while it waited) means the call is not made and the wrapper returns that error.
/// The hook runs under a lock, so calls from several threads wait their turn; it must not call
/// the wrappers itself.
pub type PreCallHook = Box<dyn FnMut(&'static str, Option<RawFd>) -> Result<(), Errno> + Send>;

thread_local! {
    static TID: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    static ROLE: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// How the recorder behaves once a sink is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Read TCP_INFO after each call on a TCP socket (one extra, labelled syscall), sampled
    /// under load ([`SAMPLE_AFTER`]).
    pub probe: bool,
    /// Probe after every call, even under load.
    pub probe_all: bool,
    /// Add plain-language notes after the events a learner must understand.
    pub narrate: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            probe: true,
            probe_all: false,
            narrate: true,
        }
    }
}

/// Starts logging into `sink`, replacing any previous one (which is flushed).
pub fn install(sink: Box<dyn Sink>, opts: Options) {
    PROBE.store(opts.probe, Ordering::Relaxed);
    PROBE_ALL.store(opts.probe_all, Ordering::Relaxed);
    NARRATE.store(opts.narrate, Ordering::Relaxed);
    let mut slot = lock(&SINK);
    if let Some(old) = slot.as_mut() {
        old.flush();
    }
    *slot = Some(sink);
    ENABLED.store(true, Ordering::Release);
}

/// Stops logging, flushes and returns the sink.
pub fn uninstall() -> Option<Box<dyn Sink>> {
    ENABLED.store(false, Ordering::Release);
    let mut sink = lock(&SINK).take();
    if let Some(s) = sink.as_mut() {
        s.flush();
    }
    sink
}

/// Flushes the sink, if any. With logging off it touches nothing (a fork child's pages are
/// copied on first write, the lock's included) and runs no code of its own (inlined: each page
/// of code a fork child runs is one more page fault).
#[inline]
pub fn flush() {
    if enabled() {
        flush_sink();
    }
}

#[cold]
fn flush_sink() {
    if let Some(s) = lock(&SINK).as_mut() {
        s.flush();
    }
}

/// True while a sink is installed.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// Installs (or with `None` removes) the pre-call hook.
pub fn set_pre_call(hook: Option<PreCallHook>) {
    let on = hook.is_some();
    *lock(&PRE_CALL) = hook;
    PRE_CALL_ON.store(on, Ordering::Release);
}

/// Stops calling the hook without removing it; safe from inside the hook (`q` at a pause).
pub fn pause_pre_call() {
    PRE_CALL_ON.store(false, Ordering::Release);
}

/// True while a pre-call hook is to be called.
#[inline]
pub(crate) fn pre_call_on() -> bool {
    PRE_CALL_ON.load(Ordering::Acquire)
}

/// Runs the pre-call hook for `name` on `fd` (see [`PreCallHook`]).
pub(crate) fn pre_call(name: &'static str, fd: Option<RawFd>) -> Result<(), Errno> {
    match lock(&PRE_CALL).as_mut() {
        Some(hook) if pre_call_on() => hook(name, fd),
        _ => Ok(()),
    }
}

pub(crate) fn probing() -> bool {
    PROBE.load(Ordering::Relaxed)
}

/// CLOCK_MONOTONIC now, in nanoseconds (a vDSO read, not a syscall).
pub fn now_ns() -> u64 {
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC is always there");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

fn role_code(role: Option<Role>) -> u8 {
    match role {
        None => 0,
        Some(Role::Client) => 1,
        Some(Role::Server) => 2,
    }
}

fn role_from(code: u8) -> Option<Role> {
    match code {
        1 => Some(Role::Client),
        2 => Some(Role::Server),
        _ => None,
    }
}

/// Sets the role of every thread of this process that has no role of its own.
pub fn set_process_role(role: Option<Role>) {
    DEFAULT_ROLE.store(role_code(role), Ordering::Relaxed);
}

/// Sets the role of the calling thread (used when one process plays both sides).
pub fn set_thread_role(role: Option<Role>) {
    ROLE.with(|r| r.set(role_code(role)));
}

/// The role events of this thread are tagged with.
pub fn current_role() -> Option<Role> {
    role_from(ROLE.with(|r| r.get())).or_else(|| role_from(DEFAULT_ROLE.load(Ordering::Relaxed)))
}

/// Forgets the cached pid and tid: call in the child right after fork(). A forked child does
/// not pause before its calls: it shares the terminal (stdin) with its parent.
pub(crate) fn after_fork() {
    // Each store only when there is something to reset: a fork child's first write to a page
    // is a copy of it.
    if pre_call_on() {
        PRE_CALL_ON.store(false, Ordering::Release);
    }
    if PID.load(Ordering::Relaxed) != 0 {
        PID.store(0, Ordering::Relaxed);
        TID.with(|t| t.set(0));
    }
}

fn ids() -> (u32, u32) {
    let mut pid = PID.load(Ordering::Relaxed);
    if pid == 0 {
        pid = nix::unistd::getpid().as_raw() as u32;
        PID.store(pid, Ordering::Relaxed);
    }
    let tid = TID.with(|t| {
        if t.get() == 0 {
            t.set(nix::unistd::gettid().as_raw() as u32);
        }
        t.get()
    });
    (pid, tid)
}

/// Builds an event of this process and thread at time `t`.
pub fn event_now(t: u64, body: Body) -> Event {
    let (pid, tid) = ids();
    let role = current_role();
    let lane = match &body {
        Body::Packet(_) => Lane::Wire,
        Body::Syscall(_) | Body::State(_) | Body::Note(_) => role.map_or(Lane::Lab, Role::lane),
    };
    Event {
        t,
        pid,
        tid,
        role,
        lane,
        body,
    }
}

/// Sends one event to the sink.
pub fn emit(event: Event) {
    emit_with_notes(event, Vec::new());
}

/// True when the narrator should add notes.
pub(crate) fn narrating() -> bool {
    NARRATE.load(Ordering::Relaxed)
}

/// Sends one event to the sink, followed by its notes (at the same time, same lane).
pub fn emit_with_notes(event: Event, notes: Vec<Note>) {
    if !enabled() {
        return;
    }
    let mut slot = lock(&SINK);
    if let Some(sink) = slot.as_mut() {
        sink.record(&event);
        for note in notes {
            sink.record(&note_event(event.t, &event, note));
        }
    }
}

fn note_event(t: u64, like: &Event, note: Note) -> Event {
    Event {
        t,
        pid: like.pid,
        tid: like.tid,
        role: like.role,
        lane: like.lane,
        body: Body::Note(note),
    }
}

/// Emits a note from this thread, now.
pub fn note(key: &str, args: &[(&str, String)]) {
    if !enabled() {
        return;
    }
    let ev = event_now(now_ns(), Body::Note(notes::note(key, args)));
    emit(ev);
}

/// The transport of a socket descriptor, as far as the lab knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// SOCK_STREAM over IPv4 or IPv6.
    Tcp,
    /// SOCK_DGRAM over IPv4 or IPv6.
    Udp,
    /// Anything else.
    Other,
}

/// What the lab remembers about one descriptor, learnt from the calls' own arguments and
/// results (never from extra syscalls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdInfo {
    /// TCP, UDP or other.
    pub transport: Transport,
    /// Local address, once bound, connected or asked with getsockname.
    pub local: Option<SocketAddr>,
    /// Remote address, once connected or accepted.
    pub remote: Option<SocketAddr>,
    /// True after a successful listen().
    pub listening: bool,
    /// True when bind() fixed the local address (so its port is not ephemeral).
    pub bound: bool,
    /// For an accepted socket: the listener it came from.
    pub accepted_from: Option<RawFd>,
    /// True after connect() was called on it.
    pub connected: bool,
    /// The TCP state the lab last read for it.
    pub last_state: Option<crate::event::tcp_state::TcpState>,
    /// `local` and `remote` as text, formatted once per address for the events.
    texts: AddrTexts,
    /// Its reads and writes, for sampling the probe under load.
    sampling: Sampling,
}

/// After this many reads and writes that moved data on one descriptor, the TCP_INFO probe
/// after such a call is sampled: skipped while the last probe, less than [`SAMPLE_EVERY_NS`]
/// ago, said ESTABLISHED. Every other call is probed: connect, accept4, shutdown, a read of 0
/// (EOF), any error. A lesson never makes this many calls on one socket; a loaded server makes
/// them in milliseconds, and there one `getsockopt` per call would cost about as much as the
/// rest of the event.
pub const SAMPLE_AFTER: u32 = 100;
/// Under load, at most one probe after a read or write per descriptor in this time (1 ms).
pub const SAMPLE_EVERY_NS: u64 = 1_000_000;

/// A descriptor's data calls and when it was last probed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sampling {
    data_calls: u32,
    last_probe_ns: u64,
    /// A probe was skipped (and the note that says so given).
    skipped: bool,
}

/// An address and its `ip:port` text.
type AddrText = Option<(SocketAddr, Arc<str>)>;

/// The text of a descriptor's addresses, kept so that each event does not format them again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct AddrTexts {
    local: AddrText,
    remote: AddrText,
}

fn refresh(slot: &mut AddrText, addr: Option<SocketAddr>) {
    match addr {
        None => *slot = None,
        Some(a) if slot.as_ref().is_some_and(|(known, _)| *known == a) => {}
        Some(a) => *slot = Some((a, a.to_string().into())),
    }
}

fn text(slot: &AddrText, addr: Option<SocketAddr>) -> Option<String> {
    let a = addr?;
    Some(match slot {
        Some((known, text)) if *known == a => text.to_string(),
        _ => a.to_string(),
    })
}

impl FdInfo {
    /// A fresh socket of this transport.
    pub fn new(transport: Transport) -> FdInfo {
        FdInfo {
            transport,
            local: None,
            remote: None,
            listening: false,
            bound: false,
            accepted_from: None,
            connected: false,
            last_state: None,
            texts: AddrTexts::default(),
            sampling: Sampling::default(),
        }
    }

    /// Counts a read or write that moved data at `now` (ns) and says whether its probe may be
    /// skipped ([`SAMPLE_AFTER`]).
    pub(crate) fn may_skip_probe(&mut self, now: u64) -> bool {
        let s = &mut self.sampling;
        s.data_calls = s.data_calls.saturating_add(1);
        s.data_calls > SAMPLE_AFTER
            && !PROBE_ALL.load(Ordering::Relaxed)
            && self.last_state == Some(crate::event::tcp_state::TcpState::Established)
            && now.saturating_sub(s.last_probe_ns) < SAMPLE_EVERY_NS
    }

    /// True the first time a probe on this descriptor is skipped.
    pub(crate) fn first_skip(&mut self) -> bool {
        !std::mem::replace(&mut self.sampling.skipped, true)
    }

    /// Notes a probe at `now` (ns).
    pub(crate) fn probed(&mut self, now: u64) {
        self.sampling.last_probe_ns = now;
    }

    /// Formats the addresses that changed since the last event; later events (and clones)
    /// reuse the text.
    pub(crate) fn refresh_texts(&mut self) {
        refresh(&mut self.texts.local, self.local);
        refresh(&mut self.texts.remote, self.remote);
    }

    /// The local address as `ip:port`.
    pub fn local_text(&self) -> Option<String> {
        text(&self.texts.local, self.local)
    }

    /// The remote address as `ip:port`.
    pub fn remote_text(&self) -> Option<String> {
        text(&self.texts.remote, self.remote)
    }
}

/// The descriptors the lab knows, indexed by number: the kernel hands out the lowest free
/// descriptor, so the numbers stay about as small as the count of open ones.
#[derive(Debug, Default, Clone)]
pub struct FdTable(Vec<Option<FdInfo>>);

impl FdTable {
    /// An empty table.
    pub const fn new() -> FdTable {
        FdTable(Vec::new())
    }

    /// What the lab knows about `fd`.
    pub fn get(&self, fd: RawFd) -> Option<&FdInfo> {
        self.0.get(usize::try_from(fd).ok()?)?.as_ref()
    }

    /// What the lab knows about `fd`, to change.
    pub fn get_mut(&mut self, fd: RawFd) -> Option<&mut FdInfo> {
        self.0.get_mut(usize::try_from(fd).ok()?)?.as_mut()
    }

    /// Records `fd` (a negative one is ignored).
    pub fn insert(&mut self, fd: RawFd, info: FdInfo) {
        let Ok(i) = usize::try_from(fd) else { return };
        if i >= self.0.len() {
            self.0.resize(i + 1, None);
        }
        self.0[i] = Some(info);
    }

    /// Forgets `fd`.
    pub fn remove(&mut self, fd: RawFd) -> Option<FdInfo> {
        self.0.get_mut(usize::try_from(fd).ok()?)?.take()
    }

    /// Every descriptor the lab knows.
    pub fn values(&self) -> impl Iterator<Item = &FdInfo> {
        self.0.iter().flatten()
    }

    /// Keeps only the descriptors for which `keep(fd)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(RawFd) -> bool) {
        for (fd, slot) in self.0.iter_mut().enumerate() {
            if slot.is_some() && !keep(fd as RawFd) {
                *slot = None;
            }
        }
    }
}

static FDS: Mutex<FdTable> = Mutex::new(FdTable::new());

/// Runs `f` on the descriptor table.
pub(crate) fn with_fds<R>(f: impl FnOnce(&mut FdTable) -> R) -> R {
    f(&mut lock(&FDS))
}

/// A read-only look at what the lab knows about `fd`.
pub fn fd_info(fd: RawFd) -> Option<FdInfo> {
    with_fds(|t| t.get(fd).cloned())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A sink that keeps events in memory (tests, scenarios, the demo's merge).
#[derive(Debug, Clone, Default)]
pub struct Collector(pub std::sync::Arc<Mutex<Vec<Event>>>);

impl Collector {
    /// A new, empty collector.
    pub fn new() -> Collector {
        Collector::default()
    }

    /// A copy of every event so far.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.0).clone()
    }

    /// Takes the events so far, leaving it empty.
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *lock(&self.0))
    }
}

impl Sink for Collector {
    fn record(&mut self, event: &Event) {
        lock(&self.0).push(event.clone());
    }
}

/// A sink that sends each event to several others.
pub struct Tee(pub Vec<Box<dyn Sink>>);

impl Sink for Tee {
    fn record(&mut self, event: &Event) {
        for s in &mut self.0 {
            s.record(event);
        }
    }

    fn flush(&mut self) {
        for s in &mut self.0 {
            s.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_table_keeps_what_it_is_told() {
        let mut t = FdTable::new();
        t.insert(5, FdInfo::new(Transport::Tcp));
        t.insert(-1, FdInfo::new(Transport::Udp));
        assert_eq!(t.get(5).map(|i| i.transport), Some(Transport::Tcp));
        assert!(t.get(4).is_none() && t.get(-1).is_none() && t.get(6).is_none());
        t.get_mut(5).unwrap().listening = true;
        assert!(t.remove(5).is_some_and(|i| i.listening));
        assert!(t.remove(5).is_none() && t.remove(-3).is_none());
        assert_eq!(t.values().count(), 0);
    }

    #[test]
    fn a_busy_established_socket_is_probed_by_sampling() {
        use crate::event::tcp_state::TcpState;
        let mut i = FdInfo::new(Transport::Tcp);
        i.last_state = Some(TcpState::Established);
        let ms = SAMPLE_EVERY_NS;
        // The first SAMPLE_AFTER data calls are all probed, however close together.
        for n in 0..u64::from(SAMPLE_AFTER) {
            assert!(!i.may_skip_probe(n));
            i.probed(n);
        }
        // Then at most one per millisecond while ESTABLISHED (the last probe was at t).
        let t = u64::from(SAMPLE_AFTER) - 1;
        assert!(i.may_skip_probe(t + ms - 1));
        assert!(!i.may_skip_probe(t + ms));
        i.probed(t + ms);
        assert!(i.may_skip_probe(t + ms + 1));
        // Any other state: every call.
        i.last_state = Some(TcpState::CloseWait);
        assert!(!i.may_skip_probe(t + ms + 2));
    }

    #[test]
    fn address_text_follows_the_address() {
        let mut i = FdInfo::new(Transport::Tcp);
        assert_eq!(i.local_text(), None);
        i.local = Some("127.0.0.1:1060".parse().unwrap());
        assert_eq!(i.local_text().as_deref(), Some("127.0.0.1:1060"));
        i.refresh_texts();
        i.local = Some("[::1]:80".parse().unwrap());
        assert_eq!(i.local_text().as_deref(), Some("[::1]:80"));
        i.refresh_texts();
        assert_eq!(i.local_text().as_deref(), Some("[::1]:80"));
    }
}
