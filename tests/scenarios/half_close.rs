use socklab::event::Lane::{Client, Server};
use socklab::event::tcp_state::TcpState::*;

#[test]
fn half_close_reads_eof_yet_still_sends() {
    let r = super::run("half-close", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let sh = r.calls(Client, "shutdown");
    assert_eq!(sh.len(), 1);
    assert_eq!(sh[0].ret, 0);
    assert!(
        matches!(sh[0].tcp_state, Some(FinWait1 | FinWait2)),
        "FIN sent; FIN_WAIT1 until the (delayed) ACK: {:?}",
        sh[0].tcp_state
    );

    let reads: Vec<_> = r
        .calls(Server, "read")
        .iter()
        .map(|s| (s.ret, s.tcp_state))
        .collect();
    assert_eq!(
        reads,
        [(7, Some(CloseWait)), (0, Some(CloseWait))],
        "the request, then EOF"
    );
    let wrote = r.calls(Server, "write");
    assert_eq!(wrote.len(), 1);
    assert_eq!(
        (wrote[0].ret, wrote[0].tcp_state),
        (5, Some(CloseWait)),
        "writes still work in CLOSE_WAIT"
    );

    let got: Vec<_> = r
        .calls(Client, "read")
        .iter()
        .map(|s| (s.ret, s.tcp_state))
        .collect();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0],
        (5, Some(FinWait2)),
        "the half-closed client reads the reply"
    );
    assert_eq!(got[1].0, 0, "then EOF");
    assert!(
        r.states()
            .any(|(l, s, src)| l == Client && s == FinWait2 && src == "sock_diag"),
        "sock_diag shows FIN_WAIT2"
    );
    assert!(
        r.states()
            .any(|(l, s, src)| l == Client && s == TimeWait && src == "sock_diag"),
        "the client sent the first FIN: TIME_WAIT"
    );
    if super::root() {
        for (lane, st) in [(Client, FinWait1), (Server, LastAck)] {
            assert!(r.saw(lane, st), "{lane:?} {st}");
        }
        let flags = r.flags();
        assert_eq!(
            flags.iter().filter(|f| *f == "FIN|ACK").count(),
            2,
            "{flags:?}"
        );
    } else {
        crate::util::skip("needs root (the tracepoint and packet checks)");
    }
}
