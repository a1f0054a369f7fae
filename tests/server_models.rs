//! The four server models under load and under faults, each run as the real binary
//! (`socklab --quiet server --model M --mode echo -p 0`) so that its descriptors and children
//! can be counted from /proc.
//!
//! Per model: 64 concurrent clients each stream 4 MiB, with write and read sizes drawn from a
//! seeded generator, and must get back exactly what they sent; then a client killed with
//! SIGKILL mid-transfer, a client that resets (SO_LINGER 0) mid-transfer and a client that
//! half-closes. After each, the server still serves a fresh client, its descriptor count is
//! back to the baseline, and it has no children left (no zombie, no stray fork child). Ctrl-C
//! then ends it with status 0.

mod util;

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{self, sockopt};
use nix::unistd::Pid;

use util::{Finished, Proc, TIMEOUT, assert_no_panic, socklab_exe};

/// Concurrent clients in the load test.
const CLIENTS: usize = 64;
/// Bytes each of them streams.
const STREAM: usize = 4 << 20;
/// Largest single write or read of a test client (sizes are uniform in 1..=MAX_IO).
const MAX_IO: usize = 64 << 10;
/// Bytes between two clients' starting points in the shared random pattern.
const STRIDE: usize = 4099;
/// The longest a client may wait for one read or write.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The load tests take the machine's two cores: one at a time.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

/// xorshift64*: small, seeded, good enough for sizes and test bytes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in 1..=max.
    fn size(&mut self, max: usize) -> usize {
        1 + (self.next() % max as u64) as usize
    }
}

/// Random bytes; client `i` streams `pattern[i * STRIDE..][..len]`, so no two clients send
/// the same bytes and a mix-up between connections shows.
fn pattern(len: usize) -> Vec<u8> {
    let mut rng = Rng::new(0x050C_41AB);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A socklab server child, killed and reaped on drop.
struct Server {
    proc: Proc,
    model: &'static str,
    addr: SocketAddr,
    baseline_fds: usize,
}

impl Server {
    fn start(model: &'static str, extra: &[&str]) -> Server {
        let mut cmd = Command::new(socklab_exe());
        cmd.args([
            "--quiet", "server", "--model", model, "--mode", "echo", "-p", "0",
        ])
        .args(["--read-size", "65536"])
        .args(extra);
        if !extra.contains(&"--backlog") {
            // Room in the accept queue for every client at once, in every model (the
            // iterative server's default is the seed's 1).
            cmd.args(["--backlog", "128"]);
        }
        let mut proc = Proc::spawn(cmd);
        let addr = proc.wait_for(|l| {
            l.strip_prefix("Server is running and listening at ")?
                .parse()
                .ok()
        });
        let baseline_fds = fd_count(proc.pid());
        Server {
            proc,
            model,
            addr,
            baseline_fds,
        }
    }

    fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The server's line about how the connection from `peer` ended.
    fn end_of(&mut self, peer: SocketAddr) -> String {
        let (failed, closed) = (
            format!("Connection from {peer} ended with "),
            format!("{peer} closed its side"),
        );
        self.proc
            .wait_for(|l| (l.starts_with(&failed) || l.starts_with(&closed)).then(|| l.to_string()))
    }

    /// A fresh client gets its bytes back.
    fn assert_serves(&self, after: &str) {
        let mut s = connect(self.addr);
        let msg = format!("still there after {after}?");
        s.write_all(msg.as_bytes()).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back)
            .unwrap_or_else(|e| panic!("{}: no echo after {after}: {e}", self.model));
        assert_eq!(back, msg.as_bytes(), "{}: echo after {after}", self.model);
    }

    /// Within a bounded wait, the server holds only its baseline descriptors and has no
    /// child process (a zombie or a fork child still serving).
    fn assert_settled(&self, after: &str) {
        let pid = self.pid();
        let settled = wait_until(TIMEOUT, || {
            fd_count(pid) == self.baseline_fds && children(pid).is_empty()
        });
        assert!(
            settled,
            "{}: after {after}: {} descriptors (baseline {}): {:?}; children {:?}",
            self.model,
            fd_count(pid),
            self.baseline_fds,
            fd_list(pid),
            children(pid)
                .iter()
                .map(|c| (*c, proc_state(*c)))
                .collect::<Vec<_>>()
        );
    }

    /// Ctrl-C: exit status 0, no panic; returns what it printed.
    fn interrupt(self) -> Finished {
        let pid = self.pid();
        kill(Pid::from_raw(pid as i32), Signal::SIGINT).unwrap();
        let f = self.proc.finish();
        assert_eq!(f.status.signal(), None, "{}: {}", self.model, f.stderr);
        assert_eq!(f.status.code(), Some(0), "{}: {}", self.model, f.stderr);
        assert_no_panic(&f.stderr);
        assert!(
            f.stdout.iter().any(|l| l.starts_with("Interrupted")),
            "{}: {:#?}",
            self.model,
            f.stdout
        );
        f
    }
}

fn fd_list(pid: u32) -> Vec<String> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let link = fs::read_link(e.path()).unwrap_or_default();
                    format!("{}->{}", e.file_name().to_string_lossy(), link.display())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The children of `pid`, from every thread's `children` list (proc(5)).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// The state letter of a process (`Z` for a zombie).
fn proc_state(pid: u32) -> char {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
        })
        .unwrap_or('?')
}

fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if ok() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Streams `data` to the echo server in random-sized writes while reading the echo in
/// random-sized reads, half-closes after the last byte, and checks that exactly `data`
/// came back before EOF.
fn echo_stream(addr: SocketAddr, data: &[u8], seed: u64) -> Result<(), String> {
    let s = connect(addr);
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    thread::scope(|sc| {
        let writer = sc.spawn(move || -> Result<(), String> {
            let mut rng = Rng::new(seed);
            let mut at = 0;
            while at < data.len() {
                let n = rng.size(MAX_IO).min(data.len() - at);
                w.write_all(&data[at..at + n])
                    .map_err(|e| format!("write at {at}: {e}"))?;
                at += n;
            }
            w.shutdown(Shutdown::Write)
                .map_err(|e| format!("shutdown: {e}"))
        });
        let mut r = &s;
        let mut rng = Rng::new(!seed);
        let mut buf = vec![0u8; MAX_IO];
        let mut got = 0;
        let read = loop {
            let want = rng.size(MAX_IO);
            match r.read(&mut buf[..want]) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    if got + n > data.len() {
                        break Err(format!("{} bytes back, more than sent", got + n));
                    }
                    if buf[..n] != data[got..got + n] {
                        break Err(format!("wrong bytes back at offset {got}"));
                    }
                    got += n;
                }
                Err(e) => break Err(format!("read after {got} bytes: {e}")),
            }
        };
        writer.join().expect("writer thread")?;
        read?;
        if got == data.len() {
            Ok(())
        } else {
            Err(format!("{got} of {} bytes back before EOF", data.len()))
        }
    })
}

/// The helper below, run as a separate process, is the client that gets SIGKILL.
const HELPER_ENV: &str = "SOCKLAB_TEST_KILLED_CLIENT_ADDR";
const HELPER_READY: &str = "HELPER-STREAMING";

/// Not a test by itself: with HELPER_ENV set it is the client process that the killed-client
/// fault kills. It streams random bytes and reads the echo until killed (or 60 s pass).
#[test]
fn killed_client_helper() {
    let Ok(addr) = std::env::var(HELPER_ENV) else {
        return;
    };
    let s = connect(addr.parse().expect("helper address"));
    let mut w = s.try_clone().unwrap();
    let data = pattern(MAX_IO);
    thread::spawn(move || {
        let mut rng = Rng::new(7);
        while w.write_all(&data[..rng.size(MAX_IO)]).is_ok() {}
    });
    let start = Instant::now();
    let (mut r, mut buf, mut got, mut said) = (&s, vec![0u8; MAX_IO], 0usize, false);
    while start.elapsed() < Duration::from_secs(60) {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
        if !said && got >= 1 << 20 {
            said = true;
            println!("{HELPER_READY} {}", s.local_addr().unwrap());
            std::io::stdout().flush().unwrap();
        }
    }
}

fn killed_client(server: &mut Server) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", "killed_client_helper", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(HELPER_ENV, server.addr.to_string());
    let mut helper = Proc::spawn(cmd);
    let peer: SocketAddr = helper.wait_for(|l| {
        let (_, addr) = l.split_once(HELPER_READY)?;
        addr.trim().parse().ok()
    });
    kill(Pid::from_raw(helper.pid() as i32), Signal::SIGKILL).unwrap();
    let f = helper.finish();
    assert_eq!(f.status.signal(), Some(libc::SIGKILL));
    // The kernel closed the dead client's socket: RST if echo sat unread in it, else FIN.
    let line = server.end_of(peer);
    eprintln!("{}: killed client: {line}", server.model);
}

fn reset_client(server: &mut Server) {
    let mut s = connect(server.addr);
    let peer = s.local_addr().unwrap();
    let chunk = pattern(MAX_IO);
    s.write_all(&chunk).unwrap();
    // Some echo came back: the server is mid-transfer on this connection.
    let mut one = [0u8; 1];
    s.read_exact(&mut one).unwrap();
    assert_eq!(one[0], chunk[0]);
    s.write_all(&chunk).unwrap();
    // Unread echo is waiting, and SO_LINGER 0 makes the close an RST anyway.
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    socket::setsockopt(&s, sockopt::Linger, &l).unwrap();
    drop(s);
    let line = server.end_of(peer);
    assert!(
        line.contains("ECONNRESET") || line.contains("EPIPE"),
        "{}: the server saw the reset: {line}",
        server.model
    );
}

fn half_close(server: &Server) {
    let data = pattern(1 << 20);
    echo_stream(server.addr, &data, 99).unwrap_or_else(|e| panic!("{}: {e}", server.model));
}

fn reliability(model: &'static str) {
    let _one_at_a_time = heavy();
    let mut server = Server::start(model, &[]);
    let data = pattern(STREAM + CLIENTS * STRIDE);

    let start = Instant::now();
    let errors: Vec<String> = thread::scope(|sc| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let data = &data[i * STRIDE..i * STRIDE + STREAM];
                let addr = server.addr;
                sc.spawn(move || echo_stream(addr, data, i as u64 + 1))
            })
            .collect();
        clients
            .into_iter()
            .enumerate()
            .filter_map(|(i, c)| {
                c.join()
                    .expect("client thread")
                    .err()
                    .map(|e| format!("client {i}: {e}"))
            })
            .collect()
    });
    let took = start.elapsed();
    assert!(errors.is_empty(), "{model}: {errors:#?}");
    eprintln!(
        "{model}: {CLIENTS} clients x {} MiB echoed byte-exact in {took:.2?} ({:.0} MiB/s each way)",
        STREAM >> 20,
        (CLIENTS * STREAM) as f64 / (1 << 20) as f64 / took.as_secs_f64()
    );
    server.assert_settled("the load");

    let start = Instant::now();
    killed_client(&mut server);
    server.assert_serves("a killed client");
    server.assert_settled("a killed client");

    reset_client(&mut server);
    server.assert_serves("a reset");
    server.assert_settled("a reset");

    half_close(&server);
    server.assert_serves("a half-close");
    server.assert_settled("a half-close");
    eprintln!("{model}: faults survived in {:.2?}", start.elapsed());

    server.interrupt();
}

#[test]
fn iterative_is_reliable() {
    reliability("iterative");
}

#[test]
fn fork_is_reliable() {
    reliability("fork");
}

#[test]
fn thread_is_reliable() {
    reliability("thread");
}

#[test]
fn epoll_is_reliable() {
    reliability("epoll");
}

/// `--idle-timeout 0.5`: a silent client is dropped after about half a second; meanwhile a
/// concurrent model serves others, while the iterative one makes them wait.
fn idle_timeout(model: &'static str) {
    let server = Server::start(model, &["--idle-timeout", "0.5"]);
    let start = Instant::now();
    let mut silent = connect(server.addr);
    // Make sure the server took the silent one first.
    thread::sleep(Duration::from_millis(50));
    let other = thread::spawn({
        let addr = server.addr;
        move || {
            let data = pattern(1000);
            echo_stream(addr, &data, 5).unwrap();
            Instant::now()
        }
    });
    let mut buf = [0u8; 16];
    let n = silent
        .read(&mut buf)
        .expect("the server closes, it does not reset");
    let dropped = start.elapsed();
    assert_eq!(n, 0, "{model}: EOF for the silent client");
    let other_done = other.join().unwrap().duration_since(start);
    assert!(
        dropped >= Duration::from_millis(450) && dropped < Duration::from_secs(5),
        "{model}: dropped after {dropped:?}"
    );
    if model == "iterative" {
        assert!(
            other_done >= Duration::from_millis(450),
            "{model}: the other client waited in the queue: {other_done:?}"
        );
    } else {
        assert!(
            other_done < dropped,
            "{model}: the other client was served meanwhile: {other_done:?} vs {dropped:?}"
        );
    }
    server.assert_settled("an idle timeout");
    server.interrupt();
}

#[test]
fn iterative_drops_an_idle_client() {
    idle_timeout("iterative");
}

#[test]
fn fork_drops_an_idle_client() {
    idle_timeout("fork");
}

#[test]
fn thread_drops_an_idle_client() {
    idle_timeout("thread");
}

#[test]
fn epoll_drops_an_idle_client() {
    idle_timeout("epoll");
}

/// `--max-conns 2`: the third client waits in the accept queue (the server says so, once per
/// filling up, not once per client) and is served when a worker is free.
fn full_workers_wait_in_the_queue(model: &'static str) {
    let mut server = Server::start(model, &["--max-conns", "2"]);
    let mut first: Vec<TcpStream> = (0..2).map(|_| connect(server.addr)).collect();
    for s in &mut first {
        s.write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        s.read_exact(&mut one).unwrap();
    }
    let mut third = connect(server.addr);
    third.write_all(b"third").unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 5];
    let err = third
        .read(&mut buf)
        .expect_err("no worker is free for the third client");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    drop(first.pop());
    third.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    third.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"third");
    // Full again with the third: said when the accept loop comes round, which a busy machine
    // may delay past the clients' end; both notices are awaited while all are connected.
    for _ in 0..2 {
        server
            .proc
            .wait_for(|l| l.starts_with("All 2 workers busy").then_some(()));
    }
    drop(first);
    drop(third);
    server.assert_settled("a full house");
    let f = server.interrupt();
    let notices = f
        .stdout
        .iter()
        .filter(|l| l.starts_with("All 2 workers busy"))
        .count();
    // Once each time it filled up: with the first two, and again with the third.
    assert_eq!(notices, 2, "said once per filling: {:#?}", f.stdout);
}

#[test]
fn thread_full_waits_in_the_queue() {
    full_workers_wait_in_the_queue("thread");
}

#[test]
fn fork_full_waits_in_the_queue() {
    full_workers_wait_in_the_queue("fork");
}

/// Thousands of idle connections cost the epoll server descriptors, not threads: it keeps
/// serving with all of them open.
#[test]
fn epoll_holds_thousands_of_idle_connections() {
    let limit = fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse::<usize>().ok())
        })
        .unwrap_or(1024);
    let n = 3000.min(limit.saturating_sub(100));
    if n < 2000 {
        util::skip(&format!(
            "the open-file limit is {limit}; raise it (ulimit -n 4096) to hold 2000+"
        ));
        return;
    }
    let _one_at_a_time = heavy();
    // A burst of connects can outrun a server that is not scheduled for a few milliseconds
    // (seen here even with a 5-line Python accept loop); every accept-queue overflow drops
    // the SYN and costs that connect a 1 s retransmission. A deep queue avoids the stalls.
    let server = Server::start("epoll", &["--backlog", "4096"]);
    let start = Instant::now();
    let idle: Vec<TcpStream> = (0..n).map(|_| connect(server.addr)).collect();
    let connected = start.elapsed();
    let pid = server.pid();
    assert!(
        wait_until(TIMEOUT, || fd_count(pid) >= server.baseline_fds + n),
        "the server holds {} descriptors, want {}",
        fd_count(pid),
        server.baseline_fds + n
    );
    let threads = fs::read_dir(format!("/proc/{pid}/task")).unwrap().count();
    assert_eq!(threads, 1, "one thread for {n} connections");
    let start = Instant::now();
    server.assert_serves(&format!("{n} idle connections"));
    eprintln!(
        "epoll: {n} connections opened in {connected:.2?}; with them idle, a fresh echo took \
         {:.2?}",
        start.elapsed()
    );
    drop(idle);
    server.assert_settled("closing the idle connections");
    server.interrupt();
}

/// Echo mode asks for 64 KiB per read unless told otherwise, reply mode for the seed's 1024:
/// with more than that waiting, the kernel hands over more than 1024 bytes in one echo read
/// and exactly 1024 in the reply's one read.
#[test]
fn echo_reads_64_kib_and_reply_the_seeds_1024_by_default() {
    for (mode, sent) in [("echo", 256 << 10), ("reply", 4000)] {
        let mut cmd = Command::new(socklab_exe());
        cmd.args([
            "--json", "server", "--mode", mode, "-p", "0", "--count", "1",
        ]);
        let mut proc = Proc::spawn(cmd);
        let addr = proc.wait_listening();
        let mut s = connect(addr);
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let data = pattern(sent);
        let mut reader = s.try_clone().unwrap();
        let back = thread::spawn(move || {
            let mut got = Vec::new();
            let _ = reader.read_to_end(&mut got);
            got
        });
        // All of it is queued before the server reads: one write, then the FIN.
        let _ = s.write_all(&data);
        let _ = s.shutdown(Shutdown::Write);
        let got = back.join().unwrap();
        let f = proc.finish();
        let evs = f.events();
        let moved: Vec<i64> = util::calls(&evs, "read")
            .iter()
            .map(|r| r.ret)
            .filter(|&n| n > 0)
            .collect();
        match mode {
            "echo" => {
                assert_eq!(got, data, "echoed byte for byte");
                assert!(
                    moved.iter().any(|&n| n > 1024),
                    "echo: no read got more than 1024 bytes: {moved:?}"
                );
                assert!(moved.iter().all(|&n| n <= 65536), "{moved:?}");
            }
            _ => assert_eq!(moved, [1024], "reply: one read of the seed's size"),
        }
    }
}
