use socklab::event::Body;
use socklab::event::Lane::{Client, Server};
use socklab::event::tcp_state::TcpState::*;

#[test]
fn ipv6_handshake_has_the_same_states_and_v6_addresses() {
    let r = super::run("ipv6", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for lane in [Server, Client] {
        let socket = r.calls(lane, "socket");
        assert_eq!(socket.len(), 1);
        assert_eq!(socket[0].args["domain"], "AF_INET6");
    }
    let bind = r.calls(Server, "bind");
    assert!(bind[0].args["addr"].as_str().unwrap().starts_with("[::1]:"));
    let name = r.calls(Client, "getsockname");
    assert!(name[0].args["addr"].as_str().unwrap().starts_with("[::1]:"));
    let accept = r.calls(Server, "accept4");
    assert_eq!(
        accept[0].args["addr"], name[0].args["addr"],
        "the server sees the client's [::1]:port"
    );
    assert_eq!(r.calls(Client, "connect")[0].tcp_state, Some(Established));
    assert!(r.saw(Server, Listen));
    assert!(r.saw(Server, Established) && r.saw(Server, CloseWait));
    assert!(r.saw(Client, TimeWait), "sock_diag lists the v6 TIME_WAIT");
    for e in &r.events {
        if let Body::State(st) = &e.body {
            let local = st.local.as_deref().unwrap_or_default();
            assert!(local.starts_with("[::1]:"), "{local}");
        }
    }
    if super::root() {
        assert!(r.kernel() && r.packets(), "{}", r.stderr);
        for (lane, st) in [
            (Client, SynSent),
            (Server, SynRecv),
            (Client, FinWait1),
            (Server, LastAck),
        ] {
            assert!(r.saw(lane, st), "{lane:?} {st}");
        }
        let flags = r.flags();
        assert_eq!(&flags[..3], ["SYN", "SYN|ACK", "ACK"], "{flags:?}");
        for e in &r.events {
            if let Body::Packet(p) = &e.body
                && p.proto == "TCP"
            {
                assert!(
                    p.src.starts_with("[::1]:") && p.dst.starts_with("[::1]:"),
                    "{p:?}"
                );
            }
        }
    } else {
        crate::util::skip("needs root (the tracepoint and packet checks)");
    }
}
