//! `socklab hosts`: two computers on one machine. Each is a network namespace with its own
//! interfaces, addresses, routes and sockets; a veth pair is the cable between them. With
//! `--nat`, a third namespace routes between them and rewrites the client's source address and
//! port on the way (nftables masquerade), as a home router does.
//!
//! Read first: network_namespaces(7), veth(4), ip-netns(8), and "Performing Network Address
//! Translation" in the nftables wiki. The addresses are from 198.18.0.0/15, reserved for
//! network benchmarking (RFC 2544) and never routed. Everything is made with the `ip` and `nft`
//! commands, each printed as it runs (see [`Hosts::up`]), so a learner can type them too.
//!
//! Namespaces are named `socklab-<pid>-client` (a demo's, removed when it ends, on error and
//! on Ctrl-C; a crashed run's are removed by the next one) or `socklab-client` (the lab that
//! `socklab hosts` leaves up until `socklab hosts down`). Removing a namespace removes its
//! interfaces and its nftables tables with it.

use std::fmt;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::observe::capture::Interface;
use crate::observe::session::Place;
use crate::sys::ffi;

/// Where `ip netns add` puts a namespace's name (a file the namespace is bind-mounted on).
pub const NETNS_DIR: &str = "/run/netns";

/// The prefix of every namespace the lab makes.
pub const PREFIX: &str = "socklab";

/// The name of each host's interface (the client's and the server's: one cable each).
pub const HOST_IF: &str = "eth0";
/// The router's interface toward the client (the home network).
pub const ROUTER_LAN: &str = "lan0";
/// The router's interface toward the server (the outside world).
pub const ROUTER_WAN: &str = "wan0";

/// The longest one `ip` or `nft` command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Why `socklab hosts` and `demo --hosts` refuse to run without root (after the command).
pub const NEEDS_ROOT: &str = "needs root: it creates network namespaces and veth links";

/// One of the lab's computers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// Runs the client.
    Client,
    /// Runs the server.
    Server,
    /// Forwards between them and rewrites the client's address (`--nat` only).
    Router,
}

impl Host {
    fn name(self) -> &'static str {
        match self {
            Host::Client => "client",
            Host::Server => "server",
            Host::Router => "router",
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The shape of the lab: two hosts on one link, or a NAT router between them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    /// A router namespace between client and server, masquerading the client.
    pub nat: bool,
}

impl Layout {
    /// The client's own address: 198.18.0.1, or 198.18.1.2 behind the router.
    pub fn client_ip(self) -> Ipv4Addr {
        if self.nat {
            Ipv4Addr::new(198, 18, 1, 2)
        } else {
            Ipv4Addr::new(198, 18, 0, 1)
        }
    }

    /// The server's address (both layouts).
    pub fn server_ip(self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, 2)
    }

    /// The router's addresses: toward the client (the client's gateway) and toward the
    /// server (the address the server sees connections come from).
    pub fn router_ips(self) -> Option<(Ipv4Addr, Ipv4Addr)> {
        self.nat
            .then_some((Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 0, 1)))
    }

    /// The hosts, in the order they are made.
    pub fn hosts(self) -> &'static [Host] {
        if self.nat {
            &[Host::Server, Host::Router, Host::Client]
        } else {
            &[Host::Server, Host::Client]
        }
    }
}

/// The namespace name of `host` in the lab with `prefix` (`socklab` or `socklab-<pid>`).
pub fn netns_name(prefix: &str, host: Host) -> String {
    format!("{prefix}-{host}")
}

/// The file that names namespace `name` (what setns(2) opens).
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// `Err` with [`NEEDS_ROOT`] unless this process is root; `what` names the command.
pub fn require_root(what: &str) -> Result<(), Error> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "{what} {NEEDS_ROOT} (try sudo {what})"
        )))
    }
}

/// The tools the lab runs, found on PATH or in the sbin directories (not always on a user's
/// PATH).
#[derive(Debug, Clone)]
struct Tools {
    ip: PathBuf,
    nft: Option<PathBuf>,
}

impl Tools {
    fn find(nat: bool) -> Result<Tools, Error> {
        let ip = crate::net::find_tool("ip").ok_or_else(|| {
            Error::Other(
                "socklab hosts needs the `ip` command: install iproute2 (apt-get install iproute2)"
                    .into(),
            )
        })?;
        let nft = if nat {
            Some(crate::net::find_tool("nft").ok_or_else(|| {
                Error::Other(
                    "socklab hosts --nat needs the `nft` command: install nftables \
                     (apt-get install nftables)"
                        .into(),
                )
            })?)
        } else {
            None
        };
        Ok(Tools { ip, nft })
    }
}

/// Quotes `arg` for a POSIX shell when it needs it, so a printed command can be pasted.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+%".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Runs `program` (shown as `shown`) with `args`, bounded by [`COMMAND_TIMEOUT`]; its stderr
/// becomes the error.
fn run_command(program: &Path, shown: &str, args: &[&str]) -> Result<(), Error> {
    let line = command_line(shown, args);
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Other(format!("cannot run `{line}`: {e}")))?;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Other(format!(
                    "`{line}` did not finish within {}s and was stopped",
                    COMMAND_TIMEOUT.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(Error::Other(format!("waiting for `{line}`: {e}"))),
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    Err(Error::Other(format!(
        "`{line}` failed ({status}): {}",
        err.trim()
    )))
}

fn command_line(shown: &str, args: &[&str]) -> String {
    std::iter::once(shown.to_string())
        .chain(args.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The lab's network namespaces, removed when dropped unless [`Hosts::keep`] was called.
#[derive(Debug)]
pub struct Hosts {
    prefix: String,
    layout: Layout,
    tools: Tools,
    /// Namespaces made so far, in order: the ones Drop removes.
    made: Vec<String>,
    keep: bool,
}

/// Why setup stopped on Ctrl-C.
fn interrupted() -> Error {
    Error::Other("interrupted: socklab removed the namespaces it had made".into())
}

impl Hosts {
    /// Makes the namespaces, the veth cables, the addresses and routes (and with `--nat`
    /// the router's forwarding and masquerade rule) of the lab named `prefix`, printing each
    /// command to `echo` before it runs. Stops between commands once SIGINT or SIGTERM arrived
    /// (after [`ffi::catch_interrupts`]); whatever was made is removed on any error.
    ///
    /// Not one syscall: about 15 `ip` commands, and `nft` for the router.
    pub fn up(prefix: &str, layout: Layout, echo: &mut dyn FnMut(&str)) -> Result<Hosts, Error> {
        require_root("socklab hosts")?;
        let tools = Tools::find(layout.nat)?;
        if let Some(h) = layout
            .hosts()
            .iter()
            .find(|h| netns_path(&netns_name(prefix, **h)).exists())
        {
            return Err(Error::Other(format!(
                "network namespace {} already exists: the lab is up already \
                 (`socklab hosts down` removes it)",
                netns_name(prefix, *h)
            )));
        }
        let mut hosts = Hosts {
            prefix: prefix.to_string(),
            layout,
            tools,
            made: Vec::new(),
            keep: false,
        };
        hosts.build(echo)?;
        if ffi::interrupted() {
            return Err(interrupted());
        }
        Ok(hosts)
    }

    /// A lab for one run, named after this process (`socklab-<pid>-...`), after removing the
    /// namespaces of runs that died without cleaning up. Removed when dropped.
    pub fn for_run(layout: Layout, echo: &mut dyn FnMut(&str)) -> Result<Hosts, Error> {
        require_root("socklab demo --hosts")?;
        for (name, why) in remove_stale() {
            echo(&format!("# removed {name}, left by {why}"));
        }
        Hosts::up(&format!("{PREFIX}-{}", std::process::id()), layout, echo)
    }

    fn build(&mut self, echo: &mut dyn FnMut(&str)) -> Result<(), Error> {
        let layout = self.layout;
        let (client, server, router) = (
            self.name(Host::Client),
            self.name(Host::Server),
            self.name(Host::Router),
        );
        for &h in layout.hosts() {
            let ns = self.name(h);
            // Counted as made before it is: an `ip netns add` stopped half-way (Ctrl-C from
            // the terminal reaches it too) may have made it all the same.
            self.made.push(ns.clone());
            self.ip(echo, &["netns", "add", &ns])?;
            // IPv4 only: no IPv6 address configuration chatter on the captured wire.
            self.ip(
                echo,
                &[
                    "netns",
                    "exec",
                    &ns,
                    "sh",
                    "-c",
                    "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
                ],
            )?;
            self.ip(echo, &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        let cidr = |ip: Ipv4Addr| format!("{ip}/24");
        // Each cable is made with its two ends already in their namespaces.
        let mut ends: Vec<(String, &str, Ipv4Addr)> = Vec::new();
        match layout.router_ips() {
            None => {
                self.ip(
                    echo,
                    &[
                        "link", "add", HOST_IF, "netns", &client, "type", "veth", "peer", "name",
                        HOST_IF, "netns", &server,
                    ],
                )?;
                ends.push((client.clone(), HOST_IF, layout.client_ip()));
                ends.push((server.clone(), HOST_IF, layout.server_ip()));
            }
            Some((lan, wan)) => {
                for (host, near, far) in [
                    (&client, HOST_IF, ROUTER_LAN),
                    (&server, HOST_IF, ROUTER_WAN),
                ] {
                    self.ip(
                        echo,
                        &[
                            "link", "add", near, "netns", host, "type", "veth", "peer", "name",
                            far, "netns", &router,
                        ],
                    )?;
                }
                ends.push((client.clone(), HOST_IF, layout.client_ip()));
                ends.push((router.clone(), ROUTER_LAN, lan));
                ends.push((router.clone(), ROUTER_WAN, wan));
                ends.push((server.clone(), HOST_IF, layout.server_ip()));
            }
        }
        for (ns, dev, ip) in &ends {
            self.ip(echo, &["-n", ns, "addr", "add", &cidr(*ip), "dev", dev])?;
            self.ip(echo, &["-n", ns, "link", "set", dev, "up"])?;
        }
        if let Some((lan, _)) = layout.router_ips() {
            let gateway = lan.to_string();
            self.ip(
                echo,
                &["-n", &client, "route", "add", "default", "via", &gateway],
            )?;
            self.ip(
                echo,
                &[
                    "netns",
                    "exec",
                    &router,
                    "sh",
                    "-c",
                    "echo 1 > /proc/sys/net/ipv4/ip_forward",
                ],
            )?;
            // fully-random: a random source port for every connection, so the rewrite shows
            // in the port too (plain masquerade keeps the client's port when it is free).
            let rules = format!(
                "add table ip socklab; \
                 add chain ip socklab postrouting {{ type nat hook postrouting priority srcnat; }}; \
                 add rule ip socklab postrouting oifname \"{ROUTER_WAN}\" masquerade fully-random"
            );
            let nft = Tools::find(true)?.nft.unwrap_or_default();
            let nft = nft.to_string_lossy().into_owned();
            self.ip_shown(
                echo,
                &["netns", "exec", &router, &nft, &rules],
                &["netns", "exec", &router, "nft", &rules],
            )?;
        }
        Ok(())
    }

    fn ip(&self, echo: &mut dyn FnMut(&str), args: &[&str]) -> Result<(), Error> {
        self.ip_shown(echo, args, args)
    }

    /// Runs `ip args`, printed as `ip shown` (a full tool path shown by its name).
    fn ip_shown(
        &self,
        echo: &mut dyn FnMut(&str),
        args: &[&str],
        shown: &[&str],
    ) -> Result<(), Error> {
        if ffi::interrupted() {
            return Err(interrupted());
        }
        echo(&format!("$ {}", command_line("ip", shown)));
        let res = run_command(&self.tools.ip, "ip", args);
        // A Ctrl-C from the terminal also stops the command: say why, not how it failed.
        if res.is_err() && ffi::interrupted() {
            return Err(interrupted());
        }
        res
    }

    /// The namespace name of `host`.
    pub fn name(&self, host: Host) -> String {
        netns_name(&self.prefix, host)
    }

    /// The file that names `host`'s namespace.
    pub fn path(&self, host: Host) -> PathBuf {
        netns_path(&self.name(host))
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The `ip` command this lab runs (to run programs with `ip netns exec`).
    pub fn ip_command(&self) -> &Path {
        &self.tools.ip
    }

    /// Where the observers look: sock_diag in the client's and the server's namespaces,
    /// packets on the server's interface (what the server's side of the cable carries; with
    /// `--nat`, after the rewrite).
    pub fn place(&self) -> Place {
        Place {
            netns: vec![self.path(Host::Client), self.path(Host::Server)],
            capture: Some(Interface {
                name: HOST_IF.into(),
                netns: Some(self.path(Host::Server)),
            }),
        }
    }

    /// Leaves the lab up when this value goes away (`socklab hosts`).
    pub fn keep(mut self) {
        self.keep = true;
    }

    /// Removes the lab's namespaces now, reporting each command to `echo`.
    pub fn remove(mut self, echo: &mut dyn FnMut(&str)) -> Result<(), Error> {
        let made = std::mem::take(&mut self.made);
        remove_namespaces(&self.tools.ip, &made, echo)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let made = std::mem::take(&mut self.made);
        if let Err(e) = remove_namespaces(&self.tools.ip, &made, &mut |_| {}) {
            eprintln!("socklab: {e}");
        }
    }
}

/// Stops the processes still inside namespace `name` (they would keep it alive, unnamed,
/// after `ip netns del`): SIGTERM, then SIGKILL after a second. Returns what it stopped.
fn stop_processes_in(name: &str) -> Vec<String> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let Ok(target) = std::fs::metadata(netns_path(name)) else {
        return Vec::new();
    };
    let inside = || -> Vec<i32> {
        use std::os::unix::fs::MetadataExt;
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| pid != std::process::id() as i32)
            .filter(|pid| {
                std::fs::metadata(format!("/proc/{pid}/ns/net"))
                    .is_ok_and(|m| m.ino() == target.ino() && m.dev() == target.dev())
            })
            .collect()
    };
    let pids = inside();
    let mut stopped = Vec::new();
    for &pid in &pids {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|raw| {
                raw.split(|&b| b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        if kill(Pid::from_raw(pid), Signal::SIGTERM).is_ok() {
            stopped.push(format!("pid {pid} ({cmd})"));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    while !pids.is_empty() && Instant::now() < deadline && !inside().is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
    for pid in inside() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    stopped
}

/// `ip netns del` for each of `names`, last made first; every one is tried.
fn remove_namespaces(ip: &Path, names: &[String], echo: &mut dyn FnMut(&str)) -> Result<(), Error> {
    let mut failed = Vec::new();
    for name in names.iter().rev() {
        if !netns_path(name).exists() {
            continue;
        }
        for who in stop_processes_in(name) {
            echo(&format!("# stopped {who}, still running in {name}"));
        }
        let args = ["netns", "del", name.as_str()];
        echo(&format!("$ {}", command_line("ip", &args)));
        if let Err(e) = run_command(ip, "ip", &args) {
            failed.push(format!("{e}; remove it with `ip netns del {name}`"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Other(failed.join("; ")))
    }
}

/// The lab's namespaces that exist now, by name.
pub fn existing() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(&format!("{PREFIX}-")))
        .collect();
    names.sort();
    names
}

/// The pid in a per-run namespace name (`socklab-<pid>-client`), if it is one.
pub fn owner_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?.strip_prefix('-')?;
    let (pid, host) = rest.split_once('-')?;
    let known = [Host::Client, Host::Server, Host::Router]
        .iter()
        .any(|h| h.name() == host);
    (known && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        .then(|| pid.parse().ok())
        .flatten()
}

/// True while process `pid` lives and is a socklab (not another program that got the pid).
fn is_running_socklab(pid: u32) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    comm.contains(PREFIX) || exe.to_string_lossy().contains(PREFIX)
}

/// Removes the per-run namespaces whose socklab process is gone (killed before it could clean
/// up); returns (name, why) for each one removed.
pub fn remove_stale() -> Vec<(String, String)> {
    let Some(ip) = crate::net::find_tool("ip") else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for name in existing() {
        let Some(pid) = owner_of(&name) else { continue };
        if pid == std::process::id() || is_running_socklab(pid) {
            continue;
        }
        if remove_namespaces(&ip, std::slice::from_ref(&name), &mut |_| {}).is_ok() {
            removed.push((name, format!("socklab pid {pid}, which is gone")));
        }
    }
    removed
}

/// `socklab hosts down`: removes the lab `socklab hosts` left up (stopping what still runs in
/// it) and the namespaces of dead runs. Returns the names removed.
pub fn down(echo: &mut dyn FnMut(&str)) -> Result<Vec<String>, Error> {
    require_root("socklab hosts down")?;
    let tools = Tools::find(false)?;
    let mut removed: Vec<String> = remove_stale().into_iter().map(|(n, _)| n).collect();
    let lab: Vec<String> = [Host::Server, Host::Router, Host::Client]
        .iter()
        .map(|&h| netns_name(PREFIX, h))
        .filter(|n| netns_path(n).exists())
        .collect();
    // Listed in the order made (server first): removed client first.
    remove_namespaces(&tools.ip, &lab, echo)?;
    removed.extend(lab);
    Ok(removed)
}

/// Prints one line on stdout; a closed stdout is ignored (setup must still finish or roll
/// back, not exit half-way).
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// `socklab hosts [--nat]`: sets up the lab that stays (`socklab-client`, `socklab-server`,
/// `socklab-router`), printing each command, then how to use it. `exe` is the socklab to show
/// in the examples. Ctrl-C during setup removes what was made.
pub fn up_command(layout: Layout, exe: &Path) -> Result<(), Error> {
    require_root("socklab hosts")?;
    ffi::catch_interrupts().map_err(|e| Error::sys("sigaction", "SIGINT", e))?;
    for (name, why) in remove_stale() {
        say(&format!("# removed {name}, left by {why}"));
    }
    let hosts = Hosts::up(PREFIX, layout, &mut |line| say(line))?;
    let (client, server) = (hosts.name(Host::Client), hosts.name(Host::Server));
    // From here on the lab stays: a Ctrl-C now no longer undoes it.
    hosts.keep();
    let exe = shell_quote(&exe.to_string_lossy());
    let (cip, sip) = (layout.client_ip(), layout.server_ip());
    let row =
        |host: Host, addrs: String| format!("  {host:<7} {addrs:<42} {}", netns_name(PREFIX, host));
    let mut text = vec![
        String::new(),
        crate::course::notes::text("hosts.up", &[]),
        row(Host::Client, format!("{cip} on {HOST_IF}")),
    ];
    if let Some((lan, wan)) = layout.router_ips() {
        text.push(row(
            Host::Router,
            format!("{lan} on {ROUTER_LAN}, {wan} on {ROUTER_WAN}"),
        ));
    }
    text.push(row(Host::Server, format!("{sip} on {HOST_IF}")));
    if let Some((lan, wan)) = layout.router_ips() {
        text.push(crate::course::notes::text(
            "hosts.up_nat",
            &[("gateway", lan.to_string()), ("router", wan.to_string())],
        ));
    }
    text.push(String::new());
    text.push(crate::course::notes::text("hosts.try", &[]));
    text.push(format!(
        "  ip netns exec {server} {exe} server {sip} -p 1060"
    ));
    text.push(format!(
        "  ip netns exec {client} {exe} client {sip} -p 1060 -m hello"
    ));
    text.push(format!("  ip netns exec {server} ss -tan"));
    text.push(format!("  ip netns exec {client} ip addr"));
    text.push(crate::course::notes::text(
        "hosts.try_more",
        &[("server_ns", server.clone())],
    ));
    for line in text {
        say(&line);
    }
    Ok(())
}

/// `socklab hosts down`: removes the lab (and dead runs' namespaces), saying what went.
pub fn down_command() -> Result<(), Error> {
    let removed = down(&mut |line| say(line))?;
    if removed.is_empty() {
        say(&crate::course::notes::text("hosts.down_none", &[]));
    } else {
        say(&crate::course::notes::text(
            "hosts.down",
            &[("names", removed.join(", "))],
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_run_names_carry_the_pid() {
        assert_eq!(netns_name("socklab-42", Host::Client), "socklab-42-client");
        assert_eq!(owner_of("socklab-42-client"), Some(42));
        assert_eq!(owner_of("socklab-42-router"), Some(42));
        assert_eq!(owner_of("socklab-client"), None);
        assert_eq!(owner_of("socklab-42-other"), None);
        assert_eq!(owner_of("socklab--client"), None);
        assert_eq!(owner_of("socklabx-42-client"), None);
    }

    #[test]
    fn addresses_are_in_the_benchmarking_range() {
        for nat in [false, true] {
            let l = Layout { nat };
            let mut ips = vec![l.client_ip(), l.server_ip()];
            ips.extend(l.router_ips().map(|(a, b)| [a, b]).into_iter().flatten());
            for ip in ips {
                let o = ip.octets();
                assert!(o[0] == 198 && (o[1] & 0xfe) == 18, "{ip}");
            }
        }
        let nat = Layout { nat: true };
        assert_eq!(
            nat.router_ips().map(|r| r.1),
            Some(Ipv4Addr::new(198, 18, 0, 1))
        );
        assert_ne!(nat.client_ip(), Layout::default().client_ip());
    }

    #[test]
    fn printed_commands_can_be_pasted() {
        assert_eq!(
            command_line("ip", &["netns", "exec", "x", "sh", "-c", "echo 1 > /p"]),
            "ip netns exec x sh -c 'echo 1 > /p'"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("198.18.0.1/24"), "198.18.0.1/24");
    }
}
