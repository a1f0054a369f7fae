//! Kernel observers: what the kernel did with the sockets, beside what the program called.
//!
//! Each source is a module of its own and produces the same [`crate::event`] types:
//! [`tcp_info`] (getsockopt TCP_INFO on the lab's own sockets, unprivileged) and [`sysctl`]
//! (the kernel settings the notes quote).

pub mod sysctl;
pub mod tcp_info;
