use socklab::event::Lane::{Client, Server};
use socklab::event::tcp_state::TcpState::*;

#[test]
fn handshake_shows_every_state_of_both_sides() {
    let r = super::run("handshake", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.saw(Server, Listen));
    assert!(r.saw(Client, Established) && r.saw(Server, Established));
    assert!(
        r.saw(Server, CloseWait),
        "the passive closer reads EOF in CLOSE_WAIT"
    );
    assert!(
        r.saw(Client, TimeWait),
        "the active closer ends in TIME_WAIT (sock_diag)"
    );
    let listen = r.calls(Server, "listen");
    let accept = r.calls(Server, "accept4");
    assert_eq!(accept.len(), 1);
    assert_ne!(
        accept[0].fd, listen[0].fd,
        "accept4 returns a new descriptor"
    );
    if super::root() {
        assert!(
            r.kernel() && r.packets(),
            "as root both observers run: {}",
            r.stderr
        );
        for (lane, st) in [
            (Client, SynSent),
            (Client, FinWait1),
            (Client, FinWait2),
            (Server, SynRecv),
            (Server, LastAck),
        ] {
            assert!(r.saw(lane, st), "{lane:?} {st}");
        }
        let flags = r.flags();
        assert_eq!(&flags[..3], ["SYN", "SYN|ACK", "ACK"], "{flags:?}");
        assert_eq!(
            flags.iter().filter(|f| *f == "FIN|ACK").count(),
            2,
            "{flags:?}"
        );
    } else {
        crate::util::skip("needs root (the tracepoint and packet checks)");
    }
}
