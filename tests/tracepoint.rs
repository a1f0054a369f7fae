//! The tracepoint observer against the live kernel: one loopback exchange gives the
//! transitions the kernel makes, on the CLOCK_MONOTONIC timeline, and no tracefs instance is
//! left behind (after stop, after drop, after `socklab watch` gets Ctrl-C).
//!
//! Needs root (tracefs); without it each test prints why it skips.

mod util;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, geteuid};
use socklab::event::record::now_ns;
use socklab::observe::tracepoint::{TRACEFS, TraceSession};
use socklab::observe::watch::format_change;
use socklab::{Body, Event, TcpState};

/// Sessions of one process share the `socklab-<pid>` prefix: one test at a time.
static LOCK: Mutex<()> = Mutex::new(());

/// The lock, or `None` (after saying why) when not root.
fn setup() -> Option<MutexGuard<'static, ()>> {
    if !geteuid().is_root() {
        util::skip("needs root");
        return None;
    }
    Some(LOCK.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The socklab instances that belong to process `pid`.
fn instances_of(pid: u32) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(Path::new(TRACEFS).join("instances")) else {
        return Vec::new();
    };
    let exact = format!("socklab-{pid}");
    let numbered = format!("socklab-{pid}-");
    dir.flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name == exact || name.starts_with(&numbered)
        })
        .map(|e| e.path())
        .collect()
}

/// (local, remote) -> the transitions, in time order.
type Sequences = BTreeMap<(String, String), Vec<(TcpState, TcpState)>>;

fn sequences(events: &[Event]) -> Sequences {
    let mut out = Sequences::new();
    for ev in events {
        let Body::State(st) = &ev.body else {
            panic!("not a state event: {ev:?}");
        };
        assert_eq!(st.source, "tracepoint");
        assert_eq!(ev.pid, 0, "softirq events carry no owner");
        out.entry((st.local.clone().unwrap(), st.remote.clone().unwrap()))
            .or_default()
            .push((st.from.unwrap(), st.to));
    }
    out
}

fn transitions(seq: &Sequences, local: &str, remote: &str) -> Vec<(TcpState, TcpState)> {
    seq.get(&(local.to_string(), remote.to_string()))
        .cloned()
        .unwrap_or_default()
}

fn time_of(events: &[Event], local: &str, from: TcpState, to: TcpState) -> u64 {
    events
        .iter()
        .find(|e| match &e.body {
            Body::State(s) => {
                s.local.as_deref() == Some(local) && s.from == Some(from) && s.to == to
            }
            _ => false,
        })
        .unwrap_or_else(|| panic!("no {from} -> {to} on {local} in {events:#?}"))
        .t
}

#[test]
fn an_exchange_gives_the_kernels_transitions_on_the_monotonic_clock() {
    let Some(_guard) = setup() else { return };
    let port = util::free_port();
    let mut session = TraceSession::start(&[port]).expect("start the tracepoint session");
    let dir = session.instance_dir().to_path_buf();
    assert!(dir.is_dir(), "{} missing", dir.display());

    let t0 = now_ns();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("bind+listen");
    let t1 = now_ns();
    let mut client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    let t2 = now_ns();
    let (mut server, _) = listener.accept().expect("accept");
    let cport = client.local_addr().unwrap().port();
    client.write_all(b"hi").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    server.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"hi");
    drop(server);
    assert_eq!(client.read(&mut [0u8; 8]).unwrap(), 0, "the server's FIN");
    drop(client);
    drop(listener);

    let lst = format!("127.0.0.1:{port}");
    let cli = format!("127.0.0.1:{cport}");
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    // The last ACK may still be in softirq: wait for both ends to finish.
    while Instant::now() < deadline {
        events.extend(session.wait(Duration::from_millis(100)).unwrap());
        let seq = sequences(&events);
        if transitions(&seq, &lst, &cli).last() == Some(&(TcpState::LastAck, TcpState::Close))
            && transitions(&seq, &lst, "0.0.0.0:0").len() == 2
        {
            break;
        }
    }
    events.extend(session.stop().expect("stop"));
    let seq = sequences(&events);
    for ev in &events {
        println!("{}", format_change(ev, t0).unwrap());
    }

    use TcpState::*;
    assert_eq!(
        transitions(&seq, &lst, "0.0.0.0:0"),
        [(Close, Listen), (Listen, Close)]
    );
    // The connecting socket has no local port yet when it sends SYN.
    assert_eq!(transitions(&seq, "127.0.0.1:0", &lst), [(Close, SynSent)]);
    assert_eq!(
        transitions(&seq, &cli, &lst),
        [
            (SynSent, Established),
            (Established, FinWait1),
            (FinWait1, FinWait2),
            // TIME_WAIT is a separate socket: the tracepoint sees the original go to CLOSE.
            (FinWait2, Close),
        ]
    );
    // The child is cloned from the listener, so its first old state reads LISTEN.
    assert_eq!(
        transitions(&seq, &lst, &cli),
        [
            (Listen, SynRecv),
            (SynRecv, Established),
            (Established, CloseWait),
            (CloseWait, LastAck),
            (LastAck, Close),
        ]
    );
    assert_eq!(seq.len(), 4, "nothing else on port {port}: {seq:#?}");

    // Text timestamps are truncated to microseconds: allow 1 µs before the earlier reading.
    let listen = time_of(&events, &lst, Close, Listen);
    assert!(
        listen + 1000 > t0 && listen <= t1,
        "{t0} <= {listen} <= {t1}"
    );
    let syn = time_of(&events, "127.0.0.1:0", Close, SynSent);
    assert!(syn + 1000 > t1 && syn <= t2, "{t1} <= {syn} <= {t2}");
    assert!(events.windows(2).all(|w| w[0].t <= w[1].t), "time order");

    assert!(!dir.exists(), "{} left after stop", dir.display());
    assert_eq!(instances_of(std::process::id()), Vec::<PathBuf>::new());
}

#[test]
fn dropping_a_session_removes_its_instance() {
    let Some(_guard) = setup() else { return };
    let session = TraceSession::start(&[util::free_port()]).expect("start");
    let dir = session.instance_dir().to_path_buf();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("socklab-{}", std::process::id())),
        "{name}"
    );
    let clock = std::fs::read_to_string(dir.join("trace_clock")).unwrap();
    assert!(clock.contains("[mono]"), "{clock}");
    drop(session);
    assert!(!dir.exists(), "{} left after drop", dir.display());
    assert_eq!(instances_of(std::process::id()), Vec::<PathBuf>::new());
}

#[test]
fn start_removes_instances_of_dead_processes() {
    let Some(_guard) = setup() else { return };
    let mut child = Command::new("true").spawn().expect("spawn true");
    let dead = child.id();
    child.wait().unwrap();
    // Make sure tracefs is mounted before making the stale instance by hand.
    socklab::observe::tracepoint::available().expect("tracepoint available");
    let stale = Path::new(TRACEFS).join(format!("instances/socklab-{dead}"));
    std::fs::create_dir(&stale).expect("mkdir a stale instance");
    let session = TraceSession::start(&[]).expect("start");
    let gone = !stale.exists();
    let _ = std::fs::remove_dir(&stale);
    drop(session);
    assert!(gone, "{} survived start", stale.display());
}

#[test]
fn wait_wakes_at_the_first_event() {
    let Some(_guard) = setup() else { return };
    let port = util::free_port();
    let mut session = TraceSession::start(&[port]).expect("start");
    let maker = thread::spawn(move || {
        thread::sleep(Duration::from_millis(200));
        drop(TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap());
    });
    let begun = Instant::now();
    let events = session.wait(Duration::from_secs(10)).unwrap();
    let took = begun.elapsed();
    println!("woke {took:?} after start (event at ~200 ms)");
    maker.join().unwrap();
    assert!(!events.is_empty(), "no event");
    assert!(took < Duration::from_secs(3), "woke after {took:?}");
    // With nothing to come, wait returns empty at its timeout.
    let begun = Instant::now();
    assert_eq!(
        session.wait(Duration::from_millis(150)).unwrap(),
        Vec::<Event>::new()
    );
    let took = begun.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(2),
        "{took:?}"
    );
    session.stop().unwrap();
}

/// Kills and reaps the child whatever happens.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn watch_exits_0_on_ctrl_c_and_removes_its_instance() {
    let Some(_guard) = setup() else { return };
    let port = util::free_port();
    let started = Instant::now();
    // A duration well past the SIGINT, so that only the signal can end it in time.
    let child = Command::new(env!("CARGO_BIN_EXE_socklab"))
        .args([
            "--json",
            "watch",
            "--port",
            &port.to_string(),
            "--duration",
            "5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn socklab watch");
    let mut child = Reaped(child);
    let pid = child.0.id();

    // Ready once its instance has the event enabled.
    let ready = |p: &PathBuf| {
        std::fs::read_to_string(p.join("events/sock/inet_sock_set_state/enable"))
            .is_ok_and(|s| s.trim() == "1")
    };
    while !instances_of(pid).iter().any(ready) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "watch never enabled the event"
        );
        thread::sleep(Duration::from_millis(10));
    }
    drop(TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap());

    thread::sleep(Duration::from_millis(300).saturating_sub(started.elapsed()));
    kill(Pid::from_raw(pid as i32), Signal::SIGINT).expect("SIGINT");
    let sent = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(3),
            "watch ignored SIGINT"
        );
        thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The listener's life as the tracepoint reported it (watch's JSON events, not its text).
    let evs: Vec<Event> = out
        .lines()
        .map(|l| Event::from_json(l).unwrap_or_else(|e| panic!("not an event ({e}): {l}")))
        .collect();
    assert_eq!(
        transitions(&sequences(&evs), &format!("127.0.0.1:{port}"), "0.0.0.0:0"),
        [
            (TcpState::Close, TcpState::Listen),
            (TcpState::Listen, TcpState::Close)
        ],
        "{out}"
    );
    assert_eq!(
        instances_of(pid),
        Vec::<PathBuf>::new(),
        "instance left by watch"
    );
}
