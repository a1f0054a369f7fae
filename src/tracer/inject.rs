//! A seccomp filter added to a running tracee from outside: at the exit stop of the call that
//! gave it a socket, the tracee is made to run one more call, `seccomp()`, and then put back
//! as it was.
//!
//! Read first: seccomp(2) (`SECCOMP_SET_MODE_FILTER`, `SECCOMP_FILTER_FLAG_TSYNC`), ptrace(2)
//! (`PTRACE_GETREGS`, `PTRACE_SETSIGMASK`), the x86_64 `syscall` instruction (2 bytes, `0f 05`).

use std::io::IoSlice;

use libc::sock_filter;
use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::uio::{RemoteIoVec, process_vm_writev};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::sys::ffi;

/// The System V x86_64 ABI's red zone: 128 bytes below the stack pointer a function may use
/// without moving it.
const RED_ZONE: u64 = 128;

/// How an injection ended.
#[derive(Debug)]
pub enum Outcome {
    /// `seccomp()` ran and returned this (negative errno on failure; with TSYNC, a positive
    /// thread id that could not take the filter); the tracee is back at its exit stop as it
    /// was. A stop signal that came meanwhile is to be passed on when it resumes.
    Ran(i64, Option<Signal>),
    /// Nothing was changed (the registers or memory could not be read or written).
    Refused(Errno),
    /// The tracee left its stop otherwise (it was killed, or another thread exec'd): the
    /// status is the tracer's to handle, and the tracee is not to be resumed from here.
    Lost(WaitStatus),
}

/// Runs `seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)` in thread `pid`, stopped at the exit
/// stop of an x86_64 call made with the `syscall` instruction, and puts back its registers,
/// its blocked signals and the stack bytes used (below the red zone).
pub fn add_filter(pid: Pid, prog: &[sock_filter], flags: u64) -> Outcome {
    let Ok(len) = u16::try_from(prog.len()) else {
        return Outcome::Refused(Errno::EINVAL);
    };
    let regs = match ptrace::getregs(pid) {
        Ok(r) => r,
        Err(e) => return Outcome::Refused(e),
    };
    let at = regs.rip.wrapping_sub(2);
    if read(pid, at, 2).as_deref() != Some(&[0x0f, 0x05]) {
        return Outcome::Refused(Errno::ENOEXEC);
    }
    // struct sock_fprog { unsigned short len; struct sock_filter *filter; }, then the filter.
    let size = 16 + 8 * prog.len() as u64;
    let addr = regs.rsp.wrapping_sub(RED_ZONE + size) & !15;
    let mut bytes = Vec::with_capacity(size as usize);
    bytes.extend_from_slice(&u64::from(len).to_ne_bytes());
    bytes.extend_from_slice(&(addr + 16).to_ne_bytes());
    for f in prog {
        bytes.extend_from_slice(&f.code.to_ne_bytes());
        bytes.extend_from_slice(&[f.jt, f.jf]);
        bytes.extend_from_slice(&f.k.to_ne_bytes());
    }
    let Some(saved) = read(pid, addr, bytes.len()) else {
        return Outcome::Refused(Errno::EFAULT);
    };
    let mask = match ffi::ptrace_getsigmask(pid) {
        Ok(m) => m,
        Err(e) => return Outcome::Refused(e),
    };
    if let Err(e) = write(pid, addr, &bytes) {
        return Outcome::Refused(e);
    }
    let mut call = regs;
    call.rip = at;
    call.rax = libc::SYS_seccomp as u64;
    call.orig_rax = u64::MAX;
    call.rdi = u64::from(libc::SECCOMP_SET_MODE_FILTER);
    call.rsi = flags;
    call.rdx = addr;
    let put_back = || {
        let _ = write(pid, addr, &saved);
        let _ = ffi::ptrace_setsigmask(pid, mask);
        ptrace::setregs(pid, regs)
    };
    // Every signal blocked while the call runs (SIGKILL and SIGSTOP cannot be): none is
    // delivered on the injected registers.
    if let Err(e) = ffi::ptrace_setsigmask(pid, u64::MAX).and_then(|()| ptrace::setregs(pid, call))
    {
        let _ = put_back();
        return Outcome::Refused(e);
    }
    let mut stop_sig = None;
    // Two syscall stops: the entry of seccomp(), then its exit.
    let mut entered = false;
    loop {
        if let Err(e) = ptrace::syscall(pid, None) {
            // Gone between the stops: its exit status is still to be waited for.
            return match waitpid(pid, Some(WaitPidFlag::__WALL)) {
                Ok(s) => Outcome::Lost(s),
                Err(_) => Outcome::Refused(e),
            };
        }
        let status = loop {
            match waitpid(pid, Some(WaitPidFlag::__WALL)) {
                Err(Errno::EINTR) => {}
                Ok(s) => break Ok(s),
                Err(e) => break Err(e),
            }
        };
        match status {
            Ok(WaitStatus::PtraceSyscall(_)) if !entered => entered = true,
            Ok(WaitStatus::PtraceSyscall(_)) => break,
            // SIGSTOP (it cannot be blocked): held back, passed on at the end.
            Ok(WaitStatus::Stopped(_, sig)) => stop_sig = Some(sig),
            // A group stop (another thread's SIGSTOP) or the trap that ends one: the call
            // runs first, and the stop is made again at the end (the SIGSTOP passed on).
            Ok(WaitStatus::PtraceEvent(_, sig, libc::PTRACE_EVENT_STOP)) => {
                if super::is_stop_signal(sig) {
                    stop_sig = Some(Signal::SIGSTOP);
                }
            }
            Ok(s) => return Outcome::Lost(s),
            Err(e) => return Outcome::Refused(e),
        }
    }
    let rval = match ffi::syscall_stop(pid) {
        Ok(ffi::SyscallStop::Exit { rval, .. }) => rval,
        _ => -(Errno::EIO as i64),
    };
    match put_back() {
        Ok(()) => Outcome::Ran(rval, stop_sig),
        Err(e) => Outcome::Refused(e),
    }
}

/// `len` bytes of the tracee's memory at `addr`, all of them or none.
fn read(pid: Pid, addr: u64, len: usize) -> Option<Vec<u8>> {
    super::Stopped::at(pid, None)
        .read(addr, len)
        .filter(|b| b.len() == len)
}

fn write(pid: Pid, addr: u64, bytes: &[u8]) -> Result<(), Errno> {
    let remote = [RemoteIoVec {
        base: addr as usize,
        len: bytes.len(),
    }];
    match process_vm_writev(pid, &[IoSlice::new(bytes)], &remote)? {
        n if n == bytes.len() => Ok(()),
        _ => Err(Errno::EFAULT),
    }
}

/// The number of seccomp filters task `tid` runs under (`Seccomp_filters:` in
/// `/proc/TID/status`, Linux 5.9+).
pub fn filter_count(tid: i32) -> Option<usize> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp_filters:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Whether descriptor `fd` of process `pid` is a socket (`/proc/PID/fd/FD`).
pub fn is_socket(pid: i32, fd: i32) -> bool {
    fd >= 0
        && std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            .is_ok_and(|l| l.as_os_str().as_encoded_bytes().starts_with(b"socket:"))
}

/// The socket descriptors process `pid` holds (`/proc/PID/fd`).
pub fn sockets_of(pid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&fd| is_socket(pid, fd))
        .collect()
}

/// This process's sockets that a child keeps across exec (no close-on-exec flag, per
/// `/proc/self/fdinfo`).
pub fn inherited_sockets() -> Vec<u32> {
    sockets_of(std::process::id() as i32)
        .into_iter()
        .filter(|fd| {
            std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).is_ok_and(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("flags:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
                    .is_some_and(|f| f & libc::O_CLOEXEC as u32 == 0)
            })
        })
        .map(|fd| fd as u32)
        .collect()
}

/// The descriptors call `nr` (recvmsg or recvmmsg) made with `args` received over SCM_RIGHTS,
/// once it returned `ret`; none for any other call.
pub fn received(
    nr: i64,
    args: &[u64; 6],
    ret: i64,
    mem: &impl Fn(u64, usize) -> Option<Vec<u8>>,
) -> Vec<i32> {
    match nr {
        _ if ret < 0 => Vec::new(),
        libc::SYS_recvmsg => received_fds(mem, args[1]),
        libc::SYS_recvmmsg => received_fds_each(mem, args[1], ret),
        _ => Vec::new(),
    }
}

/// The descriptors recvmmsg's `count` messages brought (SCM_RIGHTS), from the `struct
/// mmsghdr` array at `vec` (each begins with its `struct msghdr`).
pub fn received_fds_each(
    mem: &impl Fn(u64, usize) -> Option<Vec<u8>>,
    vec: u64,
    count: i64,
) -> Vec<i32> {
    let size = std::mem::size_of::<libc::mmsghdr>() as u64;
    // The kernel caps a vector at UIO_MAXIOV (1024) messages.
    (0..count.clamp(0, 1024) as u64)
        .flat_map(|i| received_fds(mem, vec.wrapping_add(i * size)))
        .collect()
}

/// The descriptors an SCM_RIGHTS message brought, from a `struct msghdr` at `msg` after
/// recvmsg returned (its `msg_controllen` is what the kernel wrote).
pub fn received_fds(mem: &impl Fn(u64, usize) -> Option<Vec<u8>>, msg: u64) -> Vec<i32> {
    let Some(h) = mem(msg, 56) else {
        return Vec::new();
    };
    let word = |o: usize| {
        h.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_ne_bytes)
    };
    let (control, len) = (word(32), word(40).min(4096) as usize);
    if control == 0 || len < 16 {
        return Vec::new();
    }
    let Some(c) = mem(control, len) else {
        return Vec::new();
    };
    let mut fds = Vec::new();
    let mut at = 0;
    // struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; } then the data,
    // each header 8-byte aligned.
    while at + 16 <= c.len() {
        let clen = u64::from_ne_bytes(c[at..at + 8].try_into().unwrap_or([0; 8])) as usize;
        let level = i32::from_ne_bytes(c[at + 8..at + 12].try_into().unwrap_or([0; 4]));
        let kind = i32::from_ne_bytes(c[at + 12..at + 16].try_into().unwrap_or([0; 4]));
        if clen < 16 || at + clen > c.len() {
            break;
        }
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            fds.extend(
                c[at + 16..at + clen]
                    .chunks_exact(4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        at += (clen + 7) & !7;
    }
    fds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scm_rights_descriptors_are_read_from_the_control_data() {
        let mut control = Vec::new();
        // A credentials message first, then two descriptors.
        control.extend_from_slice(&28u64.to_ne_bytes());
        control.extend_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
        control.extend_from_slice(&libc::SCM_CREDENTIALS.to_ne_bytes());
        control.extend_from_slice(&[0; 12 + 4]);
        control.extend_from_slice(&24u64.to_ne_bytes());
        control.extend_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
        control.extend_from_slice(&libc::SCM_RIGHTS.to_ne_bytes());
        control.extend_from_slice(&7i32.to_ne_bytes());
        control.extend_from_slice(&9i32.to_ne_bytes());
        let mut msg = [0u8; 56];
        msg[32..40].copy_from_slice(&0x2000u64.to_ne_bytes());
        msg[40..48].copy_from_slice(&(control.len() as u64).to_ne_bytes());
        let mem = |addr: u64, len: usize| match addr {
            0x1000 => Some(msg[..len].to_vec()),
            0x2000 => Some(control[..len].to_vec()),
            _ => None,
        };
        assert_eq!(received_fds(&mem, 0x1000), vec![7, 9]);
        assert!(received_fds(&mem, 0x3000).is_empty());
        // A header cut short by the end of a mapping reads as no message, no panic.
        let short = |addr: u64, len: usize| (addr == 0x1000).then(|| msg[..len.min(20)].to_vec());
        assert!(received_fds(&short, 0x1000).is_empty());
        // recvmmsg: the second message of the vector (a struct mmsghdr is 64 bytes).
        let size = std::mem::size_of::<libc::mmsghdr>() as u64;
        assert_eq!(size, 64);
        let vec_mem = |addr: u64, len: usize| match addr {
            0x1000 => Some(vec![0; len]),
            a if a == 0x1000 + size => Some(msg[..len].to_vec()),
            0x2000 => Some(control[..len].to_vec()),
            _ => None,
        };
        assert_eq!(received_fds_each(&vec_mem, 0x1000, 2), vec![7, 9]);
        assert!(received_fds_each(&vec_mem, 0x1000, 1).is_empty());
        assert!(received_fds_each(&vec_mem, 0x1000, -1).is_empty());
    }
}
