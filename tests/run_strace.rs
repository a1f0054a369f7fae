//! `socklab run` against strace. ptrace is exclusive (one tracer per process), so one run
//! cannot be watched by both: a deterministic program runs twice, once under
//! `strace -f -yy -e trace=<the lab's calls>` and once under `socklab --json run`, and each
//! process's socket calls (name, descriptor, return value, errno) must be the same, one to
//! one. strace's log is read and sorted by the lab's own parser (`socklab::trace`).

mod util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use socklab::event::{Body, Event};
use socklab::trace::{CallKey, lab_calls, parse_strace, strace_calls, traced_calls};
use util::{Finished, Proc, assert_no_panic, socklab_exe};

/// The calls about processes rather than sockets: the lab keeps some on its timeline,
/// strace's socket lines do not have them.
const PROCESS_CALLS: &[&str] = &[
    "clone", "clone3", "fork", "vfork", "wait4", "kill", "execve",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A directory of this test's own under the temp dir, removed at drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("socklab-strace-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test's temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Each process's socket calls, in order, named by the order the processes first made one
/// (the pids of two runs differ; the order of a deterministic program's processes' first
/// socket calls does not).
type PerProcess = Vec<Vec<CallKey>>;

fn by_first_call(per_tid: BTreeMap<u32, Vec<CallKey>>, first: &BTreeMap<u32, usize>) -> PerProcess {
    let mut tids: Vec<u32> = per_tid.keys().copied().collect();
    tids.sort_by_key(|t| first.get(t).copied().unwrap_or(usize::MAX));
    let mut per_tid = per_tid;
    tids.into_iter()
        .map(|t| per_tid.remove(&t).unwrap_or_default())
        .collect()
}

/// strace following `program`, its log in `log`, asked for the lab's calls.
fn strace_command(log: &Path, program: &[&str]) -> Command {
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-yy", "-e"])
        .arg(format!("trace={}", traced_calls()))
        .arg("-o")
        .arg(log)
        .args(program);
    cmd
}

/// `program` under strace: each process's socket calls.
fn under_strace(dir: &TempDir, program: &[&str]) -> PerProcess {
    let log = dir.0.join("strace.log");
    let f = Proc::spawn(strace_command(&log, program)).finish();
    assert_eq!(f.status.code(), Some(0), "under strace: {}", f.stderr);
    let text = std::fs::read_to_string(&log).expect("strace's log");
    // An interrupted call (`= ?`, restarted after a signal) would not repeat in another run.
    assert!(
        !text.contains("= ? ERESTART"),
        "a call was interrupted: the program is not deterministic\n{text}"
    );
    strace_per_process(&text)
}

/// strace's log `text`: each process's socket calls.
fn strace_per_process(text: &str) -> PerProcess {
    let calls = parse_strace(text);
    let keys = strace_calls(&calls);
    let mut first = BTreeMap::new();
    let mut n = 0;
    for c in &calls {
        if keys.contains_key(&c.tid) {
            first.entry(c.tid).or_insert_with(|| {
                n += 1;
                n
            });
        }
    }
    by_first_call(keys, &first)
}

/// The calls on an epoll instance: the lab keeps those of one that watches a socket, strace's
/// `-yy` names the descriptor `anon_inode:[eventpoll]`, no socket.
const EPOLL_CALLS: &[&str] = &["epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2"];

/// `program` under `socklab --json run`: each process's socket calls (its TCP_INFO reads,
/// process calls and epoll calls left out: strace did not make the first, and shows the others
/// as no socket's).
fn under_socklab(program: &[&str]) -> PerProcess {
    let f = Proc::spawn(socklab_command(program)).finish();
    assert_no_panic(&f.stderr);
    assert_eq!(f.status.code(), Some(0), "under socklab: {}", f.stderr);
    socklab_per_process(&f.events())
}

/// `socklab --json run -- program`.
fn socklab_command(program: &[&str]) -> Command {
    let mut cmd = Command::new(socklab_exe());
    cmd.args(["--json", "run", "--"]).args(program);
    cmd
}

/// The lab's events: each process's socket calls, as [`under_socklab`] compares them.
fn socklab_per_process(events: &[Event]) -> PerProcess {
    let mut keys = lab_calls(events);
    for list in keys.values_mut() {
        list.retain(|k| {
            !k.tcp_info
                && !PROCESS_CALLS.contains(&k.name.as_str())
                && !EPOLL_CALLS.contains(&k.name.as_str())
        });
    }
    keys.retain(|_, list| !list.is_empty());
    let mut first = BTreeMap::new();
    let mut n = 0;
    for ev in events {
        let tid = if ev.tid != 0 { ev.tid } else { ev.pid };
        if ev.syscall().is_some() && keys.contains_key(&tid) {
            first.entry(tid).or_insert_with(|| {
                n += 1;
                n
            });
        }
    }
    by_first_call(keys, &first)
}

fn assert_same(strace: &PerProcess, lab: &PerProcess) {
    let show = |p: &PerProcess| {
        p.iter()
            .enumerate()
            .map(|(i, list)| {
                let calls: Vec<String> = list.iter().map(ToString::to_string).collect();
                format!("process {}: {}", i + 1, calls.join(", "))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    println!("compared:\n{}", show(lab));
    assert_eq!(
        strace,
        lab,
        "\nstrace:\n{}\nsocklab run:\n{}",
        show(strace),
        show(lab)
    );
}

/// Compiles the C fixture `source` into `dir`.
fn compile(dir: &TempDir, source: &str) -> String {
    let exe = dir.0.join(source.trim_end_matches(".c"));
    let out = Command::new("cc")
        .arg("-O1")
        .arg("-o")
        .arg(&exe)
        .arg(fixture(source))
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe.display().to_string()
}

/// The C server and its forked client (poll, accept4, sendmsg, recvmsg): the same calls,
/// descriptors and results in both processes.
#[test]
fn the_c_programs_calls_are_straces() {
    if !util::have_tool("strace", "strace") || !util::have_tool("cc", "gcc") {
        return;
    }
    let dir = TempDir::new("pollmsg");
    let exe = compile(&dir, "run_pollmsg.c");
    let strace = under_strace(&dir, &[&exe]);
    let lab = under_socklab(&[&exe]);
    assert_eq!(strace.len(), 2, "the server and its client");
    assert!(
        strace[0]
            .iter()
            .any(|k| k.name == "poll" && k.fd == Some(3))
    );
    assert!(
        strace[1]
            .iter()
            .any(|k| k.name == "sendmsg" && k.ret == Some(17))
    );
    assert_same(&strace, &lab);
}

/// select and pselect6 (the first descriptor of their sets), sendmmsg and recvmmsg (their
/// socket), in the server and its forked client: the same calls, descriptors and results.
#[test]
fn select_and_mmsg_calls_are_straces() {
    if !util::have_tool("strace", "strace") || !util::have_tool("cc", "gcc") {
        return;
    }
    let dir = TempDir::new("select");
    let exe = compile(&dir, "run_select_mmsg.c");
    let strace = under_strace(&dir, &[&exe]);
    let lab = under_socklab(&[&exe]);
    assert_eq!(strace.len(), 2, "the server and its client");
    let server = &strace[0];
    let has = |name: &str, fd: i32, ret: i64| {
        server
            .iter()
            .any(|k| k.name == name && k.fd == Some(fd) && k.ret == Some(ret))
    };
    // The listener is 3 in both sets; the UDP pair 3 and 4 after the TCP ones closed.
    assert!(has("select", 3, 1), "{server:?}");
    assert!(has("pselect6", 3, 1), "{server:?}");
    assert!(has("sendmmsg", 4, 2), "{server:?}");
    assert!(has("recvmmsg", 3, 2), "{server:?}");
    assert_same(&strace, &lab);
}

/// The Python program with UDP on ::1, Unix datagrams, an abstract name and a socketpair: one
/// process, the same calls in both runs.
#[test]
fn the_python_address_programs_calls_are_straces() {
    if !util::have_tool("strace", "strace") {
        return;
    }
    let Some(python) = util::python3() else {
        util::skip("python3 is not installed (package python3)");
        return;
    };
    // The interpreter itself (python3 may be a launcher script that forks).
    let out = Command::new(&python)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("run python3");
    let python = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dir = TempDir::new("addrs");
    let script = fixture("run_addrs.py").display().to_string();
    let name = format!("socklab-strace-test-{}", std::process::id());
    let run = |what: &str| -> Vec<String> {
        let path = dir.0.join(format!("{what}.sock")).display().to_string();
        vec![python.clone(), script.clone(), path, name.clone()]
    };
    let args = run("strace");
    let strace = under_strace(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let args = run("lab");
    let lab = under_socklab(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(strace.len(), 1, "one process");
    assert!(
        strace[0]
            .iter()
            .any(|k| k.name == "socketpair" && k.ret == Some(0))
    );
    assert_same(&strace, &lab);
}

/// `cmd` runs C fixture `exe` (run_restart.c) with `port`: once the program waits in poll,
/// it is stopped (SIGSTOP), its listener gets a connection, and it is resumed (SIGCONT).
/// Returns how the run ended and CLOCK_MONOTONIC just before the SIGCONT; None (skipped)
/// when the program's `/proc/PID/syscall` cannot be read here.
fn stopped_in_poll(cmd: Command, exe: &str, port: u16) -> Option<(Finished, u64)> {
    use nix::sys::signal::{Signal, kill};
    use nix::time::{ClockId, clock_gettime};
    let run = Proc::spawn(cmd);
    let deadline = Instant::now() + Duration::from_secs(10);
    let until = |what: &str, mut done: Box<dyn FnMut() -> Option<u32> + '_>| loop {
        if let Some(v) = done() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within 10 s");
        std::thread::sleep(Duration::from_millis(5));
    };
    let pid = until(
        "the program started",
        Box::new(|| {
            util::processes()
                .into_iter()
                .find(|(_, args)| args.first().map(String::as_str) == Some(exe))
                .map(|(pid, _)| pid)
        }),
    );
    let proc = |file: &str| std::fs::read_to_string(format!("/proc/{pid}/{file}"));
    if let Err(e) = proc("syscall")
        && e.kind() == std::io::ErrorKind::PermissionDenied
    {
        util::skip("/proc/PID/syscall is not readable here (needs ptrace access)");
        return None;
    }
    // In poll (x86_64 number 7).
    until(
        "the program waiting in poll",
        Box::new(|| {
            proc("syscall")
                .is_ok_and(|s| s.starts_with("7 "))
                .then_some(0)
        }),
    );
    let target = nix::unistd::Pid::from_raw(pid as i32);
    kill(target, Signal::SIGSTOP).expect("SIGSTOP");
    // Stopped (`T`), under a tracer in a ptrace stop (`t`).
    until(
        "the program stopped",
        Box::new(|| {
            let stat = proc("stat").unwrap_or_default();
            let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
            matches!(state, Some('t' | 'T')).then_some(0)
        }),
    );
    let conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    let cont_ns = ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64;
    kill(target, Signal::SIGCONT).expect("SIGCONT");
    let f = run.finish();
    drop(conn);
    Some((f, cont_ns))
}

/// A poll with a timeout, stopped by SIGSTOP and resumed by SIGCONT: it ends with
/// ERESTART_RESTARTBLOCK and the kernel goes on with it in restart_syscall, which returns 1
/// with the listener ready. The stop holds until SIGCONT (the tracer keeps a group stop), and
/// the calls pair with strace's for the same dance.
#[test]
fn a_stopped_poll_goes_on_in_restart_syscall() {
    if !util::have_tool("strace", "strace") || !util::have_tool("cc", "gcc") {
        return;
    }
    let dir = TempDir::new("restart");
    let exe = compile(&dir, "run_restart.c");

    let port = util::free_port().to_string();
    let log = dir.0.join("strace.log");
    let cmd = strace_command(&log, &[&exe, &port]);
    let Some((f, _)) = stopped_in_poll(cmd, &exe, port.parse().expect("a port")) else {
        return;
    };
    assert_eq!(f.status.code(), Some(0), "under strace: {}", f.stderr);
    let text = std::fs::read_to_string(&log).expect("strace's log");
    let strace = strace_per_process(&text);

    let port = util::free_port().to_string();
    let cmd = socklab_command(&[&exe, &port]);
    let Some((f, cont_ns)) = stopped_in_poll(cmd, &exe, port.parse().expect("a port")) else {
        return;
    };
    assert_no_panic(&f.stderr);
    assert_eq!(f.status.code(), Some(0), "under socklab: {}", f.stderr);
    let events = f.events();
    let calls: Vec<(&Event, &socklab::event::Syscall)> = events
        .iter()
        .filter_map(|ev| match &ev.body {
            Body::Syscall(sc) => Some((ev, sc)),
            _ => None,
        })
        .collect();
    let at = calls
        .iter()
        .position(|(_, sc)| sc.name == "poll")
        .expect("a poll event");
    let (poll_ev, poll) = calls[at];
    assert_eq!(poll.fd, Some(3), "{poll:?}");
    assert_eq!(
        poll.errno.as_deref(),
        Some("ERESTART_RESTARTBLOCK"),
        "{poll:?}"
    );
    let (ev, restart) = calls[at + 1..]
        .iter()
        .find(|(ev, _)| ev.tid == poll_ev.tid)
        .copied()
        .expect("a call after the poll");
    assert_eq!(restart.name, "restart_syscall", "{restart:?}");
    assert_eq!((restart.ret, &restart.errno), (1, &None), "{restart:?}");
    assert_eq!(restart.fd, Some(3), "{restart:?}");
    assert_eq!(restart.args["resumes"], "poll", "{restart:?}");
    // Its result, read where the poll's array is: the listener has a connection.
    let fds = restart.args["fds"].as_str().unwrap_or_default();
    assert!(
        fds.contains("fd=3,") && fds.contains("revents=POLLIN"),
        "{fds}"
    );
    // It began after the SIGCONT: the stop held (both CLOCK_MONOTONIC).
    let began = ev.t.saturating_sub(restart.dur_ns);
    assert!(
        began >= cont_ns,
        "restart_syscall began {began}, SIGCONT at {cont_ns}"
    );

    let lab = socklab_per_process(&events);
    assert_eq!(strace.len(), 1, "one process");
    assert!(
        strace[0]
            .iter()
            .any(|k| k.name == "restart_syscall" && k.ret == Some(1)),
        "{strace:?}"
    );
    assert_same(&strace, &lab);
}
