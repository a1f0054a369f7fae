//! The server under test: a child process (socklab's server, the C baseline, or either under a
//! tracer: `strace -f`, `strace --seccomp-bpf`, `socklab run`), in a process group of its own,
//! pinned to a CPU if asked, and stopped (SIGINT to the group, SIGKILL after a grace period,
//! reaped) whatever happens.
//!
//! Read first: sched_setaffinity(2) (a child inherits its parent's CPU mask), setpgid(2),
//! kill(2) with a negative pid (the whole group, fork children included).

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::Error;
use crate::event::tcp_state::TcpState;
use crate::observe::sock_diag;
use crate::programs::servers::Model;

use super::LogMode;

/// The C echo servers, built at bench time.
pub const C_SOURCE: &str = include_str!("../../bench-support/echo_server.c");

/// How long a server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long SIGINT may take to end it before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);
/// The same for a server under a tracer: `socklab run` prints its whole timeline at the end.
pub const TRACED_STOP_GRACE: Duration = Duration::from_secs(120);
/// The syscalls `strace --seccomp-bpf` is asked to trace (`-e trace=`): about the calls
/// `socklab run` stops at for an echo server.
pub const STRACE_BPF_CALLS: &str = "%network,read,write,close";
/// [`STRACE_BPF_CALLS`] and the waits on sockets that `socklab run` stops at too (the issue
/// asks it to decode them): strace with the same stops as socklab, for a fair comparison.
pub const STRACE_SAME_CALLS: &str = "%network,read,write,close,\
    epoll_ctl,epoll_wait,epoll_pwait,epoll_pwait2,poll,ppoll,select,pselect6";

/// A tracer around the server under test (`bench --tracers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracer {
    /// `socklab --json run --no-kernel --no-packets -- SERVER`, its timeline to a file.
    Run,
    /// `strace -f -qq -o FILE SERVER`: a stop at every call.
    Strace,
    /// `strace -f -qq --seccomp-bpf -e trace=CALLS -o FILE SERVER`, CALLS being
    /// [`STRACE_BPF_CALLS`]: stops at those calls only.
    StraceBpf,
    /// The same with [`STRACE_SAME_CALLS`]: the stops `socklab run` makes for an echo server.
    StraceSame,
}

impl Tracer {
    /// Every tracer, in the order they are started.
    pub const ALL: [Tracer; 4] = [
        Tracer::Run,
        Tracer::Strace,
        Tracer::StraceBpf,
        Tracer::StraceSame,
    ];

    /// `run`, `strace`, `strace-bpf`, `strace-same`: the label's suffix and the report's `tracer`.
    pub fn name(self) -> &'static str {
        match self {
            Tracer::Run => "run",
            Tracer::Strace => "strace",
            Tracer::StraceBpf => "strace-bpf",
            Tracer::StraceSame => "strace-same",
        }
    }

    /// The command line in front of the server's (`exe` is socklab or strace).
    pub fn command(self, exe: &Path, out: &Path) -> Command {
        let mut c = Command::new(exe);
        match self {
            Tracer::Run => {
                c.args(["--json", "run", "--no-kernel", "--no-packets", "--"]);
            }
            Tracer::Strace => {
                c.args(["-f", "-qq", "-o"]).arg(out);
            }
            Tracer::StraceBpf | Tracer::StraceSame => {
                let calls = if self == Tracer::StraceBpf {
                    STRACE_BPF_CALLS
                } else {
                    STRACE_SAME_CALLS
                };
                c.args(["-f", "-qq", "--seccomp-bpf", "-e"])
                    .arg(format!("trace={calls}"))
                    .arg("-o")
                    .arg(out);
            }
        }
        c
    }
}

/// Which server to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `socklab server --model M --mode echo`, logging off or to a JSON file.
    Socklab {
        /// The model.
        model: Model,
        /// Its event logging.
        log: LogMode,
    },
    /// The C echo server of the same model (`exe` from [`build_c_baseline`]).
    C {
        /// The model.
        model: Model,
        /// The built C server.
        exe: PathBuf,
    },
    /// socklab's server, logging off, under `strace -f -o /dev/null`.
    Strace {
        /// The model.
        model: Model,
        /// The strace executable.
        strace: PathBuf,
    },
    /// socklab's server (logging off) or the C server (`c`) under `tracer`, its output to a
    /// file.
    Traced {
        /// The model.
        model: Model,
        /// The C server, or None for socklab's.
        c: Option<PathBuf>,
        /// The tracer.
        tracer: Tracer,
        /// Its executable: socklab for [`Tracer::Run`], else strace.
        exe: PathBuf,
    },
}

impl Kind {
    /// The label in the report: `thread`, `thread+json`, `C thread`, `thread+strace`.
    pub fn label(&self) -> String {
        match self {
            Kind::Socklab {
                model,
                log: LogMode::Off,
            } => model.to_string(),
            Kind::Socklab {
                model,
                log: LogMode::Json,
            } => format!("{model}+json"),
            Kind::C { model, .. } => format!("C {model}"),
            Kind::Strace { model, .. } => format!("{model}+strace"),
            Kind::Traced {
                model, c, tracer, ..
            } => match c {
                Some(_) => format!("C {model}+{}", tracer.name()),
                None => format!("{model}+{}", tracer.name()),
            },
        }
    }

    /// `socklab`, `c` or `strace` (socklab's server under strace -f).
    pub fn server(&self) -> &'static str {
        match self {
            Kind::Socklab { .. } | Kind::Traced { c: None, .. } => "socklab",
            Kind::C { .. } | Kind::Traced { c: Some(_), .. } => "c",
            Kind::Strace { .. } => "strace",
        }
    }

    /// The tracer around the server, if any.
    pub fn tracer(&self) -> Option<Tracer> {
        match self {
            Kind::Traced { tracer, .. } => Some(*tracer),
            _ => None,
        }
    }

    /// The model.
    pub fn model(&self) -> Model {
        match self {
            Kind::Socklab { model, .. }
            | Kind::C { model, .. }
            | Kind::Strace { model, .. }
            | Kind::Traced { model, .. } => *model,
        }
    }

    /// True if workload `w` is measured on it: socklab under strace runs RR only (the
    /// comparison the issue asks for; the rest would take long for nothing new), a server
    /// under `--tracers` RR and CRR.
    pub fn measures(&self, w: super::Workload) -> bool {
        match self {
            Kind::Strace { .. } => w == super::Workload::Rr,
            Kind::Traced { .. } => matches!(w, super::Workload::Rr | super::Workload::Crr),
            _ => true,
        }
    }

    /// The server's logging.
    pub fn log(&self) -> LogMode {
        match self {
            Kind::Socklab { log, .. } => *log,
            Kind::C { .. } | Kind::Strace { .. } | Kind::Traced { .. } => LogMode::Off,
        }
    }
}

/// Where server and load generator run.
#[derive(Debug, Clone)]
pub struct Pinning {
    server: Option<usize>,
    load: Option<usize>,
    original: Option<CpuSet>,
}

impl Pinning {
    /// No pinning.
    pub fn off() -> Pinning {
        Pinning {
            server: None,
            load: None,
            original: None,
        }
    }

    /// Server and load on CPUs `server` and `load` (the same one for stable ratios on a small
    /// machine).
    pub fn cpus(server: usize, load: usize) -> Pinning {
        Pinning {
            server: Some(server),
            load: Some(load),
            original: sched_getaffinity(Pid::from_raw(0)).ok(),
        }
    }

    /// What the report says.
    pub fn describe(&self) -> String {
        match (self.server, self.load) {
            (Some(s), Some(l)) if s == l => format!("server and load generator on CPU {s}"),
            (Some(s), Some(l)) => format!("server on CPU {s}, load generator on CPU {l}"),
            _ => "off (the scheduler places both)".to_string(),
        }
    }

    fn set(cpu: usize) -> Result<(), Error> {
        let mut set = CpuSet::new();
        set.set(cpu)
            .and_then(|()| sched_setaffinity(Pid::from_raw(0), &set))
            .map_err(|e| Error::sys("sched_setaffinity", format!("CPU {cpu}"), e))
    }

    /// Runs `spawn` with this thread on the server's CPU (the child inherits it, and so do
    /// its threads and children), then moves this thread to the load generator's CPU, where
    /// the load threads it starts will run.
    fn around_spawn<T>(&self, spawn: impl FnOnce() -> T) -> Result<T, Error> {
        if let Some(cpu) = self.server {
            Self::set(cpu)?;
        }
        let out = spawn();
        if let Some(cpu) = self.load {
            Self::set(cpu)?;
        }
        Ok(out)
    }

    /// Gives this thread back the CPUs it had.
    pub fn restore(&self) {
        if let Some(set) = &self.original {
            let _ = sched_setaffinity(Pid::from_raw(0), set);
        }
    }

    /// Puts this thread on the load generator's CPU (for `--target`, with no server to start).
    pub fn pin_load(&self) -> Result<(), Error> {
        self.around_spawn(|| ())
    }
}

/// The CPUs this process may run on, in order.
pub fn allowed_cpus() -> Vec<usize> {
    let Ok(set) = sched_getaffinity(Pid::from_raw(0)) else {
        return Vec::new();
    };
    (0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect()
}

/// A program found in PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A file name in the temp directory unique to this process.
fn temp_file(what: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("socklab-bench-{}-{n}-{what}", std::process::id()))
}

/// Builds the C echo servers with `cc -O2 -pthread` into `dir` (once per version of the
/// source: the file name carries its hash) and returns the executable.
pub fn build_c_baseline(dir: &Path) -> Result<PathBuf, String> {
    // FNV-1a: enough to tell versions of one file apart.
    let hash = C_SOURCE.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let exe = dir.join(format!("echo_server-{hash:016x}"));
    if exe.is_file() {
        return Ok(exe);
    }
    let cc = which("cc")
        .or_else(|| which("gcc"))
        .ok_or("no C compiler (cc) in PATH: the C baseline needs one (apt-get install gcc)")?;
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let src = dir.join(format!("echo_server-{hash:016x}.c"));
    fs::write(&src, C_SOURCE).map_err(|e| format!("cannot write {}: {e}", src.display()))?;
    // Built under a temporary name, then renamed: a concurrent run never sees half a file.
    let tmp = dir.join(format!("echo_server-{hash:016x}.tmp{}", std::process::id()));
    let out = Command::new(&cc)
        .args(["-O2", "-pthread", "-o"])
        .arg(&tmp)
        .arg(&src)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", cc.display()))?;
    if !out.status.success() {
        let _ = fs::remove_file(&tmp);
        return Err(format!(
            "{} failed to build the C baseline: {}",
            cc.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    fs::rename(&tmp, &exe).map_err(|e| format!("cannot rename to {}: {e}", exe.display()))?;
    Ok(exe)
}

/// Where the C baseline is built: `bench-support/` beside the socklab executable (in cargo's
/// target directory), else the temp directory.
pub fn c_baseline_dir(socklab: &Path) -> PathBuf {
    let beside = socklab.parent().map(|d| d.join("bench-support"));
    match beside {
        Some(d) if fs::create_dir_all(&d).is_ok() && writable(&d) => d,
        _ => std::env::temp_dir().join("socklab-bench-support"),
    }
}

fn writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".probe{}", std::process::id()));
    let ok = File::create(&probe).is_ok();
    let _ = fs::remove_file(&probe);
    ok
}

/// A running server under test.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    label: String,
    stderr: PathBuf,
    log: Option<PathBuf>,
    /// A tracer's output (the server runs under one).
    trace: Option<PathBuf>,
    stopped: bool,
    left: Left,
}

/// What the server left when it stopped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Left {
    /// Events in its JSON log (lines), when logging was on.
    pub events: Option<u64>,
    /// The log's size.
    pub bytes: Option<u64>,
    /// Under a tracer: lines of its output (`socklab run --json`: one event a line; strace:
    /// about one call a line).
    pub trace_lines: Option<u64>,
    /// The size of that output.
    pub trace_bytes: Option<u64>,
    /// Under a tracer: its peak resident memory (`VmHWM`) when the load was over, KiB.
    pub tracer_kib_loaded: Option<u64>,
    /// Its peak resident memory at the last look before it exited (after `socklab run` has
    /// built and printed its timeline), KiB.
    pub tracer_kib_peak: Option<u64>,
}

/// The size of a file and its lines.
fn size_and_lines(path: &Path) -> Option<(u64, u64)> {
    let f = File::open(path).ok()?;
    let bytes = f.metadata().ok()?.len();
    let mut lines = 0u64;
    let mut r = BufReader::with_capacity(1 << 20, f);
    loop {
        let buf = match r.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(b) => b,
        };
        lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let n = buf.len();
        r.consume(n);
    }
    Some((bytes, lines))
}

/// `VmHWM` of `pid` (its peak resident memory), KiB; None once it has exited.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

impl Spawned {
    /// Starts `kind` on a free port of 127.0.0.1 and waits until it listens; a socklab server
    /// that logs probes TCP_INFO as `probe` says.
    pub fn start(
        socklab: &Path,
        kind: &Kind,
        probe: super::Probe,
        pin: &Pinning,
    ) -> Result<Spawned, Error> {
        // Held until the server listens: then its own socket keeps the port.
        let claim = crate::net::ports::free_server_port(false).map_err(Error::Other)?;
        let port = claim.port();
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let stderr = temp_file("stderr");
        let log = (kind.log() == LogMode::Json).then(|| temp_file("events.jsonl"));
        let trace = kind
            .tracer()
            .map(|t| temp_file(&format!("{}.out", t.name())));
        let port_s = port.to_string();
        let socklab_server = |c: &mut Command, log: Option<&PathBuf>| {
            match log {
                Some(file) => {
                    c.args(probe.flag());
                    c.arg("server").arg("--log-file").arg(file)
                }
                None => c.args(["--quiet", "server"]),
            };
            c.args([
                "--model",
                kind.model().name(),
                "--mode",
                "echo",
                "-p",
                &port_s,
            ])
            .args(["--backlog", "1024", "--read-size", "65536"])
            .args(["--max-conns", "4096"]);
        };
        let mut stdout = Stdio::null();
        let mut cmd = match kind {
            Kind::C { model, exe } => {
                let mut c = Command::new(exe);
                c.args([model.name(), &port_s]);
                c
            }
            Kind::Socklab { .. } | Kind::Strace { .. } => {
                let mut c = match kind {
                    Kind::Strace { strace, .. } => {
                        let mut c = Command::new(strace);
                        c.args(["-f", "-qq", "-o", "/dev/null"]).arg(socklab);
                        c
                    }
                    _ => Command::new(socklab),
                };
                socklab_server(&mut c, log.as_ref());
                c
            }
            Kind::Traced {
                model,
                c,
                tracer,
                exe,
            } => {
                let out = trace.as_deref().unwrap_or(Path::new("/dev/null"));
                let mut t = tracer.command(exe, out);
                match c {
                    Some(c_exe) => {
                        t.arg(c_exe).args([model.name(), &port_s]);
                    }
                    None => {
                        t.arg(socklab);
                        socklab_server(&mut t, None);
                    }
                }
                if *tracer == Tracer::Run {
                    // socklab run prints its timeline on stdout, at the end.
                    let f = File::create(out).map_err(|e| {
                        Error::Other(format!("cannot create {}: {e}", out.display()))
                    })?;
                    stdout = Stdio::from(f);
                }
                t
            }
        };
        let err_file = File::create(&stderr)
            .map_err(|e| Error::Other(format!("cannot create {}: {e}", stderr.display())))?;
        // Its own process group: the terminal's Ctrl-C reaches the bench only (which then
        // stops the server), and one kill(-pgid) reaches fork children too.
        cmd.stdin(Stdio::null())
            .stdout(stdout)
            .stderr(err_file)
            .process_group(0);
        let child = pin
            .around_spawn(|| cmd.spawn())?
            .map_err(|e| Error::Other(format!("cannot start {}: {e}", kind.label())))?;
        let mut s = Spawned {
            child,
            addr,
            label: kind.label(),
            stderr,
            log,
            trace,
            stopped: false,
            left: Left::default(),
        };
        s.wait_listening()?;
        drop(claim);
        Ok(s)
    }

    /// Waits (bounded) until the kernel shows a listener on the port; fails if the server
    /// exits first.
    fn wait_listening(&mut self) -> Result<(), Error> {
        let deadline = Instant::now() + START_TIMEOUT;
        let port = self.addr.port();
        while Instant::now() < deadline {
            self.alive()?;
            let listening = sock_diag::tcp_sockets(&[port]).is_ok_and(|socks| {
                socks
                    .iter()
                    .any(|s| s.state == TcpState::Listen && s.local.port() == port)
            });
            if listening {
                return Ok(());
            }
            if crate::sys::ffi::interrupted() {
                return Err(Error::Other("interrupted".into()));
            }
            thread::sleep(Duration::from_millis(10));
        }
        Err(Error::Other(format!(
            "{} did not listen at {} within {:?}",
            self.label, self.addr, START_TIMEOUT
        )))
    }

    /// `Ok` while the server runs; an error with its first stderr line once it has exited.
    pub fn alive(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.stopped = true;
                let mut text = String::new();
                if let Ok(f) = File::open(&self.stderr) {
                    let _ = BufReader::new(f).take(4096).read_to_string(&mut text);
                }
                let why = text.lines().next().unwrap_or("").trim().to_string();
                Err(Error::Other(format!(
                    "the server under test ({}) exited ({status}){}{why}",
                    self.label,
                    if why.is_empty() { "" } else { ": " }
                )))
            }
            Err(e) => Err(Error::Other(format!("waiting for {}: {e}", self.label))),
        }
    }

    /// Stops the server (SIGINT to its group; SIGKILL after [`STOP_GRACE`]), reaps it, and
    /// says what its log holds; the temporary files go.
    pub fn stop(mut self) -> Left {
        self.halt();
        let mut left = self.left;
        if let Some((bytes, lines)) = self.log.as_deref().and_then(size_and_lines) {
            left.bytes = Some(bytes);
            left.events = Some(lines);
        }
        if let Some((bytes, lines)) = self.trace.as_deref().and_then(size_and_lines) {
            left.trace_bytes = Some(bytes);
            left.trace_lines = Some(lines);
        }
        left
    }

    fn halt(&mut self) {
        let group = Pid::from_raw(-(self.child.id() as i32));
        if !self.stopped {
            let traced = self.trace.is_some();
            if traced {
                self.left.tracer_kib_loaded = vm_hwm_kib(self.child.id());
                // A tracer that exits at once (strace) is a zombie, with no VmHWM, by the
                // next look: its peak is then the one read here.
                self.left.tracer_kib_peak = self.left.tracer_kib_loaded;
            }
            let _ = kill(group, Signal::SIGINT);
            let grace = if traced {
                TRACED_STOP_GRACE
            } else {
                STOP_GRACE
            };
            let deadline = Instant::now() + grace;
            loop {
                if traced && let Some(kib) = vm_hwm_kib(self.child.id()) {
                    // Watched until the tracer exits: socklab run builds its timeline now.
                    self.left.tracer_kib_peak = self.left.tracer_kib_peak.max(Some(kib));
                }
                match self.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = kill(group, Signal::SIGKILL);
                        let _ = self.child.wait();
                        break;
                    }
                    Ok(None) => thread::sleep(Duration::from_millis(5)),
                }
            }
            self.stopped = true;
        }
        // Whatever of the group is left (a C fork child whose parent went first). The group
        // id cannot be reused while any member lives.
        let _ = kill(group, Signal::SIGKILL);
        let _ = fs::remove_file(&self.stderr);
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.halt();
        // After `stop` has counted it, or on any other way out.
        for f in self.log.iter().chain(&self.trace) {
            let _ = fs::remove_file(f);
        }
    }
}
