//! Kernel observers: what the kernel did with the sockets, beside what the program called.
//!
//! Each source is a module of its own and produces the same [`crate::event`] types:
//! [`tcp_info`] (getsockopt TCP_INFO on the lab's own sockets, unprivileged), [`sock_diag`]
//! (netlink snapshots of every TCP socket, unprivileged) and [`sysctl`] (the kernel settings
//! the notes quote).

pub mod sock_diag;
pub mod sysctl;
pub mod tcp_info;
