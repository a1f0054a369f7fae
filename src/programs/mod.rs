//! Programs built on the logged wrappers: the servers, the client, the demo that runs both,
//! step mode, and the programs' own output.

pub mod client;
pub mod demo;
pub mod output;
pub mod servers;
pub mod step;

use std::path::PathBuf;

/// The path to start another socklab process from: the running executable's own path when
/// this user may run it, else `/proc/PID/exe`, which reaches the same file without walking
/// its directories (a clone in a home of mode 0700, entered by a program started with
/// capabilities, such as `setpriv` as root). PID is this process, which outlives its
/// children; a wrapper such as strace may exec the path too, so it is not `/proc/self/exe`.
pub fn self_exe() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    if nix::unistd::access(&exe, nix::unistd::AccessFlags::X_OK).is_ok() {
        return Ok(exe);
    }
    Ok(PathBuf::from(format!("/proc/{}/exe", std::process::id())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn self_exe_is_runnable() {
        let exe = super::self_exe().unwrap();
        assert!(nix::unistd::access(&exe, nix::unistd::AccessFlags::X_OK).is_ok());
    }
}
