//! A sock_diag snapshot as a table, like `ss -tan`, with what each row means.

use crate::course::notes;
use crate::event::tcp_state::TcpState;
use crate::observe::sock_diag::SockEntry;

/// One line of plain language for a socket in `state`, in the language of the run.
pub fn meaning(e: &SockEntry) -> String {
    let (recv_q, send_q) = (e.recv_q.to_string(), e.send_q.to_string());
    let key = match e.state {
        TcpState::Listen => "ss.LISTEN",
        TcpState::SynRecv => "ss.SYN_RECV",
        TcpState::SynSent => "ss.SYN_SENT",
        // A child socket that no accept() has taken yet has no descriptor, so no inode.
        TcpState::Established if e.inode == 0 => "ss.ESTABLISHED.queued",
        TcpState::Established => "ss.ESTABLISHED",
        TcpState::FinWait1 => "ss.FIN_WAIT1",
        TcpState::FinWait2 => "ss.FIN_WAIT2",
        TcpState::TimeWait => "ss.TIME_WAIT",
        TcpState::CloseWait => "ss.CLOSE_WAIT",
        TcpState::LastAck => "ss.LAST_ACK",
        TcpState::Closing => "ss.CLOSING",
        TcpState::Close => "ss.CLOSE",
        TcpState::NewSynRecv => "ss.NEW_SYN_RECV",
        TcpState::BoundInactive => "ss.BOUND_INACTIVE",
    };
    notes::text(key, &[("recv_q", recv_q), ("send_q", send_q)])
}

/// The snapshot as an aligned table with a meaning column.
pub fn table(entries: &[SockEntry]) -> String {
    let mut out = format!(
        "{:<12} {:>6} {:>6}  {:<24} {:<24} {}\n",
        "State",
        "Recv-Q",
        "Send-Q",
        "Local",
        "Remote",
        notes::text("ss.meaning", &[])
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

/// The snapshot as `socklab ss` prints it: JSON lines with `json`, else [`table`].
pub fn render(entries: &[SockEntry], json: bool) -> String {
    if !json {
        return table(entries);
    }
    let mut text = String::new();
    for e in entries {
        text.push_str(&serde_json::to_string(e).expect("entries serialize"));
        text.push('\n');
    }
    text
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
