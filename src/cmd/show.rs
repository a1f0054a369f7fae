//! The observer and output flags shared by `demo` and `scenario`.

use std::path::PathBuf;

use clap::Args;

use crate::observe::session::ObserveOptions;
use crate::programs::demo::View;

/// Observer and output flags shared by `demo` and `scenario`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Watch the kernel's TCP state machine: the tracepoint as root, else sock_diag polling
    /// (on by default).
    #[arg(long, overrides_with = "no_kernel")]
    kernel: bool,
    /// Do not watch kernel state changes.
    #[arg(long)]
    no_kernel: bool,
    /// Capture the packets on loopback: needs root or CAP_NET_RAW, or --private-net (on by
    /// default).
    #[arg(long, overrides_with = "no_packets")]
    packets: bool,
    /// Do not capture packets.
    #[arg(long)]
    no_packets: bool,
    /// Also write the captured packets to FILE (pcap; tcpdump -r and tshark -r read it).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Draw the timeline as a sequence diagram: client | wire | server.
    #[arg(long)]
    diagram: bool,
    /// Write the sequence diagram as a standalone SVG picture.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Write the sequence diagram and the event table as a standalone HTML page.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

impl ShowArgs {
    /// Which observers to run.
    pub fn observe(&self) -> ObserveOptions {
        ObserveOptions {
            kernel: !self.no_kernel,
            packets: !self.no_packets,
            pcap: self.pcap.clone(),
        }
    }

    /// True when a picture of the finished run is asked for (SVG, HTML).
    pub fn draws(&self) -> bool {
        self.svg.is_some() || self.html.is_some()
    }

    /// How to show the run afterwards.
    pub fn view(&self, json: bool, private_net: bool) -> View {
        View {
            json,
            diagram: self.diagram,
            svg: self.svg.clone(),
            html: self.html.clone(),
            private_net,
        }
    }
}
