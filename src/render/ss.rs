//! A sock_diag snapshot as a table, like `ss -tan`, with what each row means.

use crate::observe::sock_diag::SockEntry;
use crate::tcp_state::TcpState;

/// One line of plain language for a socket in `state`.
pub fn meaning(e: &SockEntry) -> String {
    match e.state {
        TcpState::Listen => format!(
            "listener: {} connection(s) wait for accept(), backlog {}",
            e.recv_q, e.send_q
        ),
        TcpState::SynRecv => "half-open: SYN received, SYN|ACK sent, waiting for the final ACK (a request socket, no fd yet)".into(),
        TcpState::SynSent => "connect() sent SYN and waits for SYN|ACK".into(),
        TcpState::Established if e.inode == 0 => {
            "established, waiting in a listener's accept queue (no fd until accept)".into()
        }
        TcpState::Established => format!("open; {} byte(s) unread, {} unsent", e.recv_q, e.send_q),
        TcpState::FinWait1 => "closed by us: FIN sent, not yet acknowledged".into(),
        TcpState::FinWait2 => "closed by us: FIN acknowledged, waiting for the peer's FIN".into(),
        TcpState::TimeWait => "active closer's wait (2*MSL) before the address may be reused; no fd, kernel-held".into(),
        TcpState::CloseWait => "the peer closed (FIN received); this side has not closed yet".into(),
        TcpState::LastAck => "closed after the peer: our FIN waits for its ACK".into(),
        TcpState::Closing => "both sides closed at once: FINs crossed".into(),
        TcpState::Close => "closed".into(),
        TcpState::NewSynRecv => "half-open request socket".into(),
        TcpState::BoundInactive => "bound, neither listening nor connected".into(),
    }
}

/// The snapshot as an aligned table with a meaning column.
pub fn table(entries: &[SockEntry]) -> String {
    let mut out = format!(
        "{:<12} {:>6} {:>6}  {:<24} {:<24} {}\n",
        "State", "Recv-Q", "Send-Q", "Local", "Remote", "Meaning"
    );
    for e in entries {
        out.push_str(&format!(
            "{:<12} {:>6} {:>6}  {:<24} {:<24} {}\n",
            e.state.name(),
            e.recv_q,
            e.send_q,
            e.local.to_string(),
            e.remote.to_string(),
            meaning(e)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_row_names_its_queue() {
        let e = SockEntry {
            state: TcpState::Listen,
            local: "127.0.0.1:1060".parse().unwrap(),
            remote: "0.0.0.0:0".parse().unwrap(),
            recv_q: 2,
            send_q: 5,
            inode: 7,
            uid: 0,
            cookie: 1,
        };
        let t = table(&[e]);
        assert!(t.contains("LISTEN"));
        assert!(
            t.contains("2 connection(s) wait for accept(), backlog 5"),
            "{t}"
        );
    }
}
