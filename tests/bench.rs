//! `socklab bench`, small and fast: it runs, reports, verifies and fails as it should. No
//! assertion here is about speed (the machine is shared and small); the measurements are for
//! `socklab bench --compare` by hand.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use util::{assert_no_panic, free_port, socklab_exe};

/// The bench takes both cores: one at a time.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `socklab bench ARGS` (bounded by a timeout); returns (exit code, stdout, stderr).
fn bench(args: &[&str]) -> (Option<i32>, String, String) {
    let out = assert_cmd::Command::new(socklab_exe())
        .arg("bench")
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .expect("socklab bench runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_no_panic(&stderr);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// The JSON report of a run that must succeed.
fn report(args: &[&str]) -> Value {
    let (code, stdout, stderr) = bench(args);
    assert_eq!(code, Some(0), "stderr: {stderr}\nstdout: {stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn num(v: &Value, path: &str) -> f64 {
    v.pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {path}: {v:#}"))
}

/// An echo server of the test's own, in threads, bounded in time; `corrupt_at` flips one
/// byte of each connection's echo at that offset.
struct EchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl EchoServer {
    fn start(corrupt_at: Option<u64>) -> EchoServer {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        let addr = l.local_addr().expect("local_addr");
        let stop = Arc::new(AtomicBool::new(false));
        let st = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut conns = Vec::new();
            while !st.load(Ordering::Relaxed) && Instant::now() < deadline {
                match l.accept() {
                    Ok((s, _)) => {
                        let st = Arc::clone(&st);
                        conns.push(thread::spawn(move || echo(s, corrupt_at, &st, deadline)));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => break,
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        EchoServer {
            addr,
            stop,
            handle: Some(handle),
        }
    }
}

fn echo(mut s: TcpStream, corrupt_at: Option<u64>, stop: &AtomicBool, deadline: Instant) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = vec![0u8; 65536];
    let mut off = 0u64;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let n = match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        };
        if let Some(at) = corrupt_at
            && (off..off + n as u64).contains(&at)
        {
            buf[(at - off) as usize] ^= 0x20;
        }
        off += n as u64;
        if s.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[test]
fn a_model_reports_every_workload() {
    let _g = heavy();
    let rep = report(&[
        "--model",
        "thread",
        "--workload",
        "all",
        "--duration",
        "0.3",
        "--conns",
        "4",
        "--mib",
        "1",
        "--silent-ms",
        "100",
        "--json",
    ]);
    let run = &rep["runs"][0];
    assert_eq!(run["label"], "thread");
    assert_eq!(run["server"], "socklab");
    assert!(num(run, "/rr/transactions") > 0.0, "{run:#}");
    assert!(num(run, "/rr/tps") > 0.0);
    assert!(num(run, "/rr/p50_us") > 0.0);
    assert!(num(run, "/rr/p99_us") >= num(run, "/rr/p50_us"));
    assert!(num(run, "/crr/connections") > 0.0, "{run:#}");
    assert_eq!(run["bulk"]["verified"], true, "{run:#}");
    assert_eq!(num(run, "/bulk/mib_each"), 1.0);
    assert_eq!(num(run, "/hol/answered"), 4.0, "{run:#}");
    for k in ["min_ms", "p50_ms", "max_ms"] {
        assert!(num(run, &format!("/hol/waits/{k}")) >= 0.0);
    }
    assert!(num(run, "/hol/silent_answer_ms") >= 0.0);
    assert!(rep["machine"]["cpus"].as_u64().unwrap() >= 1);
}

#[test]
fn the_server_can_log_every_event_to_a_file() {
    let _g = heavy();
    let rep = report(&[
        "--model",
        "epoll",
        "--log",
        "json",
        "--workload",
        "rr",
        "--duration",
        "0.2",
        "--json",
    ]);
    let run = &rep["runs"][0];
    assert_eq!(run["label"], "epoll+json");
    assert_eq!(run["log"], "json");
    let tx = num(run, "/rr/transactions");
    // Each transaction is at least a read and a write event on the server.
    assert!(num(run, "/logged_events") >= 2.0 * tx, "{run:#}");
    assert!(num(run, "/logged_bytes") > 0.0);
}

#[test]
fn logging_off_and_on_are_measured_in_turns() {
    let _g = heavy();
    let rep = report(&[
        "--model",
        "epoll",
        "--log",
        "both",
        "--rounds",
        "3",
        "--workload",
        "rr",
        "--duration",
        "0.3",
        "--json",
    ]);
    let runs = rep["runs"].as_array().unwrap();
    let labels: Vec<&str> = runs.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["epoll", "epoll+json"]);
    for run in runs {
        assert_eq!(num(run, "/rr/rounds"), 3.0, "{run:#}");
        // Three slices of 0.1 s each.
        assert!((num(run, "/rr/secs") - 0.3).abs() < 1e-9, "{run:#}");
        assert!(num(run, "/rr/transactions") > 0.0, "{run:#}");
    }
    assert!(runs[0]["logged_events"].is_null());
    // The JSON server's log has at least a read and a write event per counted transaction.
    assert!(num(&runs[1], "/logged_events") >= 2.0 * num(&runs[1], "/rr/transactions"));
    let ratio = &rep["ratios"][0];
    assert_eq!(
        (&ratio["what"], &ratio["workload"]),
        (&"json/off".into(), &"rr".into())
    );
    let want = num(&runs[1], "/rr/tps") / num(&runs[0], "/rr/tps");
    assert!((ratio["ratio"].as_f64().unwrap() - want).abs() < 1e-9);
}

#[test]
fn a_target_is_any_echo_server() {
    let _g = heavy();
    let srv = EchoServer::start(None);
    let target = srv.addr.to_string();
    let rep = report(&[
        "--target",
        &target,
        "--duration",
        "0.2",
        "--mib",
        "1",
        "--conns",
        "2",
        "--silent-ms",
        "50",
        "--json",
    ]);
    let run = &rep["runs"][0];
    assert_eq!(run["server"], "target");
    assert_eq!(run["label"], target.as_str());
    assert!(num(run, "/rr/transactions") > 0.0, "{run:#}");
    assert!(num(run, "/crr/connections") > 0.0, "{run:#}");
    assert_eq!(run["bulk"]["verified"], true, "{run:#}");
    assert_eq!(num(run, "/hol/answered"), 2.0);
}

#[test]
fn a_corrupted_echo_fails_the_bulk_check() {
    let _g = heavy();
    let srv = EchoServer::start(Some(123_457));
    let target = srv.addr.to_string();
    let (code, stdout, stderr) = bench(&[
        "--target",
        &target,
        "--workload",
        "bulk",
        "--mib",
        "1",
        "--conns",
        "1",
        "--json",
    ]);
    assert_eq!(code, Some(1), "stderr: {stderr}");
    let rep: Value = serde_json::from_str(&stdout).expect("the report still comes");
    assert_eq!(rep["runs"][0]["bulk"]["verified"], false);
    let why = rep["runs"][0]["bulk"]["mismatch"].as_str().unwrap();
    assert!(why.contains("123457"), "{why}");
    assert!(stderr.contains("did not echo every byte"), "{stderr}");
}

#[test]
fn nothing_listening_at_the_target_is_one_line_and_exit_1() {
    let target = format!("127.0.0.1:{}", free_port());
    let (code, _, stderr) = bench(&["--target", &target]);
    assert_eq!(code, Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("socklab: connect"), "{stderr}");
    assert!(lines[0].contains("ECONNREFUSED"), "{stderr}");
}

#[test]
fn only_loopback_targets_and_one_subject() {
    let (code, _, stderr) = bench(&["--target", "192.0.2.1:7"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("loopback"), "{stderr}");
    let (code, _, stderr) = bench(&["--workload", "rr"]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) = bench(&["--model", "thread", "--target", "127.0.0.1:1"]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) = bench(&["--target", "127.0.0.1:1", "--log", "both"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--log both is for socklab's own servers"),
        "{stderr}"
    );
    let (code, _, stderr) = bench(&["--model", "epoll", "--rounds", "0"]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn the_c_baseline_builds_and_runs_beside_socklab() {
    if socklab::bench::server::which("cc").is_none()
        && socklab::bench::server::which("gcc").is_none()
    {
        util::skip("no C compiler (cc) on PATH (package gcc)");
        return;
    }
    let _g = heavy();
    let dir = std::env::temp_dir().join(format!("socklab-test-cbuild-{}", std::process::id()));
    let exe = socklab::bench::server::build_c_baseline(&dir).expect("the C baseline builds");
    // Without arguments it says how to call it and exits 2.
    let out = Command::new(&exe).output().expect("it runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("iterative|fork|thread|epoll"));
    let _ = std::fs::remove_dir_all(&dir);

    let rep = report(&[
        "--model",
        "fork",
        "--c-baseline",
        "--workload",
        "rr",
        "--duration",
        "0.2",
        "--json",
    ]);
    let labels: Vec<&str> = rep["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["C fork", "fork"]);
    let ratio = &rep["ratios"][0];
    assert_eq!(ratio["what"], "socklab/C");
    assert_eq!(ratio["workload"], "rr");
    assert!(ratio["ratio"].as_f64().unwrap() > 0.0);
}

#[test]
fn tracers_are_measured_beside_the_untraced_servers() {
    let _g = heavy();
    let rep = report(&[
        "--model",
        "epoll",
        "--tracers",
        "--duration",
        "0.2",
        "--rounds",
        "1",
        "--io-mib",
        "1",
        "--json",
    ]);
    let strace = socklab::bench::server::which("strace").is_some();
    let runs = rep["runs"].as_array().unwrap();
    let labels: Vec<&str> = runs.iter().map(|r| r["label"].as_str().unwrap()).collect();
    for want in ["epoll", "epoll+run"] {
        assert!(labels.contains(&want), "{labels:?}");
    }
    if strace {
        for want in ["epoll+strace", "epoll+strace-bpf", "epoll+strace-same"] {
            assert!(labels.contains(&want), "{labels:?}");
        }
    }
    for run in runs {
        // RR and CRR only.
        assert!(num(run, "/rr/transactions") > 0.0, "{run:#}");
        assert!(num(run, "/crr/connections") > 0.0, "{run:#}");
        assert!(run["bulk"].is_null() && run["hol"].is_null(), "{run:#}");
        match run["tracer"].as_str() {
            None => assert!(run.get("tracer_kib_peak").is_none(), "{run:#}"),
            Some(t) => {
                assert!(
                    ["run", "strace", "strace-bpf", "strace-same"].contains(&t),
                    "{run:#}"
                );
                assert!(run["label"].as_str().unwrap().ends_with(&format!("+{t}")));
                assert!(num(run, "/tracer_kib_peak") > 0.0, "{run:#}");
                assert!(num(run, "/tracer_kib_peak") >= num(run, "/tracer_kib_loaded"));
                // A line per event (socklab run) or call (strace): a read and a write a transaction.
                assert!(
                    num(run, "/trace_lines") >= 2.0 * num(run, "/rr/transactions"),
                    "{run:#}"
                );
            }
        }
    }
    let ratios = rep["ratios"].as_array().unwrap();
    for w in ["rr", "crr"] {
        let r = ratios
            .iter()
            .find(|r| r["what"] == "run/untraced" && r["model"] == "epoll" && r["workload"] == w)
            .unwrap_or_else(|| panic!("no run/untraced {w}: {ratios:#?}"));
        assert!(r["ratio"].as_f64().unwrap() > 0.0);
        if strace {
            assert!(
                ratios
                    .iter()
                    .any(|r| r["what"] == "run/strace-bpf" && r["workload"] == w)
            );
            assert!(
                ratios
                    .iter()
                    .any(|r| r["what"] == "run/strace-same" && r["workload"] == w)
            );
        }
    }
    let notes: Vec<&str> = rep["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes.iter().any(|n| n.starts_with("target: file I/O")),
        "{notes:?}"
    );
    let io = rep["file_io"].as_array().unwrap();
    let programs: Vec<&str> = io
        .iter()
        .filter(|f| f["tracer"] == "untraced")
        .map(|f| f["program"].as_str().unwrap())
        .collect();
    assert_eq!(programs.len(), 4, "{io:#?}");
    for f in io {
        assert_eq!(f["secs"].as_array().unwrap().len(), 1, "{f:#}");
        assert!(num(f, "/median_secs") > 0.0, "{f:#}");
        assert_eq!(
            f["vs_untraced"].is_null(),
            f["tracer"] == "untraced",
            "{f:#}"
        );
    }
    assert!(io.iter().any(|f| f["tracer"] == "run"));
}

#[test]
fn tracers_need_a_model_and_rr_or_crr() {
    let (code, _, stderr) = bench(&["--tracers"]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) = bench(&["--model", "epoll", "--tracers", "--workload", "bulk"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--tracers measures rr and crr"), "{stderr}");
}
