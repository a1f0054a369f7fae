//! The private network namespace and the iptables NFQUEUE rules that hand packets to the queue.

use std::path::PathBuf;
use std::process::Command;

use super::QUEUE;
use crate::error::Error;

/// Moves the process into a private network namespace for the wire (as root a network
/// namespace; otherwise a user namespace first), or says clearly why it cannot.
///
/// Must run before the process starts threads or children, as
/// [`crate::net::netns::enter_private_net`] requires.
pub fn enter_namespace() -> Result<(), Error> {
    crate::net::netns::enter_private_net().map_err(|e| {
        let e = e.to_string();
        let why = e.strip_prefix("--private-net: ").unwrap_or(&e);
        Error::Other(format!(
            "--wire needs root, or a user namespace this kernel allows: it holds packets in a \
             private network namespace of its own, and creating one failed: {why}"
        ))
    })
}

/// The iptables arguments that queue the port's TCP and UDP packets, both directions, as
/// added with `-A` (`-D` with the same arguments removes one).
pub fn rules(port: u16) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for proto in ["tcp", "udp"] {
        for dir in ["--dport", "--sport"] {
            out.push(
                [
                    "OUTPUT",
                    "-p",
                    proto,
                    dir,
                    &port.to_string(),
                    "-j",
                    "NFQUEUE",
                    "--queue-num",
                    &QUEUE.to_string(),
                    "--queue-bypass",
                ]
                .map(String::from)
                .to_vec(),
            );
        }
    }
    out
}

/// True when this process shares init's network namespace (as far as it may look: a user
/// who cannot read init's link cannot change the host's rules either).
pub(super) fn in_initial_netns() -> bool {
    match (
        std::fs::read_link("/proc/self/ns/net"),
        std::fs::read_link("/proc/1/ns/net"),
    ) {
        (Ok(me), Ok(init)) => me == init,
        _ => false,
    }
}

/// The rules added so far; dropping it deletes them. The namespace would take them along
/// anyway, but a library caller's namespace may outlive the wire.
pub(super) struct Rules {
    prog: PathBuf,
    added: Vec<Vec<String>>,
}

impl Rules {
    pub(super) fn add(port: u16) -> Result<Rules, Error> {
        let prog = crate::net::find_tool("iptables-nft")
            .or_else(|| crate::net::find_tool("iptables"))
            .ok_or_else(|| {
                Error::Other(
                    "--wire needs iptables-nft to queue the exchange's packets to the lab \
                     (Debian and Ubuntu: apt-get install iptables)"
                        .into(),
                )
            })?;
        let mut added = Rules {
            prog,
            added: Vec::new(),
        };
        for args in rules(port) {
            let out = Command::new(&added.prog)
                .arg("-A")
                .args(&args)
                .output()
                .map_err(|e| {
                    Error::Other(format!("--wire: cannot run {}: {e}", added.prog.display()))
                })?;
            if !out.status.success() {
                return Err(Error::Other(format!(
                    "--wire: `{} -A {}` failed ({}): {}. It needs root, or a user namespace \
                     where the kernel allows nf_tables, and the NFQUEUE target \
                     (CONFIG_NETFILTER_XT_TARGET_NFQUEUE).",
                    added.prog.display(),
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            added.added.push(args);
        }
        Ok(added)
    }
}

impl Drop for Rules {
    fn drop(&mut self) {
        for args in self.added.drain(..).rev() {
            let _ = Command::new(&self.prog).arg("-D").args(&args).output();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_queue_both_directions_of_tcp_and_udp() {
        let r: Vec<String> = rules(1060).iter().map(|a| a.join(" ")).collect();
        assert_eq!(r.len(), 4);
        assert!(r.contains(
            &"OUTPUT -p tcp --dport 1060 -j NFQUEUE --queue-num 0 --queue-bypass".into()
        ));
        assert!(r.iter().any(|l| l.contains("-p udp --sport 1060")));
    }
}
