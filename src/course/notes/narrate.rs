//! The narrator: which syscall events get a plain-language note, and with what values.

use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;

use crate::event::record::{FdInfo, Transport};
use crate::event::tcp_state::TcpState;
use crate::event::{Note, Syscall};
use crate::observe::sysctl;

use super::{has, note};

fn arg(sc: &Syscall, key: &str) -> String {
    match sc.args.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

/// True the first time a process asks with `said`: notes that would repeat on every call of a
/// busy loop (every write) are said once.
fn first_time(said: &AtomicBool) -> bool {
    !said.load(Ordering::Relaxed) && !said.swap(true, Ordering::Relaxed)
}

/// Whether this process has said `write.copied`.
static WRITE_COPIED: AtomicBool = AtomicBool::new(false);

/// The notes a learner needs after this call. `before` and `after` are what the lab knew of
/// the descriptor before and after it.
pub fn narrate_syscall(sc: &Syscall, before: Option<&FdInfo>, after: Option<&FdInfo>) -> Vec<Note> {
    let fd = || sc.fd.map(|f| f.to_string()).unwrap_or_default();
    let info = after.or(before);
    let tcp = info.is_some_and(|i| i.transport == Transport::Tcp);
    if let Some(errno) = &sc.errno {
        // Some errnos mean something else on UDP (ECONNREFUSED: an ICMP error, not an RST).
        let udp_key = format!("errno.{errno}.udp");
        let key = if info.is_some_and(|i| i.transport == Transport::Udp) && has(&udp_key) {
            udp_key
        } else {
            format!("errno.{errno}")
        };
        return if has(&key) {
            vec![note(&key, &[])]
        } else {
            Vec::new()
        };
    }
    let mut out = Vec::new();
    match sc.name.as_ref() {
        "socket" => match info.map(|i| i.transport) {
            Some(Transport::Tcp) => out.push(note("socket.tcp", &[("fd", fd())])),
            Some(Transport::Udp) => out.push(note("socket.udp", &[("fd", fd())])),
            Some(Transport::Other) | None => {}
        },
        "bind" => {
            let addr = arg(sc, "addr");
            let port0 = addr.ends_with(":0");
            out.push(note("bind.ok", &[("fd", fd()), ("addr", addr)]));
            if port0 {
                out.push(note("bind.port0", &[]));
            }
        }
        "listen" => out.push(note(
            "listen.ok",
            &[("fd", fd()), ("backlog", arg(sc, "backlog"))],
        )),
        "accept4" => out.push(note(
            "accept4.new_fd",
            &[
                ("fd", fd()),
                ("lfd", arg(sc, "fd")),
                ("peer", arg(sc, "addr")),
            ],
        )),
        "connect" if tcp => out.push(note("connect.done", &[("addr", arg(sc, "addr"))])),
        "connect" => out.push(note("connect.udp", &[("addr", arg(sc, "addr"))])),
        "getsockname" => {
            if let Some(i) = info {
                let local = i.local;
                if i.listening {
                    out.push(note("getsockname.listen", &[("addr", arg(sc, "addr"))]));
                } else if i.connected && !i.bound {
                    let (lo, hi) = sysctl::local_port_range();
                    out.push(note(
                        "getsockname.ephemeral",
                        &[
                            (
                                "port",
                                local.map(|a| a.port().to_string()).unwrap_or_default(),
                            ),
                            ("range", format!("{lo}-{hi}")),
                        ],
                    ));
                }
            }
        }
        "read" | "recvfrom" if tcp && sc.ret == 0 => out.push(note("read.eof", &[])),
        "write" | "sendto" if tcp && first_time(&WRITE_COPIED) => {
            out.push(note("write.copied", &[("n", sc.ret.to_string())]))
        }
        "shutdown" if arg(sc, "how") != "SHUT_RD" => out.push(note("shutdown.wr", &[])),
        "close" if tcp => {
            if before.is_some_and(|i| i.listening) {
                out.push(note("close.listener", &[]));
            } else if before.is_some_and(|i| i.remote.is_some()) {
                let key = match before.and_then(|i| i.last_state) {
                    Some(TcpState::CloseWait | TcpState::LastAck) => "close.passive",
                    Some(TcpState::Close | TcpState::TimeWait) => "close.finished",
                    Some(TcpState::FinWait1 | TcpState::FinWait2) => "close.after_shutdown",
                    _ => "close.conn",
                };
                out.push(note(key, &[]));
            }
        }
        "restart_syscall" => match sc.args.get("resumes") {
            Some(_) => out.push(note(
                "restart_syscall.resumed",
                &[("call", arg(sc, "resumes"))],
            )),
            None => out.push(note("restart_syscall.unseen", &[])),
        },
        "getsockopt" if arg(sc, "optname") == "SO_ERROR" => {
            let v = arg(sc, "optval");
            if v == "0" {
                out.push(note("so_error.ok", &[]));
            } else {
                out.push(note("so_error.err", &[("errno", v)]));
            }
        }
        _ => {}
    }
    out
}

/// The learner's explanation of an errno, if the catalogue has one.
pub fn explain_errno(e: Errno) -> Option<String> {
    let key = format!("errno.{e:?}");
    has(&key).then(|| super::text(&key, &[]))
}
