//! Processes: fork (the kernel's clone), waitpid (wait4), kill.

use nix::sys::wait::WaitPidFlag;

use super::{ForkResult, Pid, Result, Signal, WaitStatus, ffi, names};
use crate::event::record;

/// `fork()`, which the kernel sees as `clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|
/// CLONE_CHILD_SETTID|SIGCHLD, ...)` (glibc's fork makes that syscall): a second process with
/// a copy of every descriptor, so each socket now has two references.
///
/// Returns `Parent { child }` in the parent and `Child` in the child. The event is recorded in
/// the parent, with the child's pid as the result, as strace shows it. In the child this
/// wrapper also resets the lab's cached pid and tid ([`after_fork_in_child`]), so the child's
/// events carry its own pid. Call only while the process has a single thread (see
/// [`ffi::fork`]).
#[doc = man!("fork")]
pub fn fork() -> Result<ForkResult> {
    let res = logged!("clone", None, ffi::fork(), |_| args! {
        "child_stack" => "NULL",
        "flags" => "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD",
    });
    if let Ok(ForkResult::Child) = res {
        after_fork_in_child();
    }
    res
}

/// `waitpid(pid, &status, options)`, which the kernel sees as `wait4(pid, &status, options,
/// NULL)`: collects a child that has ended, so it stops being a zombie. `pid` `None` means any
/// child (-1). With `nohang` (WNOHANG) it returns at once: [`WaitStatus::StillAlive`] when
/// children exist but none has ended.
#[doc = man!("waitpid")]
pub fn waitpid(pid: Option<Pid>, nohang: bool) -> Result<WaitStatus> {
    logged!(
        "wait4",
        None,
        nix::sys::wait::waitpid(pid, nohang.then_some(WaitPidFlag::WNOHANG)),
        |res| args! {
            "pid" => pid.map_or(-1, Pid::as_raw),
            "status" => res.map(|st| names::wait_status(&st)).unwrap_or_default(),
            "options" => if nohang { "WNOHANG" } else { "0" },
            "rusage" => "NULL",
        }
    )
}

/// `kill(pid, sig)`: sends a signal to a process (here: a server asks its children to finish).
#[doc = man!("kill")]
pub fn kill(pid: Pid, sig: Signal) -> Result<()> {
    logged!(
        "kill",
        None,
        nix::sys::signal::kill(pid, sig),
        |_| args! {"pid" => pid.as_raw(), "sig" => sig.as_str()}
    )
}

/// Resets the lab's per-process caches in a forked child. Call right after `fork()`.
pub fn after_fork_in_child() {
    record::after_fork();
}
