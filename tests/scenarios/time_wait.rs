use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use socklab::event::Lane::{Client, Server};
use socklab::event::tcp_state::TcpState::*;
use socklab::observe::sock_diag;
use socklab::sys::{self, Domain, Flags, SockOpt, Type};

#[test]
fn time_wait_on_the_server_port_blocks_a_restart_without_so_reuseaddr() {
    let r = super::run("time-wait", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let tw: Vec<_> = r
        .states()
        .filter(|&(lane, st, src)| lane == Server && st == TimeWait && src == "sock_diag")
        .collect();
    assert!(!tw.is_empty(), "sock_diag lists the server-side TIME_WAIT");
    assert!(
        !r.saw(Client, TimeWait),
        "the client closed second: no TIME_WAIT on its side"
    );
    assert!(
        r.saw(Client, CloseWait),
        "the client read EOF in CLOSE_WAIT"
    );
    let binds: Vec<_> = r
        .calls(Server, "bind")
        .iter()
        .map(|s| s.errno.clone())
        .collect();
    assert_eq!(
        binds,
        [None, Some("EADDRINUSE".to_string()), None],
        "first server, restart without SO_REUSEADDR, restart with it"
    );
    let reuse: Vec<_> = r
        .calls(Server, "setsockopt")
        .iter()
        .filter(|s| s.args.get("optname").and_then(|v| v.as_str()) == Some("SO_REUSEADDR"))
        .map(|s| s.errno.is_none())
        .collect();
    assert_eq!(
        reuse,
        [true, true],
        "set on the first server and the restart"
    );
    let listens = r.calls(Server, "listen");
    assert_eq!(listens.len(), 2);
    assert_eq!(listens[1].ret, 0, "the restarted server listens");
    assert_eq!(listens[1].tcp_state, Some(Listen));
    if super::root() {
        for (lane, st) in [(Server, FinWait1), (Server, FinWait2), (Client, LastAck)] {
            assert!(r.saw(lane, st), "{lane:?} {st}");
        }
        let flags = r.flags();
        assert_eq!(
            flags.iter().filter(|f| *f == "FIN|ACK").count(),
            2,
            "{flags:?}"
        );
        assert!(!flags.iter().any(|f| f.contains("RST")), "{flags:?}");
    } else {
        crate::util::skip("needs root (the tracepoint and packet checks)");
    }
}

/// A port left with one server-side TIME_WAIT socket; the old listener had SO_REUSEADDR
/// `reuse`.
fn port_in_time_wait(reuse: bool) -> SocketAddr {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let l = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC).unwrap();
    sys::setsockopt(&l, SockOpt::ReuseAddr(reuse)).unwrap();
    sys::bind(&l, any).unwrap();
    sys::listen(&l, 1).unwrap();
    let addr = sys::getsockname(&l).unwrap();
    let c = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC).unwrap();
    sys::connect(&c, addr).unwrap();
    let (a, _) = sys::accept4(&l, Flags::SOCK_CLOEXEC).unwrap();
    sys::close(a).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(sys::read(&c, &mut buf), Ok(0));
    sys::close(c).unwrap();
    sys::close(l).unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let socks = sock_diag::tcp_sockets(&[addr.port()]).unwrap();
        if socks.iter().any(|s| s.state == TimeWait) {
            return addr;
        }
        assert!(Instant::now() < deadline, "no TIME_WAIT: {socks:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn bind_again(addr: SocketAddr, reuse: bool) -> Result<(), Errno> {
    let s = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC).unwrap();
    sys::setsockopt(&s, SockOpt::ReuseAddr(reuse)).unwrap();
    let res = sys::bind(&s, addr);
    sys::close(s).unwrap();
    res
}

/// What the scenario's explanation says: bind() passes a TIME_WAIT socket only when both the
/// new socket and the old connection's socket had SO_REUSEADDR.
#[test]
fn so_reuseaddr_must_be_on_the_old_socket_too() {
    let addr = port_in_time_wait(true);
    assert_eq!(bind_again(addr, false), Err(Errno::EADDRINUSE));
    assert_eq!(bind_again(addr, true), Ok(()));
    let addr = port_in_time_wait(false);
    assert_eq!(bind_again(addr, false), Err(Errno::EADDRINUSE));
    assert_eq!(
        bind_again(addr, true),
        Err(Errno::EADDRINUSE),
        "the old listener had no SO_REUSEADDR"
    );
}
