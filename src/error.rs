//! socklab's error type: what failed, the errno, and what it means for the learner.

use std::fmt;

use nix::errno::Errno;

use crate::course::notes::narrate::explain_errno;

/// Why a socklab command failed.
#[derive(Debug)]
pub enum Error {
    /// A system call failed.
    Sys {
        /// The call (`bind`).
        call: &'static str,
        /// What it was called on (`127.0.0.1:1060`).
        target: String,
        /// What the kernel said.
        errno: Errno,
    },
    /// The user's input cannot work (exit code 2).
    Usage(String),
    /// Anything else (exit code 1).
    Other(String),
    /// A program to run was not found (exit code 127, as a shell says it).
    NotFound(String),
    /// A program to run was found but cannot be run (exit code 126, as a shell says it).
    NotRunnable(String),
}

impl Error {
    /// A failed syscall on `target`.
    pub fn sys(call: &'static str, target: impl fmt::Display, errno: Errno) -> Error {
        Error::Sys {
            call,
            target: target.to_string(),
            errno,
        }
    }

    /// The process exit code for this error: 2 for usage, 127 and 126 for a program not
    /// found or not runnable (as a shell), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::NotFound(_) => 127,
            Error::NotRunnable(_) => 126,
            Error::Sys { .. } | Error::Other(_) => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sys {
                call,
                target,
                errno,
            } => {
                let what = crate::course::notes::text(
                    "error.sys",
                    &[
                        ("call", call.to_string()),
                        ("target", target.clone()),
                        ("errno", format!("{errno:?}")),
                        ("desc", errno.desc().to_string()),
                    ],
                );
                f.write_str(&what)?;
                if let Some(why) = explain_errno(*errno) {
                    let why = why.split_once(": ").map_or(why.as_str(), |(_, rest)| rest);
                    write!(f, ": {why}")?;
                }
                Ok(())
            }
            Error::Usage(msg)
            | Error::Other(msg)
            | Error::NotFound(msg)
            | Error::NotRunnable(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_errno_and_explains_it() {
        let e = Error::sys("bind", "127.0.0.1:1060", Errno::EADDRINUSE);
        let s = e.to_string();
        assert!(
            s.starts_with("bind 127.0.0.1:1060 failed: EADDRINUSE (Address already in use)"),
            "{s}"
        );
        assert!(s.contains("TIME_WAIT"), "{s}");
        assert_eq!(e.exit_code(), 1);
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
    }
}
