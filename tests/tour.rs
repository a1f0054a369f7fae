//! `socklab tour`: runs every stop to the end unattended, stops cleanly on Ctrl-C, and speaks
//! the language it was given, children included.

mod util;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use socklab::course::tour::STOPS;

use util::{Proc, assert_no_panic, socklab_exe};

/// The whole tour may take this long (its longest stop, the backlog, waits about 1 s).
const TOUR_LIMIT: Duration = Duration::from_secs(60);

fn tour(args: &[&str]) -> (i32, String, String, Duration) {
    let start = Instant::now();
    let child = Command::new(socklab_exe())
        .args(args)
        .env_remove("SOCKLAB_LANG")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("socklab runs");
    // Read the pipes while waiting: the tour writes more than a pipe holds.
    let pid = Pid::from_raw(child.id() as i32);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(TOUR_LIMIT) {
        Ok(out) => out.expect("output"),
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            panic!("the tour took more than {TOUR_LIMIT:?}");
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_no_panic(&stderr);
    (
        out.status.code().unwrap_or(-1),
        stdout,
        stderr,
        start.elapsed(),
    )
}

#[test]
fn the_whole_tour_runs_unattended_to_the_end() {
    let (code, out, err, took) = tour(&["tour", "--step-delay", "0"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for n in 1..=STOPS.len() {
        let heading = format!("── {n}/{}", STOPS.len());
        assert!(out.contains(&heading), "no {heading}:\n{out}");
    }
    // The stops ran something: the demo's and the scenarios' own lines are there.
    assert!(out.contains("$ socklab demo"), "{out}");
    assert!(out.contains("$ socklab scenario backlog"), "{out}");
    assert!(out.contains("SOCK_DGRAM"), "{out}");
    // The server-models stop ran a forking server: a clone() per client, reaped by wait4.
    assert!(out.contains("clone(") && out.contains("wait4("), "{out}");
    assert!(out.contains("End of the tour"), "{out}");
    println!("tour --step-delay 0 took {took:?}");
}

#[test]
fn with_stdin_closed_the_tour_does_not_wait_for_enter() {
    // No --step-delay: a closed stdin (EOF) means "go on to the end".
    let (code, out, err, _) = tour(&["tour", "--from", "7"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("── 7/8") && out.contains("── 8/8"), "{out}");
}

#[test]
fn the_tour_speaks_korean_and_so_do_its_children() {
    let (code, out, err, _) = tour(&["--lang", "ko", "tour", "--only", "8"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("TCP와 UDP"), "{out}");
    // The udp scenario, run as a child, explained itself in Korean.
    assert!(out.contains("본 것:"), "{out}");
    assert!(!out.contains("── 7/8"), "--only 8 ran stop 7:\n{out}");
}

#[test]
fn a_stop_past_the_end_is_a_usage_error() {
    let (code, _, err, _) = tour(&["tour", "--from", "99"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("99"), "{err}");
}

#[test]
fn ctrl_c_at_a_pause_stops_the_tour_cleanly() {
    let mut cmd = Command::new(socklab_exe());
    cmd.args(["tour", "--from", "7"])
        .env_remove("SOCKLAB_LANG")
        .env_remove("LC_ALL")
        .env("LANG", "C.UTF-8");
    // stdin stays open and silent: the tour waits for Enter after stop 7 (text only).
    let mut p = Proc::spawn(cmd);
    p.wait_for(|l| l.contains("── 7/8").then_some(()));
    std::thread::sleep(Duration::from_millis(300));
    kill(Pid::from_raw(p.pid() as i32), Signal::SIGINT).expect("kill");
    let f = p.finish();
    assert_eq!(f.status.code(), Some(0), "stderr: {}", f.stderr);
    let out = f.stdout.join("\n");
    assert!(out.contains("socklab tour --from 8"), "{out}");
    assert!(!out.contains("── 8/8"), "{out}");
}
