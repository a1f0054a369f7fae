//! Shared helpers for the integration tests that run processes: a child that is killed and
//! reaped whatever happens, bounded waits, free ports, and the lab's JSON events.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socklab::Event;
use socklab::event::Syscall;

/// The longest any single wait in these tests may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The socklab binary cargo built for this test run.
pub fn socklab_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_socklab"))
}

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then released). Nothing
/// listens there, so a connect to it is refused.
///
/// The socket is bound, never listening: a child that another test thread forks in between
/// holds a copy until its exec, and a listener's copy would take (then reset) the
/// connections meant for the server that is about to bind the port. SO_REUSEADDR lets that
/// server bind while such a copy lingers.
pub fn free_port() -> u16 {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, bind, getsockname, setsockopt, socket,
        sockopt::ReuseAddr,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    setsockopt(&fd, ReuseAddr, &true).expect("SO_REUSEADDR");
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).expect("bind 127.0.0.1:0");
    getsockname::<SockaddrIn>(fd.as_raw_fd())
        .expect("getsockname")
        .port()
}

/// A connection to 127.0.0.1:`port`, retried while nothing listens there yet (a server
/// still starting); panics after `TIMEOUT`.
pub fn connect_when_listening(port: u16) -> std::net::TcpStream {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("connect to port {port}: {e}"),
        }
    }
}

/// The Python interpreter `python3` on PATH runs, if there is one (else the caller skips:
/// see [`skip`]). A launcher such as pyenv's shim is looked through (its own processes would
/// be on a traced program's timeline), by asking the interpreter for `sys.executable`.
pub fn python3() -> Option<PathBuf> {
    static REAL: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    REAL.get_or_init(|| {
        let path = std::env::var_os("PATH")?;
        let found = std::env::split_paths(&path)
            .map(|d| d.join("python3"))
            .find(|p| p.is_file())?;
        let real = Command::new(&found)
            .args(["-c", "import sys; print(sys.executable)"])
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .filter(|p| p.is_file());
        Some(real.unwrap_or(found))
    })
    .clone()
}

/// What a finished process left.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// Every stdout line, in order (the ones already taken with `next_line` too).
    pub stdout: Vec<String>,
    /// All of stderr.
    pub stderr: String,
}

impl Finished {
    /// The lab's JSON events among the stdout lines (`--json` mode).
    pub fn events(&self) -> Vec<Event> {
        events(&self.stdout)
    }
}

/// A running child with piped stdio. Dropping it (a failed assertion included) kills and
/// reaps the process, so no test leaves one behind.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
    out_reader: Option<JoinHandle<()>>,
    err_reader: Option<JoinHandle<String>>,
    /// Each stderr line as it comes (all of stderr is also kept for [`Finished::stderr`]).
    err_lines: Receiver<String>,
    what: String,
}

impl Proc {
    /// Starts `cmd` with stdin, stdout and stderr piped; stdout is read line by line.
    pub fn spawn(mut cmd: Command) -> Proc {
        let what = format!("{cmd:?}");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdin = child.stdin.take();
        let out = child.stdout.take().expect("stdout is piped");
        let mut err = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::channel();
        let out_reader = thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (err_tx, err_lines) = mpsc::channel();
        let err_reader = thread::spawn(move || {
            let mut all = String::new();
            let mut lines = BufReader::new(&mut err);
            let mut line = Vec::new();
            while matches!(lines.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let text = String::from_utf8_lossy(&line).into_owned();
                let _ = err_tx.send(text.trim_end_matches('\n').to_string());
                all.push_str(&text);
                line.clear();
            }
            all
        });
        Proc {
            child,
            stdin,
            lines,
            seen: Vec::new(),
            out_reader: Some(out_reader),
            err_reader: Some(err_reader),
            err_lines,
            what,
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes `bytes` to the child's stdin and closes it (EOF after them).
    pub fn send_stdin(&mut self, bytes: &[u8]) {
        let mut stdin = self.stdin.take().expect("stdin not yet closed");
        stdin.write_all(bytes).expect("write to the child's stdin");
    }

    /// Closes the child's stdin without writing.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next stdout line, waiting at most until `deadline`; `None` at end of output.
    /// Panics on timeout.
    pub fn next_line(&mut self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!(
                "{}: no stdout line within {:?}; lines so far: {:#?}",
                self.what, TIMEOUT, self.seen
            ),
        }
    }

    /// Reads stdout lines until `pick` returns something; panics at end of output or timeout.
    pub fn wait_for<T>(&mut self, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + TIMEOUT;
        while let Some(line) = self.next_line(deadline) {
            if let Some(v) = pick(&line) {
                return v;
            }
        }
        panic!(
            "{}: output ended before the expected line; lines: {:#?}",
            self.what, self.seen
        )
    }

    /// Waits (at most `TIMEOUT`) for a stderr line containing `text`; panics otherwise.
    pub fn wait_stderr(&mut self, text: &str) {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err_lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return,
                Ok(line) => seen.push(line),
                Err(_) => panic!(
                    "{}: no stderr line with {text:?}; stderr: {seen:#?}",
                    self.what
                ),
            }
        }
    }

    /// Reads the lab's JSON events until the listener's successful getsockname; returns the
    /// address the kernel gave it.
    pub fn wait_listening(&mut self) -> SocketAddr {
        self.wait_for(|line| {
            let ev = Event::from_json(line).ok()?;
            let sc = ev.syscall()?;
            if sc.name != "getsockname" || sc.failed() {
                return None;
            }
            sc.args.get("addr")?.as_str()?.parse().ok()
        })
    }

    /// Waits for the child to exit (at most `TIMEOUT`), then collects its output. Panics,
    /// after killing it, if it does not exit in time.
    pub fn finish(mut self) -> Finished {
        self.stdin = None;
        let Some(status) = wait_exit(&mut self.child, TIMEOUT) else {
            panic!(
                "{} did not exit within {:?}; stdout so far: {:#?}",
                self.what, TIMEOUT, self.seen
            );
        };
        // The pipes close with the process (none of these children fork), so the readers end.
        if let Some(h) = self.out_reader.take() {
            let _ = h.join();
        }
        let mut stdout = std::mem::take(&mut self.seen);
        stdout.extend(self.lines.try_iter());
        let stderr = self
            .err_reader
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        Finished {
            status,
            stdout,
            stderr,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        reap(&mut self.child);
    }
}

/// Waits up to `limit` for `child` to exit; `None`, after killing and collecting it, when it
/// did not.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("try_wait") {
            Some(status) => return Some(status),
            None if Instant::now() >= deadline => {
                reap(child);
                return None;
            }
            None => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Kills `child` if it still runs and collects it, so that no zombie is left.
pub fn reap(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Parses the lines that are JSON events; other lines are ignored.
pub fn events(lines: &[String]) -> Vec<Event> {
    lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| Event::from_json(l).unwrap_or_else(|e| panic!("not an event ({e}): {l}")))
        .collect()
}

/// The syscall events named `name`.
pub fn calls<'a>(events: &'a [Event], name: &str) -> Vec<&'a Syscall> {
    events
        .iter()
        .filter_map(Event::syscall)
        .filter(|s| s.name == name)
        .collect()
}

/// A string argument of a syscall event.
pub fn arg<'a>(sc: &'a Syscall, key: &str) -> &'a str {
    sc.args
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("{} has no string arg {key}: {sc:?}", sc.name))
}

/// Undoes the lab's strace-style data preview (`\xec`, `\n`, `\"`, `\\`) back into bytes.
/// Panics on a cut preview (ending in `...`): compare only messages of at most 32 bytes.
pub fn unpreview(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let (byte, used) = match b.get(i + 1) {
            Some(b'n') => (b'\n', 2),
            Some(b'r') => (b'\r', 2),
            Some(b't') => (b'\t', 2),
            Some(b'"') => (b'"', 2),
            Some(b'\\') => (b'\\', 2),
            Some(b'x') => {
                let hex = std::str::from_utf8(&b[i + 2..i + 4]).expect("hex digits");
                (u8::from_str_radix(hex, 16).expect("hex byte"), 4)
            }
            other => panic!("bad escape {other:?} in preview {s:?}"),
        };
        out.push(byte);
        i += used;
    }
    out
}

/// Asserts that no stderr line shows a Rust panic or a backtrace hint.
pub fn assert_no_panic(stderr: &str) {
    for line in stderr.lines() {
        assert!(
            !line.contains("panicked") && !line.contains("RUST_BACKTRACE"),
            "panic in stderr: {stderr}"
        );
    }
}

/// True when the tests run as root (the privileged tests run; the others skip).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Says why a test, or a part of it, does not run here: on stdout, and in the skip log that
/// `make test` sums up at its end (`$SOCKLAB_SKIP_LOG`, else `skips.log` in cargo's
/// target/tmp). Keep `why` short and the same for the same cause: the summary groups by it.
pub fn skip(why: &str) {
    println!("skipped: {why}");
    let test = thread::current().name().unwrap_or("?").to_string();
    let log = std::env::var_os("SOCKLAB_SKIP_LOG")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("skips.log"));
    let line = format!(
        "{}::{test}\t{}\n",
        env!("CARGO_CRATE_NAME"),
        why.replace(['\n', '\t'], " ")
    );
    // One short write to a file opened for appending: lines of parallel tests do not mix.
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// A tool as socklab looks for it ([`socklab::net::find_tool`]).
pub fn tool(name: &str) -> Option<PathBuf> {
    socklab::net::find_tool(name)
}

/// True when `name` is installed; else skips, naming the Debian package that brings it.
pub fn have_tool(name: &str, package: &str) -> bool {
    let found = tool(name).is_some();
    if !found {
        skip(&format!("{name} is not installed (package {package})"));
    }
    found
}

/// The socklab tracefs instances of process `pid` (`socklab-<pid>` and `socklab-<pid>-N`).
pub fn instances_of(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/kernel/tracing/instances") else {
        return Vec::new();
    };
    let (exact, numbered) = (format!("socklab-{pid}"), format!("socklab-{pid}-"));
    dir.flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| *n == exact || n.starts_with(&numbered))
        .collect()
}

/// Sends SIGINT to `pid`'s process group (as a terminal's Ctrl-C does) or to `pid` alone.
pub fn sigint(pid: u32, group: bool) {
    use nix::sys::signal::{Signal, kill, killpg};
    let target = nix::unistd::Pid::from_raw(pid as i32);
    if group {
        let _ = killpg(target, Signal::SIGINT);
    } else {
        let _ = kill(target, Signal::SIGINT);
    }
}

/// Every process now running: its pid and its arguments (`/proc/<pid>/cmdline`).
pub fn processes() -> Vec<(u32, Vec<String>)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse().ok()?;
            let raw = std::fs::read(e.path().join("cmdline")).ok()?;
            let args = raw
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some((pid, args))
        })
        .collect()
}

/// Ends the calling test, after printing `skipped: <why>`, unless it runs as root.
#[macro_export]
macro_rules! skip_unless_root {
    ($why:expr) => {
        if !$crate::util::is_root() {
            $crate::util::skip($why);
            return;
        }
    };
}

/// Reads `r` line by line on a thread of its own; the lines arrive on the returned channel,
/// which disconnects at the end of the output.
pub fn line_channel(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next line from `lines` that starts with `prefix`; every line taken is kept in `seen`.
/// Panics after `TIMEOUT` or at the end of the output.
pub fn line_starting(lines: &Receiver<String>, seen: &mut Vec<String>, prefix: &str) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.starts_with(prefix) {
                    return line;
                }
            }
            Err(e) => panic!(
                "no line starting with {prefix:?} ({e:?}); lines so far:\n{}",
                seen.join("\n")
            ),
        }
    }
}

/// How many packets `tcpdump -r` reads from `path`, or None (with the reason printed) when
/// tcpdump is missing or cannot run here.
pub fn tcpdump_count(path: &Path) -> Option<usize> {
    let out = match Command::new("tcpdump")
        .arg("-nn")
        .arg("-r")
        .arg(path)
        .output()
    {
        Ok(out) => out,
        Err(_) => {
            skip("tcpdump is not installed (package tcpdump): pcap files not read back");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("Couldn't change to") {
        // As (namespace) root it switches to its own user, which a user namespace lacks.
        skip(&format!("tcpdump cannot switch user here: {}", err.trim()));
        return None;
    }
    assert!(out.status.success(), "tcpdump -r failed: {err}");
    print!("tcpdump -r:\n{text}");
    Some(text.lines().count())
}

/// The calls `name` of process `pid`, with their events.
pub fn calls_of<'a>(events: &'a [Event], pid: u32, name: &str) -> Vec<(&'a Event, &'a Syscall)> {
    events
        .iter()
        .filter(|e| e.pid == pid)
        .filter_map(|e| e.syscall().map(|sc| (e, sc)))
        .filter(|(_, sc)| sc.name == name)
        .collect()
}

/// The process that made the first successful call `name`.
pub fn pid_of(events: &[Event], name: &str) -> u32 {
    events
        .iter()
        .find(|e| {
            e.syscall()
                .is_some_and(|sc| sc.name == name && !sc.failed())
        })
        .unwrap_or_else(|| panic!("no {name} in the events"))
        .pid
}
