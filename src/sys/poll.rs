//! Readiness: poll, and epoll's create, ctl and wait.

use std::os::fd::{AsFd, AsRawFd};

use nix::poll::{PollFd, PollTimeout};

use super::call::raw;
use super::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, PollFlags, Result, names};
use crate::event::record::{FdInfo, Transport};

/// `poll(fds, nfds, timeout)`: waits until one of the descriptors is ready; returns how many
/// are. `timeout_ms` < 0 waits for ever.
#[doc = man!("poll")]
pub fn poll(fds: &mut [PollFd<'_>], timeout_ms: i32) -> Result<usize> {
    let timeout = PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::NONE);
    let first = fds.first().map(|p| p.as_fd().as_raw_fd());
    logged!(
        "poll",
        first,
        nix::poll::poll(fds, timeout).map(|n| n as usize),
        |_| {
            let list: Vec<String> = fds
                .iter()
                .map(|p| {
                    format!(
                        "{{fd={}, events={}, revents={}}}",
                        p.as_fd().as_raw_fd(),
                        names::poll_flags(p.events()),
                        names::poll_flags(p.revents().unwrap_or(PollFlags::empty()))
                    )
                })
                .collect();
            args! {"fds" => format!("[{}]", list.join(", ")), "nfds" => fds.len(), "timeout" => timeout_ms}
        }
    )
}

/// `epoll_create1(flags)`: a new epoll instance, a descriptor holding an interest list (what
/// to watch) and a ready list (what the kernel found ready).
#[doc = man!("epoll_create1")]
pub fn epoll_create1(flags: EpollCreateFlags) -> Result<Epoll> {
    logged!(
        "epoll_create1",
        None,
        Epoll::new(flags),
        |_| args! {"flags" => if flags.contains(EpollCreateFlags::EPOLL_CLOEXEC) { "EPOLL_CLOEXEC" } else { "0" }},
        |t, res| if let Ok(ep) = res {
            t.insert(ep.0.as_raw_fd(), FdInfo::new(Transport::Other));
        }
    )
}

/// What `epoll_ctl` does to the interest list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpollCtl {
    /// `EPOLL_CTL_ADD`: start watching the descriptor for these events.
    Add(EpollFlags),
    /// `EPOLL_CTL_MOD`: watch for other events from now on.
    Modify(EpollFlags),
    /// `EPOLL_CTL_DEL`: stop watching (closing the last reference to a descriptor does the
    /// same).
    Delete,
}

/// `epoll_ctl(epfd, op, fd, &event)`: adds, changes or removes one descriptor in the interest
/// list; `data` comes back with each of its events from [`epoll_wait`].
#[doc = man!("epoll_ctl")]
pub fn epoll_ctl(ep: &Epoll, op: EpollCtl, fd: &impl AsFd, data: u64) -> Result<()> {
    let epfd = ep.0.as_raw_fd();
    let target = raw(fd);
    logged!(
        "epoll_ctl",
        Some(epfd),
        match op {
            EpollCtl::Add(ev) => ep.add(fd, EpollEvent::new(ev, data)),
            EpollCtl::Modify(ev) => ep.modify(fd, &mut EpollEvent::new(ev, data)),
            EpollCtl::Delete => ep.delete(fd),
        },
        |_| {
            let (name, event) = match op {
                EpollCtl::Add(ev) => ("EPOLL_CTL_ADD", names::epoll_event(ev, data)),
                EpollCtl::Modify(ev) => ("EPOLL_CTL_MOD", names::epoll_event(ev, data)),
                EpollCtl::Delete => ("EPOLL_CTL_DEL", "NULL".to_string()),
            };
            args! {"epfd" => epfd, "op" => name, "fd" => target, "event" => event}
        }
    )
}

/// How many ready events an `epoll_wait` event lists before `...`.
const EPOLL_EVENTS_SHOWN: usize = 8;

/// `epoll_wait(epfd, events, maxevents, timeout)`: waits until a watched descriptor is ready
/// (or `timeout_ms` passes; < 0 waits for ever) and fills `events` from the ready list;
/// returns how many.
#[doc = man!("epoll_wait")]
pub fn epoll_wait(ep: &Epoll, events: &mut [EpollEvent], timeout_ms: i32) -> Result<usize> {
    let epfd = ep.0.as_raw_fd();
    let timeout = PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::NONE);
    logged!("epoll_wait", Some(epfd), ep.wait(events, timeout), |res| {
        let n = *res.as_ref().unwrap_or(&0);
        args! {
            "epfd" => epfd, "events" => names::epoll_events(&events[..n], EPOLL_EVENTS_SHOWN),
            "maxevents" => events.len(), "timeout" => timeout_ms,
        }
    })
}
