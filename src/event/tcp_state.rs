//! The one TCP state type, mapped from every source the lab reads.
//!
//! Read first: RFC 793 section 3.2 (the state diagram) and tcp(7). Linux numbers its states in
//! `include/net/tcp_states.h`; TCP_INFO's `tcpi_state`, sock_diag's `idiag_state` and the
//! tracepoint's `TCP_*` names all use that numbering.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Linux TCP socket state, spelled as Linux spells it (without the `TCP_` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TcpState {
    /// Connection open; data flows both ways.
    #[serde(rename = "ESTABLISHED")]
    Established,
    /// SYN sent by connect(), waiting for SYN|ACK.
    #[serde(rename = "SYN_SENT")]
    SynSent,
    /// SYN received and SYN|ACK sent, waiting for the final ACK.
    #[serde(rename = "SYN_RECV")]
    SynRecv,
    /// We closed first and sent FIN; waiting for its ACK.
    #[serde(rename = "FIN_WAIT1")]
    FinWait1,
    /// Our FIN was acknowledged; waiting for the peer's FIN.
    #[serde(rename = "FIN_WAIT2")]
    FinWait2,
    /// Both FINs exchanged; the active closer waits 2*MSL before the port is free again.
    #[serde(rename = "TIME_WAIT")]
    TimeWait,
    /// No connection (a fresh socket, or one that is finished).
    #[serde(rename = "CLOSE")]
    Close,
    /// The peer sent FIN; we may still send until we close.
    #[serde(rename = "CLOSE_WAIT")]
    CloseWait,
    /// We closed after the peer did; waiting for the ACK of our FIN.
    #[serde(rename = "LAST_ACK")]
    LastAck,
    /// A listening socket (after listen()).
    #[serde(rename = "LISTEN")]
    Listen,
    /// Both sides sent FIN at the same time (simultaneous close).
    #[serde(rename = "CLOSING")]
    Closing,
    /// A request socket: a half-open connection between SYN and the final ACK.
    #[serde(rename = "NEW_SYN_RECV")]
    NewSynRecv,
    /// Bound but not listening or connected (Linux 6.9+, sock_diag only).
    #[serde(rename = "BOUND_INACTIVE")]
    BoundInactive,
}

impl TcpState {
    /// Every state, in Linux's numbering order.
    pub const ALL: [TcpState; 13] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
        TcpState::NewSynRecv,
        TcpState::BoundInactive,
    ];

    /// Maps the kernel's number (`tcpi_state`, `idiag_state`) to a state.
    pub fn from_linux(n: u8) -> Option<TcpState> {
        match n {
            1..=13 => Some(Self::ALL[usize::from(n) - 1]),
            _ => None,
        }
    }

    /// The kernel's number for this state (`include/net/tcp_states.h`).
    pub fn linux_number(self) -> u8 {
        match self {
            TcpState::Established => 1,
            TcpState::SynSent => 2,
            TcpState::SynRecv => 3,
            TcpState::FinWait1 => 4,
            TcpState::FinWait2 => 5,
            TcpState::TimeWait => 6,
            TcpState::Close => 7,
            TcpState::CloseWait => 8,
            TcpState::LastAck => 9,
            TcpState::Listen => 10,
            TcpState::Closing => 11,
            TcpState::NewSynRecv => 12,
            TcpState::BoundInactive => 13,
        }
    }

    /// The Linux name without the `TCP_` prefix, e.g. `SYN_SENT`.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait1 => "FIN_WAIT1",
            TcpState::FinWait2 => "FIN_WAIT2",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
            TcpState::NewSynRecv => "NEW_SYN_RECV",
            TcpState::BoundInactive => "BOUND_INACTIVE",
        }
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The text was not a TCP state name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownState(pub String);

impl fmt::Display for UnknownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown TCP state name {:?}", self.0)
    }
}

impl std::error::Error for UnknownState {}

impl FromStr for TcpState {
    type Err = UnknownState;

    /// Accepts `SYN_SENT`, the tracepoint's `TCP_SYN_SENT` and ss's `SYN-SENT`/`TIME-WAIT`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bare = s.strip_prefix("TCP_").unwrap_or(s);
        let norm = bare.replace('-', "_").to_ascii_uppercase();
        let norm = match norm.as_str() {
            "UNCONN" | "CLOSED" => "CLOSE",
            "ESTAB" => "ESTABLISHED",
            other => other,
        };
        TcpState::ALL
            .into_iter()
            .find(|st| st.name() == norm)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for st in TcpState::ALL {
            assert_eq!(TcpState::from_linux(st.linux_number()), Some(st));
        }
        assert_eq!(TcpState::from_linux(0), None);
        assert_eq!(TcpState::from_linux(14), None);
    }

    #[test]
    fn parses_every_spelling() {
        assert_eq!("TCP_SYN_SENT".parse(), Ok(TcpState::SynSent));
        assert_eq!("TIME-WAIT".parse(), Ok(TcpState::TimeWait));
        assert_eq!("ESTAB".parse(), Ok(TcpState::Established));
        assert_eq!("FIN_WAIT1".parse(), Ok(TcpState::FinWait1));
        assert!("BOGUS".parse::<TcpState>().is_err());
    }

    #[test]
    fn serde_uses_linux_names() {
        for st in TcpState::ALL {
            let json = serde_json::to_string(&st).unwrap();
            assert_eq!(json, format!("\"{}\"", st.name()));
        }
    }
}
