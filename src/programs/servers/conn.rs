//! What a server does on one connection, the same in every model: a small state machine fed
//! with the results of read(2) and write(2).
//!
//! A blocking worker (iterative, fork, thread) drives it with [`serve_blocking`]; the epoll
//! loop drives it when epoll_wait says the socket is ready. Either way [`Session::want`] says
//! what the connection waits for: bytes to read, room to write, or nothing (it is over).
//!
//! Echo never reads while output is pending: a client that does not read its echo fills the
//! server's send buffer, and then the server stops reading, so the client's writes block in
//! turn (TCP flow control reaches back to the sender; the server holds at most one buffer).

use std::ops::Range;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;

use crate::programs::output::{Prepared, say_with};
use crate::sys::{self, SockOpt, ffi, names};

use super::{Mode, Peer};

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served to the end: the reply sent, or every byte echoed until the client's EOF.
    Answered,
    /// Reply mode: the client closed without sending anything.
    Empty,
    /// No progress for the idle timeout: the server closed it.
    TimedOut,
    /// A read or write failed (the peer reset or vanished); only this connection is lost.
    Failed(Errno),
    /// Ctrl-C came while it was being served.
    Interrupted,
}

impl Outcome {
    /// The exit code of a fork child that served one connection: 0 answered, 1 failed,
    /// 2 timed out, 3 empty, 4 interrupted.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Answered => 0,
            Outcome::Failed(_) => 1,
            Outcome::TimedOut => 2,
            Outcome::Empty => 3,
            Outcome::Interrupted => 4,
        }
    }

    /// The outcome a fork child's exit code stands for (the errno of a failure is lost).
    pub fn from_exit_code(code: i32) -> Outcome {
        match code {
            0 => Outcome::Answered,
            2 => Outcome::TimedOut,
            3 => Outcome::Empty,
            4 => Outcome::Interrupted,
            _ => Outcome::Failed(Errno::UnknownErrno),
        }
    }
}

/// What a connection waits for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Bytes from the client (readable).
    Read,
    /// Room in the send buffer for pending output (writable).
    Write,
    /// Nothing: close it.
    Done(Outcome),
}

/// One connection's state.
#[derive(Debug)]
pub struct Session {
    mode: Mode,
    peer: Peer,
    read_size: usize,
    idle: Option<Duration>,
    /// Read into; in echo mode `pending` is what still has to go back, in reply mode it holds
    /// the reply.
    buf: Vec<u8>,
    pending: Range<usize>,
    done: Option<Outcome>,
    echoed: u64,
    /// `app.echoed` prepared but for the byte count (a fork child's last line).
    echoed_line: Option<Prepared>,
}

impl Session {
    /// A fresh connection from `peer`; `read_size` bytes are asked for by each read and
    /// `idle` is only quoted in the message when the timeout closes it.
    pub fn new(mode: Mode, peer: Peer, read_size: usize, idle: Option<Duration>) -> Session {
        Session::with_buffer(mode, peer, vec![0; read_size.max(1)], idle)
    }

    /// Like [`Session::new`], reading into `buf` (its length is the read size). A fork child
    /// takes the buffer its parent allocated once: allocating and zeroing a fresh one would
    /// write to (and so copy) every heap page it spans.
    pub fn with_buffer(
        mode: Mode,
        peer: Peer,
        mut buf: Vec<u8>,
        idle: Option<Duration>,
    ) -> Session {
        if buf.is_empty() {
            buf.push(0);
        }
        Session {
            mode,
            peer,
            read_size: buf.len(),
            idle,
            buf,
            pending: 0..0,
            done: None,
            echoed: 0,
            echoed_line: None,
        }
    }

    /// Says `app.echoed` with `line`, prepared before a fork with the peer filled in, so that
    /// the child that ends here formats nothing ([`Prepared`]).
    pub fn with_echoed_line(mut self, line: Option<Prepared>) -> Session {
        self.echoed_line = line;
        self
    }

    /// The read buffer back, at its read size, for the next connection: allocating and
    /// zeroing a fresh one per connection costs more than the rest of a short one's
    /// bookkeeping.
    pub fn into_buffer(mut self) -> Vec<u8> {
        self.buf.resize(self.read_size, 0);
        self.buf
    }

    /// The peer's address.
    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// Bytes echoed back so far.
    pub fn echoed(&self) -> u64 {
        self.echoed
    }

    /// What the connection waits for.
    pub fn want(&self) -> Want {
        match self.done {
            Some(o) => Want::Done(o),
            None if self.pending.is_empty() => Want::Read,
            None => Want::Write,
        }
    }

    /// One `read`, when [`Session::want`] is `Read`. An error is returned as is and changes
    /// nothing: the caller knows whether EAGAIN means "not yet" (non-blocking) or "idle
    /// timeout" (SO_RCVTIMEO), and calls [`Session::fail`] or [`Session::time_out`].
    pub fn read(&mut self, fd: &impl AsFd) -> Result<(), Errno> {
        debug_assert_eq!(self.want(), Want::Read);
        let n = sys::read(fd, &mut self.buf[..self.read_size])?;
        match (self.mode, n) {
            // Stopping: the thread model wakes its workers with shutdown(), which reads as EOF.
            (_, 0) if ffi::interrupted() => self.finish(Outcome::Interrupted),
            (Mode::Reply, 0) => self.finish(Outcome::Empty),
            (Mode::Echo, 0) => self.finish(Outcome::Answered),
            (Mode::Reply, n) => {
                let data = String::from_utf8_lossy(&self.buf[..n]);
                say_with("app.received", &[("data", &data)]);
                self.buf.clear();
                write_reply(&mut self.buf, self.peer);
                self.pending = 0..self.buf.len();
            }
            (Mode::Echo, n) => self.pending = 0..n,
        }
        Ok(())
    }

    /// One `write` of pending output, when [`Session::want`] is `Write`; a short write leaves
    /// the rest pending. Errors as for [`Session::read`].
    pub fn write(&mut self, fd: &impl AsFd) -> Result<(), Errno> {
        debug_assert_eq!(self.want(), Want::Write);
        let n = sys::write(fd, &self.buf[self.pending.clone()])?;
        self.pending.start += n;
        if self.mode == Mode::Echo {
            self.echoed += n as u64;
        }
        if self.pending.is_empty() {
            match self.mode {
                Mode::Reply => self.finish(Outcome::Answered),
                Mode::Echo => self.pending = 0..0,
            }
        }
        Ok(())
    }

    /// Ends the connection after a failed read or write.
    pub fn fail(&mut self, e: Errno) -> Outcome {
        self.finish(Outcome::Failed(e));
        Outcome::Failed(e)
    }

    /// Ends the connection after the idle timeout.
    pub fn time_out(&mut self) -> Outcome {
        self.finish(Outcome::TimedOut);
        Outcome::TimedOut
    }

    /// Ends the connection because of Ctrl-C.
    pub fn interrupt(&mut self) -> Outcome {
        self.finish(Outcome::Interrupted);
        Outcome::Interrupted
    }

    /// Records the end, once, and says what happened.
    fn finish(&mut self, o: Outcome) {
        if self.done.is_some() {
            return;
        }
        self.done = Some(o);
        // Printed without allocating: a fork child ends here.
        let peer = &self.peer;
        match o {
            Outcome::Answered if self.mode == Mode::Echo => match &self.echoed_line {
                Some(line) => line.say(self.echoed),
                None => say_with("app.echoed", &[("peer", peer), ("n", &self.echoed)]),
            },
            // The seed prints nothing after its reply.
            Outcome::Answered => {}
            Outcome::Empty => say_with("app.empty", &[("peer", peer)]),
            Outcome::TimedOut => say_with(
                "app.idle",
                &[
                    ("peer", peer),
                    ("secs", &self.idle.unwrap_or_default().as_secs_f64()),
                ],
            ),
            Outcome::Failed(e) => say_with(
                "app.conn_failed",
                &[("peer", peer), ("errno", &names::errno(e))],
            ),
            Outcome::Interrupted => {}
        }
    }
}

/// What the reply says before the peer's address: the seed's `"recieved well " + str(addr)`
/// (spelled right).
const REPLY: &str = "received well ";

/// The reply the server sends to `peer`.
pub fn reply_for(peer: &str) -> String {
    format!("{REPLY}{peer}")
}

/// Appends [`reply_for`]'s text to `buf` (the read buffer, so that no other is allocated).
fn write_reply(buf: &mut Vec<u8>, peer: Peer) {
    use std::io::Write as _;
    // Writing to a Vec cannot fail.
    let _ = write!(buf, "{REPLY}{peer}");
}

/// Sets SO_RCVTIMEO and SO_SNDTIMEO to `idle` (two setsockopt calls): a blocking read or write
/// that waits longer fails with EAGAIN. Nothing to do without a timeout.
pub fn set_idle_timeout(fd: &impl AsFd, idle: Option<Duration>) -> Result<(), Errno> {
    if idle.is_some() {
        sys::setsockopt(fd, SockOpt::RcvTimeout(idle))?;
        sys::setsockopt(fd, SockOpt::SndTimeout(idle))?;
    }
    Ok(())
}

/// Serves one connection on a blocking socket until it is over: reads and writes as the
/// session wants, the idle timeout from SO_RCVTIMEO/SO_SNDTIMEO (EAGAIN), Ctrl-C checked
/// between calls (a blocked call returns EINTR, or is woken by shutdown() from another
/// thread).
pub fn serve_blocking(fd: &OwnedFd, s: &mut Session, idle: Option<Duration>) -> Outcome {
    if let Err(e) = set_idle_timeout(fd, idle) {
        return s.fail(e);
    }
    loop {
        if ffi::interrupted() {
            return s.interrupt();
        }
        let res = match s.want() {
            Want::Read => s.read(fd),
            Want::Write => s.write(fd),
            Want::Done(o) => return o,
        };
        match res {
            Ok(()) | Err(Errno::EINTR) => {}
            // With SO_RCVTIMEO/SO_SNDTIMEO a blocking call that timed out says EAGAIN.
            Err(Errno::EAGAIN) => return s.time_out(),
            Err(e) => return s.fail(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::thread;

    fn peer(addr: &str) -> Peer {
        Peer(Some(addr.parse().unwrap()))
    }

    fn pair() -> (UnixStream, OwnedFd) {
        let (a, b) = UnixStream::pair().unwrap();
        (a, OwnedFd::from(b))
    }

    #[test]
    fn echo_sends_back_every_byte_until_eof() {
        let (mut client, server) = pair();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let sent = data.clone();
        let writer = {
            let mut c = client.try_clone().unwrap();
            thread::spawn(move || {
                for chunk in sent.chunks(7_001) {
                    c.write_all(chunk).unwrap();
                }
                c.shutdown(std::net::Shutdown::Write).unwrap();
            })
        };
        let worker = thread::spawn(move || {
            let mut s = Session::new(Mode::Echo, Peer(None), 4096, None);
            let o = serve_blocking(&server, &mut s, None);
            (o, s.echoed())
        });
        let mut back = Vec::new();
        client.read_to_end(&mut back).unwrap();
        writer.join().unwrap();
        let (o, echoed) = worker.join().unwrap();
        assert_eq!(o, Outcome::Answered);
        assert_eq!(echoed, data.len() as u64);
        assert!(back == data, "the echo differs from what was sent");
    }

    #[test]
    fn reply_reads_once_and_answers() {
        let (mut client, server) = pair();
        client.write_all(b"hello").unwrap();
        let mut s = Session::new(Mode::Reply, peer("1.2.3.4:5"), 1024, None);
        assert_eq!(serve_blocking(&server, &mut s, None), Outcome::Answered);
        drop(server);
        let mut back = String::new();
        client.read_to_string(&mut back).unwrap();
        assert_eq!(back, "received well 1.2.3.4:5");
    }

    #[test]
    fn reply_to_a_silent_close_is_empty() {
        let (client, server) = pair();
        drop(client);
        let mut s = Session::new(Mode::Reply, Peer(None), 1024, None);
        assert_eq!(serve_blocking(&server, &mut s, None), Outcome::Empty);
    }

    #[test]
    fn a_silent_client_times_out() {
        let (_client, server) = pair();
        let idle = Some(Duration::from_millis(50));
        let mut s = Session::new(Mode::Echo, Peer(None), 1024, idle);
        let start = std::time::Instant::now();
        assert_eq!(serve_blocking(&server, &mut s, idle), Outcome::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(45));
    }

    #[test]
    fn a_full_send_buffer_leaves_the_rest_pending() {
        // A non-blocking socket whose peer does not read: the echo cannot all go out, the
        // session keeps the rest and wants to write (the epoll model then waits for EPOLLOUT).
        let (mut client, server) = pair();
        sys::set_nonblocking(&server, true).unwrap();
        nix::sys::socket::setsockopt(&server, nix::sys::socket::sockopt::SndBuf, &4096).unwrap();
        client.set_nonblocking(true).unwrap();
        let fed = client.write(&vec![7u8; 1 << 20]).unwrap();
        let mut s = Session::new(Mode::Echo, Peer(None), 1 << 20, None);
        let (mut back, mut stalled) = (0, false);
        let mut sink = vec![0u8; 1 << 20];
        while (s.echoed() as usize) < fed {
            match s.want() {
                Want::Read => s.read(&server).unwrap(),
                Want::Write => match s.write(&server) {
                    Ok(()) => {}
                    Err(Errno::EAGAIN) => {
                        stalled = true;
                        assert_eq!(s.want(), Want::Write, "the rest stays pending");
                        back += client.read(&mut sink).unwrap();
                    }
                    Err(e) => panic!("write: {e}"),
                },
                Want::Done(o) => panic!("done early: {o:?}"),
            }
        }
        while let Ok(n) = client.read(&mut sink) {
            back += n;
        }
        assert!(stalled, "the server's send buffer never filled up");
        assert_eq!(back, fed);
        assert_eq!(s.want(), Want::Read);
    }

    #[test]
    fn exit_codes_round_trip() {
        for o in [
            Outcome::Answered,
            Outcome::TimedOut,
            Outcome::Empty,
            Outcome::Interrupted,
        ] {
            assert_eq!(Outcome::from_exit_code(o.exit_code()), o);
        }
        assert_eq!(Outcome::Failed(Errno::EPIPE).exit_code(), 1);
    }
}
