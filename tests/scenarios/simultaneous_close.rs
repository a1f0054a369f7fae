use socklab::event::Lane::{Client, Server};
use socklab::event::tcp_state::TcpState::{self, *};
use socklab::event::{Body, Lane};

#[test]
fn simultaneous_close_passes_closing_and_leaves_both_in_time_wait() {
    let r = super::run("simultaneous-close", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let opt = |lane, name: &str| {
        r.calls(lane, "setsockopt")
            .iter()
            .any(|s| s.args["optname"] == name && s.ret == 0)
    };
    assert!(opt(Server, "SO_RCVBUF") && opt(Client, "SO_SNDBUF"));

    // The client filled its send buffer: the last write said EAGAIN.
    let writes = r.calls(Client, "write");
    assert_eq!(
        writes.last().and_then(|w| w.errno.as_deref()),
        Some("EAGAIN")
    );
    let written: i64 = writes.iter().filter(|w| w.ret > 0).map(|w| w.ret).sum();
    assert!(written > 0);

    // Its shutdown left FIN_WAIT1 (FIN queued behind the data); the server's FIN then made it
    // CLOSING (TCP_INFO after the poll that woke for that FIN, and sock_diag).
    let sh = r.calls(Client, "shutdown");
    assert_eq!(sh.len(), 1);
    assert_eq!(sh[0].tcp_state, Some(FinWait1));
    let server_sh = r.calls(Server, "shutdown");
    assert!(matches!(server_sh[0].tcp_state, Some(FinWait1 | FinWait2)));
    let polls = r.calls(Client, "poll");
    assert_eq!(polls.len(), 1);
    assert_eq!((polls[0].ret, polls[0].tcp_state), (1, Some(Closing)));
    let diag = |lane: Lane, st: TcpState| {
        r.events.iter().any(|e| {
            e.lane == lane
                && matches!(&e.body, Body::State(s) if s.source == "sock_diag" && s.to == st)
        })
    };
    assert!(
        diag(Client, Closing),
        "sock_diag lists the client in CLOSING"
    );

    // The server read every byte, then EOF; both ends are left in TIME_WAIT.
    let reads = r.calls(Server, "read");
    let read: i64 = reads.iter().filter(|s| s.ret > 0).map(|s| s.ret).sum();
    assert_eq!(read, written);
    assert_eq!(reads.last().map(|s| s.ret), Some(0));
    assert!(diag(Client, TimeWait) && diag(Server, TimeWait));
    assert!(
        !r.saw(Client, FinWait2),
        "the client never was in FIN_WAIT2"
    );

    if super::root() {
        assert!(r.kernel() && r.packets(), "{}", r.stderr);
        let path = |lane: Lane| -> Vec<TcpState> {
            r.events
                .iter()
                .filter(|e| e.lane == lane)
                .filter_map(|e| match &e.body {
                    Body::State(s) if s.source == "tracepoint" => Some(s.to),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(
            path(Client),
            [SynSent, Established, FinWait1, Closing, Close]
        );
        assert_eq!(
            path(Server),
            [
                Listen,
                SynRecv,
                Established,
                FinWait1,
                FinWait2,
                Close,
                Close
            ]
        );
        // FINs on the wire: the server's first, acknowledging only part of the data; the
        // client's last, right after its last byte; the server acknowledges it.
        let fins: Vec<_> = r
            .events
            .iter()
            .filter_map(|e| match &e.body {
                Body::Packet(p) if p.flags.as_deref().is_some_and(|f| f.contains("FIN")) => Some(p),
                _ => None,
            })
            .collect();
        assert_eq!(fins.len(), 2, "{fins:?}");
        let w = written as u32;
        let (server_fin, client_fin) = (fins[0], fins[1]);
        assert!(server_fin.ack.is_some_and(|a| a < w + 1), "{server_fin:?}");
        assert_eq!(client_fin.seq.map(|s| s + client_fin.len), Some(w + 1));
        let acked = r.events.iter().any(|e| {
            matches!(&e.body, Body::Packet(p)
                if p.src == server_fin.src && p.ack == Some(w + 2))
        });
        assert!(acked, "the server acknowledged the client's FIN");
    } else {
        crate::util::skip("needs root (the tracepoint and packet checks)");
    }
}
