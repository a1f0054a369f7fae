use serde_json::Value;

use super::*;
use crate::event::{Body, Event, Syscall};

const LOG: &str = r#"9487  socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 3<TCP:[15672]>
9487  getsockopt(3<TCP:[15672]>, SOL_TCP, TCP_INFO, "\7\0\0\0"..., [280]) = 0
9487  write(1<pipe:[15669]>, "{\"t\":741333553358,\"pid\":9487,\"ti"..., 314 <unfinished ...>
9486  read(4<pipe:[15669]>,  <unfinished ...>
9486  <... read resumed>"{\"t\":741333553358,\"pid\":9487,\"ti"..., 8192) = 314
9487  <... write resumed>)              = 314
9487  accept4(3<TCP:[127.0.0.1:33249]>,  <unfinished ...>
9489  connect(3<TCP:[15675]>, {sa_family=AF_INET, sin_port=htons(33249), sin_addr=inet_addr("127.0.0.1")}, 128) = -1 EINPROGRESS (Operation now in progress)
9487  <... accept4 resumed>{sa_family=AF_INET, sin_port=htons(39934), sin_addr=inet_addr("127.0.0.1")}, [128 => 16], SOCK_CLOEXEC) = 4<TCP:[127.0.0.1:33249->127.0.0.1:39934]>
9487  read(4<TCP:[127.0.0.1:33249->127.0.0.1:39934]>, "hello (from) \"x\"", 1024) = 17
9487  close(3</etc/ld.so.cache>)        = 0
9489  poll([{fd=3<TCP:[1]>, events=POLLOUT}], 1, 3000) = 1 ([{fd=3, revents=POLLOUT}])
9487  --- SIGCHLD {si_signo=SIGCHLD} ---
9487  +++ exited with 0 +++
"#;

#[test]
fn parses_strace_lines() {
    let calls = parse_strace(LOG);
    let names: Vec<&str> = calls.iter().map(|c| c.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "socket",
            "getsockopt",
            "write",
            "read",
            "accept4",
            "connect",
            "read",
            "close",
            "poll"
        ]
    );
    assert_eq!(calls[0].ret, Some(3));
    assert_eq!(calls[0].fd(), None);
    assert!(calls[1].is_tcp_info());
    assert_eq!(
        calls[2].text,
        r#"write(1<pipe:[15669]>, "{\"t\":741333553358,\"pid\":9487,\"ti"..., 314) = 314"#
    );
    assert_eq!((calls[4].fd(), calls[4].ret), (Some(3), Some(4)));
    assert!(
        calls[4]
            .text
            .starts_with("accept4(3<TCP:[127.0.0.1:33249]>, {sa_family")
    );
    assert_eq!(calls[5].errno.as_deref(), Some("EINPROGRESS"));
    assert_eq!(calls[6].ret, Some(17));
    assert_eq!(calls[8].fd(), Some(3));
}

#[test]
fn classifies_by_descriptor() {
    let calls = parse_strace(LOG);
    let classes = classify(&calls);
    use Class::*;
    assert_eq!(
        classes,
        [
            Socket, Socket, LogWrite, Other, Socket, Socket, Socket, Other, Socket
        ]
    );
}

/// select and pselect6 are about the first descriptor of their sets, as passed; a set of
/// pipes is no socket's.
#[test]
fn select_names_its_first_descriptor() {
    let log = r#"8455  select(4, [3<TCP:[127.0.0.1:34197]>], NULL, NULL, {tv_sec=10, tv_usec=0} <unfinished ...>
8455  <... select resumed>)       = 1 (in [3], left {tv_sec=9, tv_usec=997379})
8455  pselect6(6, NULL, [5<TCP:[1->2]>], [4<TCP:[1]> 5<TCP:[1->2]>], {tv_sec=10, tv_nsec=0}, {sigmask=[], sigsetsize=8}) = 1 (out [5])
8455  select(9, [7<pipe:[5]> 8<pipe:[6]>], NULL, NULL, NULL) = -1 EINTR (Interrupted system call)
8455  select(0, NULL, NULL, NULL, {tv_sec=0, tv_usec=10}) = 0 (Timeout)
"#;
    let calls = parse_strace(log);
    let keys: Vec<(Option<i32>, Option<i64>)> = calls.iter().map(|c| (c.fd(), c.ret)).collect();
    assert_eq!(
        keys,
        [
            (Some(3), Some(1)),
            (Some(5), Some(1)),
            (Some(7), Some(-1)),
            (None, Some(0))
        ]
    );
    assert_eq!(calls[2].errno.as_deref(), Some("EINTR"));
    assert!(calls.iter().all(|c| c.fd_note().is_none()));
    use Class::*;
    assert_eq!(classify(&calls), [Socket, Socket, Other, Other]);
}

fn event(tid: u32, name: &str, fd: i32, args: &[(&str, Value)], ret: i64, probe: bool) -> Event {
    let a = args
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Event {
        t: 0,
        pid: tid,
        tid,
        role: None,
        lane: crate::event::Lane::Lab,
        body: Body::Syscall(Syscall {
            name: name.to_string().into(),
            fd: Some(fd),
            args: a,
            ret,
            errno: None,
            dur_ns: 0,
            tcp_state: None,
            local: None,
            remote: None,
            queue: None,
            probe: probe.then(|| "getsockopt(TCP_INFO)".into()),
        }),
    }
}

fn server(read_ret: i64) -> Vec<Event> {
    vec![
        event(9487, "socket", 3, &[], 3, true),
        event(9487, "accept4", 4, &[("fd", Value::from(3))], 4, false),
        event(9487, "read", 4, &[("fd", Value::from(4))], read_ret, false),
    ]
}

fn server_calls() -> Vec<StraceCall> {
    parse_strace(LOG)
        .into_iter()
        .filter(|c| c.tid == 9487)
        .collect()
}

#[test]
fn agreeing_lists_pair_cleanly() {
    let calls = server_calls();
    assert_eq!(lab_calls(&server(17)), strace_calls(&calls));
    let p = pair(server(17), calls);
    assert!(p.clean(), "{:?}", p.problems);
    assert_eq!(p.labels[1], Label::Probe(0));
    assert_eq!(p.labels[2], Label::Aside(Class::LogWrite));
}

#[test]
fn a_misreported_result_is_caught() {
    let calls = server_calls();
    assert_ne!(lab_calls(&server(16)), strace_calls(&calls));
    let p = pair(server(16), calls);
    assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
    assert!(p.problems[0].contains("read(4) = 16"), "{:?}", p.problems);
}

#[test]
fn an_extra_call_on_a_socket_is_caught() {
    let mut calls = server_calls();
    let extra = parse_strace("9487  fcntl(4<TCP:[1]>, F_GETFL) = 0x2 (flags O_RDWR)\n");
    calls.insert(4, extra[0].clone());
    assert_ne!(lab_calls(&server(17)), strace_calls(&calls));
    let p = pair(server(17), calls);
    assert_eq!(p.labels[4], Label::Unlogged);
    assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
}

#[test]
fn a_missing_probe_is_caught() {
    let calls: Vec<StraceCall> = server_calls()
        .into_iter()
        .filter(|c| !c.is_tcp_info())
        .collect();
    let p = pair(server(17), calls);
    assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
}

/// A poll a stop signal interrupted, then the restart_syscall that goes on with it: both are
/// the socket's (the restart as its poll), and pair with the lab's events for them.
#[test]
fn an_interrupted_poll_and_its_restart_pair() {
    let log = r#"8202  poll([{fd=3<TCP:[127.0.0.1:47123]>, events=POLLIN}], 1, 10000) = ? ERESTART_RESTARTBLOCK (Interrupted by signal)
8202  --- SIGSTOP {si_signo=SIGSTOP, si_code=SI_USER, si_pid=8182, si_uid=0} ---
8202  --- stopped by SIGSTOP ---
8202  --- SIGCONT {si_signo=SIGCONT, si_code=SI_USER, si_pid=8213, si_uid=0} ---
8202  restart_syscall(<... resuming interrupted poll ...>) = 1
8202  restart_syscall(<... resuming interrupted nanosleep ...>) = 0
"#;
    let calls = parse_strace(log);
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].ret, None);
    assert_eq!(calls[0].errno.as_deref(), Some("ERESTART_RESTARTBLOCK"));
    assert_eq!((calls[1].fd(), calls[1].ret), (None, Some(1)));
    use Class::*;
    // The second restart follows no interrupted call of this thread's.
    assert_eq!(classify(&calls), [Socket, Socket, Other]);
    let mut poll = event(8202, "poll", 3, &[], -1, false);
    if let Body::Syscall(sc) = &mut poll.body {
        sc.errno = Some("ERESTART_RESTARTBLOCK".into());
    }
    let restart = event(
        8202,
        "restart_syscall",
        3,
        &[("resumes", "poll".into())],
        1,
        false,
    );
    let lab = lab_calls(&[poll, restart]);
    assert_eq!(lab, strace_calls(&calls));
    assert_eq!(
        lab[&8202]
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "poll(3) = ? ERESTART_RESTARTBLOCK",
            "restart_syscall(?) = 1"
        ]
    );
}
