//! A seccomp filter added to a running tracee: the tracee is made to call seccomp(2) itself,
//! at one of its syscall-exit stops, and is then put back exactly as it was. The program
//! starts with a filter that lets reads and writes run without a stop; once one of its
//! sockets gets a descriptor, a filter that stops them on that descriptor's block is added.
//!
//! Read first: seccomp(2) (`SECCOMP_SET_MODE_FILTER`, `SECCOMP_FILTER_FLAG_TSYNC`),
//! ptrace(2) (`PTRACE_GETREGS`, syscall-stops).

use libc::sock_filter;
use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::{self, Signal};
use nix::sys::uio::{RemoteIoVec, process_vm_readv, process_vm_writev};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::seccomp;

/// The System V ABI's red zone below the stack pointer, which the tracee may be using.
const RED_ZONE: u64 = 128;

/// Why a filter could not be added.
#[derive(Debug)]
pub enum InjectError {
    /// The task ended meanwhile (its end, which the caller must report).
    Ended(WaitStatus),
    /// The filter is not there; the task goes on as it was.
    Failed(String),
}

/// Makes the task `pid`, stopped at a syscall-exit stop, install `prog` for its whole thread
/// group (TSYNC), then restores its registers and the stack bytes used. Signals that came
/// meanwhile are sent again to the process.
pub fn add_filter(pid: Pid, tgid: Pid, prog: &[sock_filter]) -> Result<(), InjectError> {
    let failed = |what: &str, e: Errno| InjectError::Failed(format!("{what}: {e}"));
    let regs = ptrace::getregs(pid).map_err(|e| failed("PTRACE_GETREGS", e))?;
    // At a syscall-exit stop rip is just past the 2-byte `syscall` instruction.
    let at_syscall = read(pid, regs.rip.wrapping_sub(2), 2).is_ok_and(|b| b == [0x0f, 0x05]);
    if !at_syscall {
        return Err(InjectError::Failed(
            "not stopped after a syscall instruction".into(),
        ));
    }
    let len = 16 + 8 * prog.len() as u64;
    let at = regs.rsp.wrapping_sub(RED_ZONE + len) & !15;
    let saved = read(pid, at, len as usize).map_err(|e| failed("process_vm_readv", e))?;
    write(pid, at, &seccomp::fprog_bytes(prog, at)).map_err(|e| failed("process_vm_writev", e))?;
    let mut call = regs;
    call.rax = libc::SYS_seccomp as u64;
    call.rdi = u64::from(libc::SECCOMP_SET_MODE_FILTER);
    call.rsi = libc::SECCOMP_FILTER_FLAG_TSYNC;
    call.rdx = at;
    call.rip = regs.rip - 2;
    let mut signals = Vec::new();
    let result = ptrace::setregs(pid, call)
        .map_err(|e| failed("PTRACE_SETREGS", e))
        .and_then(|()| run_call(pid, &mut signals));
    if !matches!(result, Err(InjectError::Ended(_))) {
        // Back as it was: the registers of its own call's exit, the stack bytes.
        let _ = ptrace::setregs(pid, regs);
        let _ = write(pid, at, &saved);
    }
    for sig in signals {
        let _ = signal::kill(tgid, sig);
    }
    match result? {
        0 => Ok(()),
        r if r < 0 => Err(failed("seccomp", Errno::from_raw(-r as i32))),
        // TSYNC: a thread with a filter of its own could not be given this one.
        r => Err(InjectError::Failed(format!(
            "seccomp: thread {r} has another filter"
        ))),
    }
}

/// Runs the prepared call through its entry and exit stops; its return value.
fn run_call(pid: Pid, signals: &mut Vec<Signal>) -> Result<i64, InjectError> {
    for _ in 0..2 {
        ptrace::syscall(pid, None).map_err(|e| InjectError::Failed(format!("ptrace: {e}")))?;
        loop {
            match waitpid(pid, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::PtraceSyscall(_)) => break,
                Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                    return Err(InjectError::Ended(s));
                }
                // A signal on its way in: held back, sent again afterwards.
                Ok(WaitStatus::Stopped(_, sig)) => {
                    signals.push(sig);
                    let _ = ptrace::syscall(pid, None);
                }
                Ok(_) => {
                    let _ = ptrace::syscall(pid, None);
                }
                Err(Errno::EINTR) => {}
                Err(e) => return Err(InjectError::Failed(format!("waitpid: {e}"))),
            }
        }
    }
    let regs = ptrace::getregs(pid).map_err(|e| InjectError::Failed(format!("regs: {e}")))?;
    Ok(regs.rax as i64)
}

fn read(pid: Pid, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; len];
    let remote = [RemoteIoVec {
        base: addr as usize,
        len,
    }];
    let n = process_vm_readv(pid, &mut [std::io::IoSliceMut::new(&mut buf)], &remote)?;
    if n != len {
        return Err(Errno::EFAULT);
    }
    Ok(buf)
}

fn write(pid: Pid, addr: u64, bytes: &[u8]) -> Result<(), Errno> {
    let remote = [RemoteIoVec {
        base: addr as usize,
        len: bytes.len(),
    }];
    let n = process_vm_writev(pid, &[std::io::IoSlice::new(bytes)], &remote)?;
    if n != bytes.len() {
        return Err(Errno::EFAULT);
    }
    Ok(())
}
