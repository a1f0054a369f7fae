#![allow(unsafe_code)]
//! The only `unsafe` in socklab: the few calls nix does not offer, each one syscall.
//!
//! Read first: getsockopt(2) and tcp(7) for TCP_INFO, accept(2) for accept4's peer address,
//! sigaction(2) for SA_RESTART, fork(2).

use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::socket::{SockFlag, SockaddrLike, SockaddrStorage};
use nix::unistd::ForkResult;

/// The fields of `struct tcp_info` that socklab reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfoRaw {
    /// `tcpi_state` (Linux numbering).
    pub state: u8,
    /// `tcpi_unacked` (on a listener: connections waiting for accept).
    pub unacked: u32,
    /// `tcpi_sacked` (on a listener: the backlog cap).
    pub sacked: u32,
    /// `tcpi_rtt` in microseconds.
    pub rtt_us: u32,
    /// `tcpi_snd_cwnd` in segments.
    pub snd_cwnd: u32,
    /// `tcpi_retransmits`.
    pub retransmits: u8,
}

/// `getsockopt(fd, SOL_TCP, TCP_INFO, ...)`: one syscall; nix has no TCP_INFO option.
///
/// Accepts a shorter struct from an older kernel: every field read here is in the first 100
/// bytes, present since Linux 2.6.
pub fn tcp_info(fd: RawFd) -> Result<TcpInfoRaw, Errno> {
    // SAFETY: tcp_info is plain old data, so all-zero bytes are a valid value.
    let mut info: libc::tcp_info = unsafe { zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the pointer and length describe `info`, which outlives the call; the kernel
    // writes at most `len` bytes and a bad fd only yields an error.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    Errno::result(rc)?;
    if (len as usize) < 100 {
        return Err(Errno::EINVAL);
    }
    Ok(TcpInfoRaw {
        state: info.tcpi_state,
        unacked: info.tcpi_unacked,
        sacked: info.tcpi_sacked,
        rtt_us: info.tcpi_rtt,
        snd_cwnd: info.tcpi_snd_cwnd,
        retransmits: info.tcpi_retransmits,
    })
}

/// `accept4(fd, &addr, &len, flags)`: one syscall that also returns the peer's address, which
/// nix's `accept4` drops.
pub fn accept4(
    fd: BorrowedFd<'_>,
    flags: SockFlag,
) -> Result<(OwnedFd, Option<SocketAddr>), Errno> {
    // SAFETY: sockaddr_storage is plain old data; zeroes are valid.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the address pointer and length describe `storage`, which outlives the call.
    let rc = unsafe {
        libc::accept4(
            fd.as_raw_fd(),
            (&raw mut storage).cast(),
            &mut len,
            flags.bits(),
        )
    };
    let new_fd = Errno::result(rc)?;
    // SAFETY: accept4 succeeded, so `new_fd` is a fresh descriptor that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(new_fd) };
    // SAFETY: the kernel filled `len` bytes of `storage` with a socket address.
    let addr = unsafe { SockaddrStorage::from_raw((&raw const storage).cast(), Some(len)) };
    Ok((owned, addr.as_ref().and_then(to_std)))
}

/// Converts nix's address type into the standard library's, for IPv4 and IPv6.
pub fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    if let Some(v6) = addr.as_sockaddr_in6() {
        return Some(SocketAddr::V6((*v6).into()));
    }
    None
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs SIGINT and SIGTERM handlers *without* SA_RESTART, so a blocking `accept4` or
/// `read` returns EINTR and the program can close its sockets and exit cleanly.
pub fn catch_interrupts() -> Result<(), Errno> {
    let action = SigAction::new(
        SigHandler::Handler(on_interrupt),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(sig, &action) }?;
    }
    Ok(())
}

/// True once SIGINT or SIGTERM arrived after [`catch_interrupts`].
#[inline]
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

static CHILD_EXITED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_child_exit(_: libc::c_int) {
    CHILD_EXITED.store(true, Ordering::SeqCst);
}

/// Installs a SIGCHLD handler *without* SA_RESTART (and with SA_NOCLDSTOP), so a parent
/// blocked in `accept4` returns EINTR when a child ends and can reap it at once.
pub fn catch_child_exits() -> Result<(), Errno> {
    let action = SigAction::new(
        SigHandler::Handler(on_child_exit),
        SaFlags::SA_NOCLDSTOP,
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe { sigaction(Signal::SIGCHLD, &action) }.map(drop)
}

/// True if SIGCHLD arrived since the last call (after [`catch_child_exits`]); clears the flag.
pub fn take_child_exited() -> bool {
    // Read before written: after a fork, a store would copy the flag's page.
    CHILD_EXITED.load(Ordering::SeqCst) && CHILD_EXITED.swap(false, Ordering::SeqCst)
}

/// `_exit(code)`: ends the process at once, without the C library's exit handlers (a fork
/// child whose output is already flushed).
#[inline]
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns; it only ends the process.
    unsafe { libc::_exit(code) }
}

/// `fork()`: one syscall (glibc makes it `clone`).
///
/// The child must only run socklab code paths that are safe after fork in a process that may
/// have other threads: socklab's servers fork from a single-threaded accept loop.
pub fn fork() -> Result<ForkResult, Errno> {
    // SAFETY: callers fork only from single-threaded code (see above), so the child holds
    // no lock that a vanished thread owned.
    unsafe { nix::unistd::fork() }
}

/// `ioctl(fd, SIOCGIFFLAGS)` then `ioctl(fd, SIOCSIFFLAGS)`: brings interface `name` up (two
/// syscalls; nix has no interface-flag ioctls). Used for the loopback of a new network
/// namespace, which starts down.
pub fn set_interface_up(fd: BorrowedFd<'_>, name: &str) -> Result<(), Errno> {
    // SAFETY: ifreq is plain old data; zeroes are valid.
    let mut req: libc::ifreq = unsafe { zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return Err(Errno::EINVAL);
    }
    for (dst, &b) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = b as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq that outlives both calls; SIOC[GS]IFFLAGS read and write
    // only its name and flags.
    unsafe {
        Errno::result(libc::ioctl(
            fd.as_raw_fd(),
            libc::SIOCGIFFLAGS,
            &raw mut req,
        ))?;
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        Errno::result(libc::ioctl(
            fd.as_raw_fd(),
            libc::SIOCSIFFLAGS,
            &raw mut req,
        ))?;
    }
    Ok(())
}

/// `setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &sock_fprog)`: attaches a classic BPF
/// program (socket(7), Documentation/networking/filter.rst); one syscall, nix has no such
/// option. The kernel copies and checks the program, so `prog` need not outlive the call.
pub fn attach_filter(fd: BorrowedFd<'_>, prog: &[libc::sock_filter]) -> Result<(), Errno> {
    let len = u16::try_from(prog.len()).map_err(|_| Errno::EINVAL)?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `len` valid instructions that outlive the call; the kernel
    // only reads them (and rejects an invalid program with EINVAL).
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&raw const fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    Errno::result(rc).map(drop)
}

/// `bind(fd, sockaddr_ll{AF_PACKET, ETH_P_ALL, ifindex})`: starts an AF_PACKET socket that
/// was opened with protocol 0 receiving every protocol on one interface (packet(7)); one
/// syscall, as nix cannot build a `sockaddr_ll`.
pub fn bind_packet_all(fd: BorrowedFd<'_>, ifindex: u32) -> Result<(), Errno> {
    // SAFETY: sockaddr_ll is plain old data; zeroes are valid.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = i32::try_from(ifindex).map_err(|_| Errno::EINVAL)?;
    // SAFETY: the pointer and length describe `sll`, which outlives the call.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    Errno::result(rc).map(drop)
}

/// `fcntl(fd, F_SETFD, FD_CLOEXEC)`: marks a descriptor close-on-exec; one syscall. For
/// descriptors a dependency opened without SOCK_CLOEXEC and does not expose (the `nfq` crate's
/// netlink socket), so that the programs the lab starts do not inherit them.
pub fn set_cloexec(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: F_SETFD takes an int and touches no memory; a bad fd only yields EBADF.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    Errno::result(rc).map(drop)
}

/// `malloc_trim(0)`: hands the heap's free pages back to the kernel (`madvise(MADV_DONTNEED)`
/// on whole free pages, `brk` at its top). A C library call, not one syscall: it makes as many
/// as the heap's free runs need. True if any memory was released.
#[cfg(target_env = "gnu")]
pub fn malloc_trim() -> bool {
    // SAFETY: malloc_trim takes no pointers; it only walks the allocator's own free lists,
    // under the allocator's lock.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Only glibc has `malloc_trim`: elsewhere nothing is released.
#[cfg(not(target_env = "gnu"))]
pub fn malloc_trim() -> bool {
    false
}

/// Sets `buf` to zeros lazily: its whole pages go back to the kernel
/// (`madvise(MADV_DONTNEED)`, one syscall) and the bytes around them are written. Until it is
/// written again, such a page takes no memory and no page-table entry, so a fork does not copy
/// it. For heap memory (private and anonymous, where a page given back reads as zeros). False
/// if madvise failed; the bytes are then written instead.
pub fn zero_lazily(buf: &mut [u8]) -> bool {
    // SAFETY: sysconf takes no pointers.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(0);
    if !page.is_power_of_two() {
        buf.fill(0);
        return false;
    }
    let offset = buf.as_ptr().align_offset(page).min(buf.len());
    let whole = (buf.len() - offset) / page * page;
    let (head, rest) = buf.split_at_mut(offset);
    let (pages, tail) = rest.split_at_mut(whole);
    head.fill(0);
    tail.fill(0);
    if whole == 0 {
        return true;
    }
    // SAFETY: `pages` is whole pages that this function borrows mutably, so no other reference
    // sees them change; and any byte is a valid u8, whatever madvise leaves there.
    let rc = unsafe { libc::madvise(pages.as_mut_ptr().cast(), whole, libc::MADV_DONTNEED) };
    if rc != 0 {
        pages.fill(0);
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_lazily_zeroes_every_byte() {
        for len in [0, 1, 4095, 4096, 3 * 4096 + 17, 64 * 1024] {
            let mut buf = vec![0xabu8; len];
            assert!(zero_lazily(&mut buf), "len {len}");
            assert!(buf.iter().all(|&b| b == 0), "len {len}");
            // Given-back pages can be written again.
            buf.fill(7);
            assert!(buf.iter().all(|&b| b == 7), "len {len}");
        }
    }
}

/// What `PTRACE_GET_SYSCALL_INFO` says about a tracee's stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyscallStop {
    /// A seccomp stop (`SECCOMP_RET_TRACE`): the call is about to run.
    Entry {
        /// `AUDIT_ARCH_*` of the call (x86_64, or i386 for `int 0x80`).
        arch: u32,
        /// The syscall number.
        nr: u64,
        /// The six argument registers.
        args: [u64; 6],
    },
    /// A syscall-exit stop: the call returned.
    Exit {
        /// The return value (negative errno on failure).
        rval: i64,
        /// Whether the kernel reported a failure.
        is_error: bool,
    },
    /// Any other stop.
    Other,
}

/// `ptrace(PTRACE_GET_SYSCALL_INFO, pid, ...)` (Linux 5.3+): the call at this stop, in one
/// struct; nix returns the C union, read here.
pub fn syscall_stop(pid: nix::unistd::Pid) -> Result<SyscallStop, Errno> {
    let info = nix::sys::ptrace::syscall_info(pid)?;
    Ok(match info.op {
        // SAFETY: op says which member of the union the kernel filled in.
        libc::PTRACE_SYSCALL_INFO_SECCOMP | libc::PTRACE_SYSCALL_INFO_ENTRY => unsafe {
            let (nr, args) = if info.op == libc::PTRACE_SYSCALL_INFO_SECCOMP {
                (info.u.seccomp.nr, info.u.seccomp.args)
            } else {
                (info.u.entry.nr, info.u.entry.args)
            };
            SyscallStop::Entry {
                arch: info.arch,
                nr,
                args,
            }
        },
        libc::PTRACE_SYSCALL_INFO_EXIT => {
            // SAFETY: op says the kernel filled in the exit member.
            let exit = unsafe { info.u.exit };
            SyscallStop::Exit {
                rval: exit.sval,
                is_error: exit.is_error != 0,
            }
        }
        _ => SyscallStop::Other,
    })
}

/// Forks a child that stops itself (`SIGSTOP`) so the tracer can attach to it (`PTRACE_SEIZE`,
/// then `SIGCONT`, as strace starts a program), installs `filter` (`prctl(PR_SET_NO_NEW_PRIVS)`, then
/// `seccomp(SECCOMP_SET_MODE_FILTER)`) and execs `path` with `argv`. Several syscalls, in the
/// child, from memory prepared before the fork.
///
/// Returns the child's pid and the read end of a close-on-exec pipe: it yields the child's
/// errno (4 bytes) when a step failed before exec, and end of file once exec succeeded. The
/// child then exits with 127.
pub fn spawn_traced(
    path: &std::ffi::CStr,
    argv: &[std::ffi::CString],
    filter: &[libc::sock_filter],
) -> Result<(nix::unistd::Pid, OwnedFd), Errno> {
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let prog = libc::sock_fprog {
        len: filter.len() as libc::c_ushort,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: the child only makes raw syscalls on memory prepared above (no allocation, no
    // locks) and ends in execv or _exit, so a lock held by another thread cannot hang it.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child } => {
            drop(wr);
            Ok((child, rd))
        }
        ForkResult::Child => {
            // SAFETY: raw syscalls with valid arguments: `prog` and `ptrs` (null-terminated)
            // outlive them; on failure the errno goes down the pipe and the child exits.
            unsafe {
                let ok = libc::raise(libc::SIGSTOP) == 0
                    && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
                    && libc::syscall(
                        libc::SYS_seccomp,
                        libc::SECCOMP_SET_MODE_FILTER,
                        0,
                        &raw const prog,
                    ) == 0;
                if ok {
                    libc::execv(path.as_ptr(), ptrs.as_ptr());
                }
                let errno = *libc::__errno_location();
                libc::write(wr.as_raw_fd(), (&raw const errno).cast(), 4);
                libc::_exit(127)
            }
        }
    }
}

/// `pidfd_open(pid, 0)`: a descriptor that refers to process `pid` (nix has no pidfd calls).
pub fn pidfd_open(pid: nix::unistd::Pid) -> Result<OwnedFd, Errno> {
    // SAFETY: the syscall takes two integers and returns a new descriptor or -1.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    Errno::result(rc)?;
    // SAFETY: pidfd_open succeeded, so `rc` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

/// `pidfd_getfd(pidfd, fd, 0)`: a duplicate of another process's descriptor `fd` (needs
/// ptrace access to it, which a tracer has).
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, fd: RawFd) -> Result<OwnedFd, Errno> {
    // SAFETY: the syscall takes three integers and returns a new descriptor or -1.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    Errno::result(rc)?;
    // SAFETY: pidfd_getfd succeeded, so `rc` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

/// `ptrace(PTRACE_LISTEN)`: lets tracee `pid`, seized and in a group-stop, stay stopped as a
/// job-control stop until SIGCONT, still traced (nix has no wrapper).
pub fn ptrace_listen(pid: nix::unistd::Pid) -> Result<(), Errno> {
    // SAFETY: the request takes no address or data; the kernel reads none.
    let rc = unsafe { libc::ptrace(libc::PTRACE_LISTEN, pid.as_raw(), 0, 0) };
    Errno::result(rc).map(drop)
}

/// `ptrace(PTRACE_GETSIGMASK)`: the signals stopped tracee `pid` blocks (nix has no wrapper).
pub fn ptrace_getsigmask(pid: nix::unistd::Pid) -> Result<u64, Errno> {
    let mut mask = 0u64;
    // SAFETY: the kernel writes 8 bytes (the size passed) into `mask`, which outlives the call.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_GETSIGMASK,
            pid.as_raw(),
            size_of::<u64>(),
            &raw mut mask,
        )
    };
    Errno::result(rc).map(|_| mask)
}

/// `ptrace(PTRACE_SETSIGMASK)`: sets the signals stopped tracee `pid` blocks (the kernel
/// never blocks SIGKILL or SIGSTOP).
pub fn ptrace_setsigmask(pid: nix::unistd::Pid, mask: u64) -> Result<(), Errno> {
    // SAFETY: the kernel reads 8 bytes (the size passed) from `mask`, which outlives the call.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_SETSIGMASK,
            pid.as_raw(),
            size_of::<u64>(),
            &raw const mask,
        )
    };
    Errno::result(rc).map(drop)
}
