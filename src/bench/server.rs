//! The server under test: a child process (socklab's server, the C baseline, or socklab's
//! server under `strace -f`), in a process group of its own, pinned to a CPU if asked, and
//! stopped (SIGINT to the group, SIGKILL after a grace period, reaped) whatever happens.
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
        }
    }

    /// `socklab`, `c` or `strace`.
    pub fn server(&self) -> &'static str {
        match self {
            Kind::Socklab { .. } => "socklab",
            Kind::C { .. } => "c",
            Kind::Strace { .. } => "strace",
        }
    }

    /// The model.
    pub fn model(&self) -> Model {
        match self {
            Kind::Socklab { model, .. } | Kind::C { model, .. } | Kind::Strace { model, .. } => {
                *model
            }
        }
    }

    /// True if workload `w` is measured on it: socklab under strace runs RR only (the
    /// comparison the issue asks for; the rest would take long for nothing new).
    pub fn measures(&self, w: super::Workload) -> bool {
        !matches!(self, Kind::Strace { .. }) || w == super::Workload::Rr
    }

    /// The server's logging.
    pub fn log(&self) -> LogMode {
        match self {
            Kind::Socklab { log, .. } => *log,
            Kind::C { .. } | Kind::Strace { .. } => LogMode::Off,
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
    stopped: bool,
}

/// What the server left when it stopped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Left {
    /// Events in its JSON log (lines), when logging was on.
    pub events: Option<u64>,
    /// The log's size.
    pub bytes: Option<u64>,
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
        let port_s = port.to_string();
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
                match &log {
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
                c
            }
        };
        let err_file = File::create(&stderr)
            .map_err(|e| Error::Other(format!("cannot create {}: {e}", stderr.display())))?;
        // Its own process group: the terminal's Ctrl-C reaches the bench only (which then
        // stops the server), and one kill(-pgid) reaches fork children too.
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
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
            stopped: false,
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
        let mut left = Left::default();
        if let Some(f) = self.log.as_ref().and_then(|log| File::open(log).ok()) {
            left.bytes = f.metadata().ok().map(|m| m.len());
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
            left.events = Some(lines);
        }
        left
    }

    fn halt(&mut self) {
        let group = Pid::from_raw(-(self.child.id() as i32));
        if !self.stopped {
            let _ = kill(group, Signal::SIGINT);
            let deadline = Instant::now() + STOP_GRACE;
            loop {
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
        if let Some(log) = &self.log {
            let _ = fs::remove_file(log);
        }
    }
}
