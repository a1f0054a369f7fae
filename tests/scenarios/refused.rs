use socklab::event::Lane::Client;
use socklab::event::tcp_state::TcpState::*;

#[test]
fn refused_connect_gets_econnrefused_from_an_rst() {
    let r = super::run("refused", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let connect = r.calls(Client, "connect");
    assert_eq!(connect.len(), 1);
    assert_eq!(connect[0].ret, -1);
    assert_eq!(connect[0].errno.as_deref(), Some("ECONNREFUSED"));
    assert_eq!(connect[0].tcp_state, Some(Close));
    if super::root() {
        assert!(r.saw(Client, SynSent), "the tracepoint saw the SYN go out");
        assert_eq!(r.flags(), ["SYN", "RST|ACK"]);
    } else {
        crate::util::skip("needs root (the tracepoint and packet checks)");
    }
}
