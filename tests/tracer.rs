//! The tracer behind `socklab run`: programs the lab did not write, traced from outside. Each
//! test checks what the kernel did (exit statuses, the state TCP_INFO reads through the
//! tracee's own descriptor, a FIN that still goes out) rather than text the lab printed.
//! ptrace of one's own child needs no root.

mod util;

use std::ffi::OsString;
use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

use socklab::tracer::{self, Exit, Seen};

const SOCKET: u32 = libc::SYS_socket as u32;
const CONNECT: u32 = libc::SYS_connect as u32;
const WRITE: u32 = libc::SYS_write as u32;
const CLOSE: u32 = libc::SYS_close as u32;

fn argv(words: &[&str]) -> Vec<OsString> {
    words.iter().map(OsString::from).collect()
}

#[test]
fn exit_codes_are_the_programs_own() {
    let run = |script: &str| tracer::run(&argv(&["sh", "-c", script]), &[SOCKET], |_, _| {});
    assert_eq!(run("exit 3").unwrap(), Exit::Code(3));
    let killed = run("kill -9 $$").unwrap();
    assert_eq!(killed, Exit::Signal(nix::sys::signal::Signal::SIGKILL));
    assert_eq!(killed.code(), 137);
}

#[test]
fn a_missing_program_is_127_like_a_shell() {
    let err = tracer::run(&argv(&["socklab-no-such-program"]), &[SOCKET], |_, _| {}).unwrap_err();
    assert_eq!(err.exit_code(), 127, "{err}");
    assert!(err.to_string().contains("command not found"), "{err}");
    let err = tracer::run(&argv(&["/nonexistent/prog"]), &[SOCKET], |_, _| {}).unwrap_err();
    assert_eq!(err.exit_code(), 127, "{err}");
    let err = tracer::run(&argv(&["/etc/hostname"]), &[SOCKET], |_, _| {}).unwrap_err();
    assert_ne!(err.exit_code(), 0, "{err}");
}

/// bash's `/dev/tcp` makes the socket and connects; the tracer sees both calls, reads
/// ESTABLISHED through the tracee's descriptor at connect's exit, and the FIN still goes out
/// at the program's close (the duplicate was not kept).
#[test]
fn a_foreign_programs_connect_is_seen_and_its_fin_still_goes_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut got = Vec::new();
        // read_to_end returns only at the peer's FIN (or fails at the timeout).
        conn.read_to_end(&mut got).map(|_| got)
    });
    let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port}; echo hi >&3; exec 3>&-; sleep 0.2");
    let mut calls = Vec::new();
    let mut state_after_connect = None;
    let exit = tracer::run(
        &argv(&["bash", "-c", &script]),
        &[SOCKET, CONNECT, WRITE, CLOSE],
        |stopped, seen| {
            if let Seen::Call(c) = seen {
                if c.nr == u64::from(CONNECT) && c.ret == 0 {
                    state_after_connect = stopped.tcp_info(c.args[0] as i32).map(|i| i.state);
                }
                calls.push(c);
            }
        },
    )
    .unwrap();
    assert_eq!(exit, Exit::Code(0));
    // The C library may connect other sockets first (nscd's unix socket, on the same fd
    // number): take the connect on the AF_INET socket, after it was made.
    let at = calls
        .iter()
        .position(|c| c.nr == u64::from(SOCKET) && c.args[0] == libc::AF_INET as u64)
        .expect("socket(AF_INET, ...) seen");
    let sock = &calls[at];
    let connect = calls[at + 1..]
        .iter()
        .find(|c| c.nr == u64::from(CONNECT) && c.args[0] as i64 == sock.ret)
        .expect("connect on the new socket seen");
    assert!(connect.start_ns <= connect.end_ns && sock.end_ns <= connect.start_ns);
    assert_eq!(
        state_after_connect,
        Some(1),
        "TCP_ESTABLISHED (1) through pidfd_getfd"
    );
    let got = server.join().unwrap().expect("the peer's FIN arrived");
    assert_eq!(got, b"hi\n");
}

#[test]
fn a_failed_call_carries_its_errno() {
    // A port nobody listens on: connect is refused.
    let port = util::free_port();
    let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port}");
    let mut refused = None;
    let exit = tracer::run(&argv(&["bash", "-c", &script]), &[CONNECT], |_, seen| {
        if let Seen::Call(c) = seen {
            refused = Some((c.ret, c.errno));
        }
    })
    .unwrap();
    assert_ne!(exit, Exit::Code(0));
    assert_eq!(refused, Some((-1, Some(nix::errno::Errno::ECONNREFUSED))));
}

/// Every process the program starts is followed, and every one is reaped.
#[test]
fn a_thousand_children_are_followed_and_reaped() {
    let script = "i=0; while [ $i -lt 1000 ]; do /bin/true & i=$((i+1)); done; wait";
    let (mut spawned, mut execs, mut exited) = (0, 0, 0);
    let exit = tracer::run(
        &argv(&["sh", "-c", script]),
        &[SOCKET],
        |_, seen| match seen {
            Seen::Spawned { .. } => spawned += 1,
            Seen::Exec { .. } => execs += 1,
            Seen::Exited { .. } => exited += 1,
            Seen::Call(_)
            | Seen::Foreign { .. }
            | Seen::Entering { .. }
            | Seen::Attached { .. } => {}
        },
    )
    .unwrap();
    assert_eq!(exit, Exit::Code(0));
    assert_eq!(spawned, 1000);
    // sh itself, then each child's /bin/true.
    assert_eq!(execs, 1001);
    assert_eq!(exited, 1001);
    // None is left: no child of this process remains to be waited for.
    let left = nix::sys::wait::waitpid(
        None,
        Some(
            nix::sys::wait::WaitPidFlag::__WALL
                | nix::sys::wait::WaitPidFlag::WNOHANG
                | nix::sys::wait::WaitPidFlag::__WNOTHREAD,
        ),
    );
    assert_eq!(left, Err(nix::errno::Errno::ECHILD));
}

/// Threads are followed too, and their calls are tied to their process.
#[test]
fn a_threads_calls_belong_to_its_process() {
    let Ok(python) = tracer::find_program("python3".as_ref()) else {
        util::skip("python3 is not installed (package python3)");
        return;
    };
    let script = "import socket, threading\n\
                  t = threading.Thread(target=lambda: socket.socket().close())\n\
                  t.start(); t.join()";
    let mut seen_calls = Vec::new();
    let mut main_pid = 0;
    let exit = tracer::run(
        &[python.into_os_string(), "-c".into(), script.into()],
        &[SOCKET],
        |_, seen| match seen {
            Seen::Exec { pid, .. } => main_pid = pid,
            Seen::Call(c) => seen_calls.push(c),
            _ => {}
        },
    )
    .unwrap();
    assert_eq!(exit, Exit::Code(0));
    let c = seen_calls.last().expect("the thread's socket()");
    assert_eq!(c.pid, main_pid);
    assert_ne!(c.tid, c.pid, "made by the thread, not the main thread");
}

/// A signal that lands inside a traced call does not lose the call: accept4 blocked in a
/// listener is interrupted by SIGALRM and is seen ending with EINTR.
#[test]
fn a_call_interrupted_by_a_signal_is_seen_ending() {
    let Ok(python) = tracer::find_program("python3".as_ref()) else {
        util::skip("python3 is not installed (package python3)");
        return;
    };
    let script = "import signal, socket\n\
                  def late(*_): raise TimeoutError\n\
                  signal.signal(signal.SIGALRM, late)\n\
                  s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n\
                  signal.setitimer(signal.ITIMER_REAL, 0.2)\n\
                  try: s.accept()\n\
                  except TimeoutError: pass";
    let mut accepts = Vec::new();
    let exit = tracer::run(
        &[python.into_os_string(), "-c".into(), script.into()],
        &[libc::SYS_accept4 as u32, libc::SYS_accept as u32],
        |_, seen| {
            if let Seen::Call(c) = seen {
                accepts.push(c);
            }
        },
    )
    .unwrap();
    assert_eq!(exit, Exit::Code(0));
    let c = accepts.first().expect("the interrupted accept is seen");
    assert_eq!(c.errno, Some(nix::errno::Errno::EINTR), "{c:?}");
    // No SA_RESTART (Python's handlers): the kernel's ERESTARTSYS, EINTR for the program.
    assert_eq!(c.restart, Some("ERESTARTSYS"), "{c:?}");
    assert!(
        c.end_ns - c.start_ns >= 100_000_000,
        "it blocked until the alarm"
    );
}

/// A file's reads make no stop, even beside a socket, while a socket's reads do: on a number
/// a file had before, and on a socket received over SCM_RIGHTS (the filters the tracer adds
/// cover exactly the program's sockets). The program checks the numbers it got.
#[test]
fn only_sockets_reads_stop() {
    let Some(python) = util::python3() else {
        util::skip("python3 is not installed (package python3)");
        return;
    };
    // A socket this test inherited (a CI runner's) is covered from the start, with its number.
    if !socklab::tracer::inject::inherited_sockets().is_empty() {
        util::skip("this process holds an inheritable socket: its numbers stop from the start");
        return;
    }
    let script = "import os, socket\n\
                  f = os.open('/etc/passwd', os.O_RDONLY)\n\
                  for _ in range(300): os.pread(f, 1, 0); os.read(f, 1)\n\
                  os.close(f)\n\
                  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                  s.bind(('127.0.0.1', 0)); s.connect(s.getsockname())\n\
                  g = os.open('/etc/passwd', os.O_RDONLY)\n\
                  for _ in range(300): os.read(g, 1)\n\
                  os.write(s.fileno(), b'ping'); os.read(s.fileno(), 4)\n\
                  a, b = socket.socketpair()\n\
                  files = [os.open('/dev/null', os.O_RDONLY) for _ in range(70)]\n\
                  socket.send_fds(a, [b'x'], [s.fileno()])\n\
                  r = socket.recv_fds(b, 1, 1)[1][0]\n\
                  os.write(s.fileno(), b'pong'); os.read(r, 4)\n\
                  for _ in range(300): os.read(files[-1], 1)\n\
                  raise SystemExit(0 if f == s.fileno() and r > 64 else 3)";
    let nrs = socklab::tracer::session::traced_numbers();
    let mut reads = Vec::new();
    let exit = tracer::run(
        // With a HOME, the interpreter looks up no user (a lookup tries nscd's socket, which
        // would take fd 3 before the file does).
        &[
            "env".into(),
            "HOME=/".into(),
            python.into_os_string(),
            "-c".into(),
            script.into(),
        ],
        &nrs,
        |_, seen| {
            if let Seen::Call(c) = seen
                && c.nr == libc::SYS_read as u64
            {
                reads.push((c.args[0] as i32, c.ret));
            }
        },
    )
    .unwrap();
    assert_eq!(exit, Exit::Code(0), "the socket took the file's number");
    // Only the two socket reads stopped: none of the 900 file reads (one on the number the
    // socket took next), none of the interpreter's own reads at start-up.
    assert_eq!(reads.len(), 2, "{reads:?}");
    let (sock, got) = (reads[0], reads[1]);
    assert_eq!(sock.1, 4);
    assert_eq!(got.1, 4);
    assert!(sock.0 >= 3 && got.0 > 64, "{reads:?}");
}
