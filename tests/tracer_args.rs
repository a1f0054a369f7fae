//! The tracer's argument decoder against the lab's own wrappers: each wrapper is called with
//! logging on, the same call is described by the registers it made (pointers into this
//! process's memory, holding what the program passed or what the kernel wrote), and
//! `tracer::args::decode` of those must equal the event's `args`, name for name and spelling for
//! spelling; `fd_with` must be the event's `fd`.
//!
//! Read first: src/tracer/args.rs, src/sys/table.rs. The recorder is process-global, so the
//! test holds `LOCK`.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::ptr::addr_of;
use std::sync::Mutex;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{self as nsock, SockaddrLike, SockaddrStorage};
use nix::sys::uio::{RemoteIoVec, process_vm_readv};
use nix::unistd::Pid;
use socklab::event::Syscall;
use socklab::event::record::{self, Collector, Options};
use socklab::sys::{
    self, Domain, EpollCreateFlags, EpollCtl, EpollEvent, EpollFlags, Flags, ForkResult, How, Msg,
    PollFlags, Signal, SockOpt, Type, WaitStatus,
};
use socklab::tracer::args::{self, Memory};

static LOCK: Mutex<()> = Mutex::new(());

/// This process's own memory, read as the tracer reads a tracee's (`process_vm_readv`).
struct SelfMem;

impl Memory for SelfMem {
    fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let remote = [RemoteIoVec {
            base: addr as usize,
            len,
        }];
        let n = process_vm_readv(
            Pid::this(),
            &mut [std::io::IoSliceMut::new(&mut buf)],
            &remote,
        )
        .ok()?;
        buf.truncate(n);
        Some(buf)
    }
}

/// The recorder, on for the test.
struct Logged(Collector);

impl Logged {
    fn start() -> Logged {
        let c = Collector::new();
        record::install(Box::new(c.clone()), Options::default());
        Logged(c)
    }

    /// The one call logged since the last look.
    fn one(&self) -> Syscall {
        let calls: Vec<Syscall> = self
            .0
            .take()
            .into_iter()
            .filter_map(|e| e.syscall().cloned())
            .collect();
        assert_eq!(calls.len(), 1, "{calls:?}");
        calls.into_iter().next().unwrap()
    }

    /// The wrapper's event against the decoder's view of the same call, made with `raw`.
    fn check(&self, raw: [u64; 6]) -> Syscall {
        let sc = self.one();
        let spec = sys::table::find(&sc.name).unwrap();
        let got = args::decode(spec, &raw, sc.ret, &SelfMem);
        assert_eq!(got, sc.args, "{}: decoded vs. the wrapper's", sc.name);
        let fd = args::fd_with(spec, &raw, sc.ret, &SelfMem);
        assert_eq!(fd, sc.fd, "{}: the event's fd", sc.name);
        sc
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        record::uninstall();
    }
}

fn p<T>(x: &T) -> u64 {
    addr_of!(*x) as u64
}

fn buf(b: &[u8]) -> u64 {
    b.as_ptr() as u64
}

fn fd(f: &impl AsFd) -> u64 {
    f.as_fd().as_raw_fd() as u64
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A `struct sockaddr` for `a`, and its length.
fn sa(a: SocketAddr) -> SockaddrStorage {
    SockaddrStorage::from(a)
}

const NOSIG: u64 = libc::MSG_NOSIGNAL as u64;

/// The tests that make children, or expect to have none (wait4's ECHILD), take turns.
static CHILDREN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn children_lock() -> std::sync::MutexGuard<'static, ()> {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn every_wrapped_call_decodes_as_its_wrapper_logs_it() {
    let _turn = children_lock();
    let _lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let log = Logged::start();
    let (inet, stream, dgram) = (libc::AF_INET as u64, libc::SOCK_STREAM as u64, 2u64);
    let cx = libc::SOCK_CLOEXEC as u64;
    let nb = libc::SOCK_NONBLOCK as u64;

    // socket, bind, getsockname, listen.
    let l = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC).unwrap();
    log.check([inet, stream | cx, 0, 0, 0, 0]);
    let s6 = sys::socket(
        Domain::Inet6,
        Type::Datagram,
        Flags::SOCK_NONBLOCK | Flags::SOCK_CLOEXEC,
    )
    .unwrap();
    log.check([libc::AF_INET6 as u64, dgram | nb | cx, 0, 0, 0, 0]);
    sys::close(s6).unwrap();
    log.one();
    let any = sa(local(0));
    sys::bind(&l, local(0)).unwrap();
    log.check([fd(&l), any.as_ptr() as u64, u64::from(any.len()), 0, 0, 0]);
    let bound = sys::bind(&l, local(0)).unwrap_err();
    assert_eq!(bound, Errno::EINVAL);
    log.check([fd(&l), any.as_ptr() as u64, u64::from(any.len()), 0, 0, 0]);
    let addr = sys::getsockname(&l).unwrap();
    let name: SockaddrStorage = nsock::getsockname(l.as_raw_fd()).unwrap();
    let name_len = name.len();
    log.check([fd(&l), name.as_ptr() as u64, p(&name_len), 0, 0, 0]);
    sys::listen(&l, 16).unwrap();
    log.check([fd(&l), 16, 0, 0, 0, 0]);

    // connect, accept4, getpeername.
    let c = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC).unwrap();
    log.one();
    let dst = sa(addr);
    sys::connect(&c, addr).unwrap();
    log.check([fd(&c), dst.as_ptr() as u64, u64::from(dst.len()), 0, 0, 0]);
    let (a, _) = sys::accept4(&l, Flags::SOCK_CLOEXEC).unwrap();
    let peer: SockaddrStorage = nsock::getpeername(a.as_raw_fd()).unwrap();
    let peer_len = peer.len();
    log.check([fd(&l), peer.as_ptr() as u64, p(&peer_len), cx, 0, 0]);
    sys::getpeername(&a).unwrap();
    log.check([fd(&a), peer.as_ptr() as u64, p(&peer_len), 0, 0, 0]);
    // A failed accept4 (nothing queued on a non-blocking listener) shows no peer.
    sys::set_nonblocking(&l, true).unwrap();
    log.check([
        fd(&l),
        libc::F_SETFL as u64,
        libc::O_NONBLOCK as u64,
        0,
        0,
        0,
    ]);
    let empty = [0u8; 128];
    let empty_len = 128u32;
    let again = sys::accept4(&l, Flags::SOCK_CLOEXEC | Flags::SOCK_NONBLOCK).unwrap_err();
    assert_eq!(again, Errno::EAGAIN);
    log.check([fd(&l), buf(&empty), p(&empty_len), cx | nb, 0, 0]);
    sys::set_nonblocking(&l, false).unwrap();
    log.check([fd(&l), libc::F_SETFL as u64, 0, 0, 0, 0]);

    // write, read, send, recv, recvfrom on a stream (no address).
    let long = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n\x00\xff tail";
    sys::write(&c, long).unwrap();
    log.check([fd(&c), buf(long), long.len() as u64, 0, 0, 0]);
    let mut got = [0u8; 64];
    let n = sys::read(&a, &mut got).unwrap();
    assert_eq!(n, long.len());
    log.check([fd(&a), buf(&got), 64, 0, 0, 0]);
    sys::send(&c, b"hi\n", Msg::MSG_NOSIGNAL).unwrap();
    log.check([fd(&c), buf(b"hi\n"), 3, NOSIG, 0, 0]);
    let mut small = [0u8; 2];
    sys::recv(&a, &mut small, Msg::MSG_PEEK).unwrap();
    log.check([fd(&a), buf(&small), 2, libc::MSG_PEEK as u64, 0, 0]);
    let mut rest = [0u8; 16];
    let zero = 0u32;
    sys::recvfrom(&a, &mut rest).unwrap();
    log.check([fd(&a), buf(&rest), 16, 0, buf(&empty), p(&zero)]);
    let dontwait = Msg::MSG_DONTWAIT;
    assert_eq!(sys::recv(&a, &mut rest, dontwait), Err(Errno::EAGAIN));
    log.check([fd(&a), buf(&rest), 16, libc::MSG_DONTWAIT as u64, 0, 0]);

    // Options.
    let opts = [
        (SockOpt::ReuseAddr(true), 1u64),
        (SockOpt::ReusePort(false), 1),
        (SockOpt::TcpNoDelay(true), 6),
        (SockOpt::RcvBuf(65536), 1),
        (SockOpt::SndBuf(4096), 1),
    ];
    for (opt, level) in opts {
        sys::setsockopt(&c, opt).unwrap();
        let (name, val): (i32, i32) = match opt {
            SockOpt::ReuseAddr(on) => (libc::SO_REUSEADDR, on.into()),
            SockOpt::ReusePort(on) => (libc::SO_REUSEPORT, on.into()),
            SockOpt::TcpNoDelay(on) => (libc::TCP_NODELAY, on.into()),
            SockOpt::RcvBuf(n) => (libc::SO_RCVBUF, n as i32),
            SockOpt::SndBuf(n) => (libc::SO_SNDBUF, n as i32),
            _ => unreachable!(),
        };
        log.check([fd(&c), level, name as u64, p(&val), 4, 0]);
    }
    let linger = [1i32, 0];
    sys::setsockopt(&c, SockOpt::Linger(Some(0))).unwrap();
    log.check([fd(&c), 1, libc::SO_LINGER as u64, p(&linger), 8, 0]);
    let no_linger = [0i32, 0];
    sys::setsockopt(&c, SockOpt::Linger(None)).unwrap();
    log.check([fd(&c), 1, libc::SO_LINGER as u64, p(&no_linger), 8, 0]);
    let tv = [1i64, 500_000];
    let t = Some(Duration::from_millis(1500));
    sys::setsockopt(&c, SockOpt::RcvTimeout(t)).unwrap();
    log.check([fd(&c), 1, libc::SO_RCVTIMEO as u64, p(&tv), 16, 0]);
    let tv0 = [0i64, 0];
    sys::setsockopt(&c, SockOpt::SndTimeout(None)).unwrap();
    log.check([fd(&c), 1, libc::SO_SNDTIMEO as u64, p(&tv0), 16, 0]);

    let four = 4u32;
    let no_error = 0i32;
    assert_eq!(sys::so_error(&c).unwrap(), None);
    log.check([fd(&c), 1, libc::SO_ERROR as u64, p(&no_error), p(&four), 0]);
    let info = sys::tcp_info(&c).unwrap();
    let mut bytes = vec![0u8; 232];
    bytes[0] = info.state;
    let info_len = 232u32;
    log.check([
        fd(&c),
        6,
        libc::TCP_INFO as u64,
        buf(&bytes),
        p(&info_len),
        0,
    ]);

    // poll: the event is about the first descriptor.
    {
        use nix::poll::PollFd;
        let mut fds = [
            PollFd::new(c.as_fd(), PollFlags::POLLOUT),
            PollFd::new(a.as_fd(), PollFlags::POLLIN | PollFlags::POLLPRI),
        ];
        let n = sys::poll(&mut fds, 0).unwrap();
        assert_eq!(n, 1);
        let raw = [fds.as_ptr() as u64, 2, 0, 0, 0, 0];
        log.check(raw);
        // No descriptors: a sleep of 1 ms, about no fd.
        let none: [PollFd<'_>; 0] = [];
        assert_eq!(sys::poll(&mut [], 1).unwrap(), 0);
        log.check([none.as_ptr() as u64, 0, 1, 0, 0, 0]);
    }

    // epoll.
    let ep = sys::epoll_create1(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
    log.check([libc::EPOLL_CLOEXEC as u64, 0, 0, 0, 0, 0]);
    let epfd = ep.0.as_fd().as_raw_fd() as u64;
    let ev = EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP, 7);
    sys::epoll_ctl(&ep, EpollCtl::Add(ev.events()), &a, 7).unwrap();
    log.check([epfd, 1, fd(&a), p(&ev), 0, 0]);
    let ev2 = EpollEvent::new(EpollFlags::EPOLLIN, 8);
    sys::epoll_ctl(&ep, EpollCtl::Modify(ev2.events()), &a, 8).unwrap();
    log.check([epfd, 3, fd(&a), p(&ev2), 0, 0]);
    sys::write(&c, b"x").unwrap();
    log.one();
    let mut events = [EpollEvent::empty(); 4];
    assert_eq!(sys::epoll_wait(&ep, &mut events, 1000).unwrap(), 1);
    log.check([epfd, events.as_ptr() as u64, 4, 1000, 0, 0]);
    sys::epoll_ctl(&ep, EpollCtl::Delete, &a, 0).unwrap();
    log.check([epfd, 2, fd(&a), 0, 0, 0]);
    let mut none = [EpollEvent::empty(); 2];
    assert_eq!(sys::epoll_wait(&ep, &mut none, 0).unwrap(), 0);
    log.check([epfd, none.as_ptr() as u64, 2, 0, 0, 0]);
    drop(ep);

    // shutdown, close.
    sys::shutdown(&c, How::Write).unwrap();
    log.check([fd(&c), libc::SHUT_WR as u64, 0, 0, 0, 0]);
    for f in [a, c, l] {
        let raw = fd(&f);
        sys::close(f).unwrap();
        log.check([raw, 0, 0, 0, 0, 0]);
    }

    // UDP: sendto and recvfrom with addresses.
    let peer = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let u = sys::socket(Domain::Inet, Type::Datagram, Flags::SOCK_CLOEXEC).unwrap();
    log.one();
    let to = sa(peer.local_addr().unwrap());
    sys::sendto(&u, b"ping", peer.local_addr().unwrap()).unwrap();
    log.check([
        fd(&u),
        buf(b"ping"),
        4,
        0,
        to.as_ptr() as u64,
        u64::from(to.len()),
    ]);
    let from = sys::getsockname(&u).unwrap();
    log.one();
    peer.send_to(b"pong", from).unwrap();
    let mut dgram_buf = [0u8; 8];
    sys::recvfrom(&u, &mut dgram_buf).unwrap();
    let sender = sa(peer.local_addr().unwrap());
    let sender_len = sender.len();
    log.check([
        fd(&u),
        buf(&dgram_buf),
        8,
        0,
        sender.as_ptr() as u64,
        p(&sender_len),
    ]);
    sys::close(u).unwrap();
    log.one();

    // A refused non-blocking connect: SO_ERROR names the errno.
    let r = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC).unwrap();
    log.one();
    let closed = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = closed.local_addr().unwrap().port();
    sys::set_nonblocking(&r, true).unwrap();
    log.one();
    let _ = sys::connect(&r, local(port));
    log.one();
    {
        use nix::poll::PollFd;
        let mut w = [PollFd::new(r.as_fd(), PollFlags::POLLOUT)];
        sys::poll(&mut w, 5000).unwrap();
        log.check([w.as_ptr() as u64, 1, 5000, 0, 0, 0]);
    }
    let refused = libc::ECONNREFUSED;
    assert_eq!(sys::so_error(&r).unwrap(), Some(Errno::ECONNREFUSED));
    log.check([fd(&r), 1, libc::SO_ERROR as u64, p(&refused), p(&four), 0]);
    sys::close(r).unwrap();
    log.one();

    // kill and wait4, failing and succeeding; clone (fork) is checked below.
    let nobody = Pid::from_raw(0x3fff_fff0);
    assert_eq!(sys::kill(nobody, Signal::SIGTERM), Err(Errno::ESRCH));
    log.check([0x3fff_fff0, libc::SIGTERM as u64, 0, 0, 0, 0]);
    let status = 0i32;
    assert_eq!(sys::waitpid(None, true), Err(Errno::ECHILD));
    log.check([(-1i64) as u64, p(&status), 1, 0, 0, 0]);
}

/// glibc's fork is `clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|
/// SIGCHLD, child_tidptr=...)`: the wrapper logs the stack and flags; the decoder shows the
/// same first and the row's other pointers after them.
#[test]
fn fork_kill_and_wait_decode_as_logged() {
    let _turn = children_lock();
    let _lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let log = Logged::start();
    let child = match sys::fork().unwrap() {
        ForkResult::Child => sys::ffi::exit_now(0),
        ForkResult::Parent { child } => child,
    };
    let sc = log.one();
    let flags = (libc::CLONE_CHILD_CLEARTID | libc::CLONE_CHILD_SETTID | libc::SIGCHLD) as u64;
    let tid = 0u32;
    let raw = [flags, 0, 0, p(&tid), 0, 0];
    let spec = sys::table::find("clone").unwrap();
    let got = args::decode(spec, &raw, sc.ret, &SelfMem);
    let got: Vec<_> = got.iter().collect();
    let want: Vec<_> = sc.args.iter().collect();
    assert_eq!(
        got[..2],
        want[..],
        "clone: the wrapper's arguments come first"
    );
    let extra: Vec<&str> = got[2..].iter().map(|(k, _)| *k).collect();
    assert_eq!(extra, ["parent_tid", "child_tidptr", "tls"]);
    assert_eq!(args::fd_of(spec, &raw, sc.ret), sc.fd);

    // A child that has already exited is a zombie until waited for: kill still finds it.
    sys::kill(child, Signal::SIGKILL).unwrap();
    log.check([child.as_raw() as u64, libc::SIGKILL as u64, 0, 0, 0, 0]);
    let st = sys::waitpid(Some(child), false).unwrap();
    let status: i32 = match st {
        WaitStatus::Exited(_, code) => code << 8,
        WaitStatus::Signaled(_, sig, core) => sig as i32 | if core { 0x80 } else { 0 },
        other => panic!("{other:?}"),
    };
    log.check([child.as_raw() as u64, p(&status), 0, 0, 0, 0]);
}

/// What the decoder sees of descriptors: the new ones, by call.
#[test]
fn new_descriptors_are_the_ones_the_events_are_about() {
    let _lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let log = Logged::start();
    let s: OwnedFd = sys::socket(Domain::Unix, Type::Stream, Flags::SOCK_CLOEXEC).unwrap();
    let sc = log.check([
        libc::AF_UNIX as u64,
        1 | libc::SOCK_CLOEXEC as u64,
        0,
        0,
        0,
        0,
    ]);
    let spec = sys::table::find("socket").unwrap();
    let raw = [1, 1, 0, 0, 0, 0];
    assert_eq!(args::new_fds(spec, &raw, sc.ret, &SelfMem), [s.as_raw_fd()]);
    assert!(args::new_fds(spec, &raw, -1, &SelfMem).is_empty());
    sys::close(s).unwrap();
    log.one();
}

/// Through the real tracer: bash's `/dev/tcp` connects and writes; the decoder reads the
/// tracee's memory at the exit stops (`Stopped` as `Memory`), and the exec's argv comes from
/// the kernel's copy.
#[test]
fn a_traced_programs_calls_decode_from_its_memory() {
    let _turn = children_lock();
    use socklab::tracer::{self, Seen};
    use std::ffi::OsString;
    use std::io::Read;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).map(|_| got)
    });
    let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port}; echo hello >&3; exec 3>&-");
    let argv: Vec<OsString> = ["bash", "-c", &script].iter().map(OsString::from).collect();
    let nrs = [libc::SYS_socket, libc::SYS_connect, libc::SYS_write];
    let nrs: Vec<u32> = nrs.iter().map(|&n| n as u32).collect();
    let mut seen_args = Vec::new();
    tracer::run(&argv, &nrs, |stopped, seen| {
        if let Seen::Call(c) = seen {
            let spec = sys::table::by_nr(c.nr as i64).unwrap();
            let a = args::decode(spec, &c.args, c.ret, stopped);
            seen_args.push((spec.name, serde_json::to_string(&a).unwrap()));
        }
    })
    .unwrap();
    server.join().unwrap().unwrap();
    let find = |name: &str, part: &str| {
        seen_args
            .iter()
            .any(|(n, a)| *n == name && a.contains(part))
    };
    assert!(
        find(
            "socket",
            r#"{"domain":"AF_INET","type":"SOCK_STREAM","protocol":"IPPROTO_TCP"}"#
        ),
        "{seen_args:?}"
    );
    let addr = format!(r#""addr":"127.0.0.1:{port}""#);
    assert!(find("connect", &addr), "{seen_args:?}");
    assert!(
        find("write", r#""data":"hello\\n","count":6"#),
        "{seen_args:?}"
    );
}
