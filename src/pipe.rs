//! Pipes for the splice(2) relay path (Linux), lent from a per-thread
//! pool only while bytes are in flight.
//!
//! A splice relay moves bytes socket -> pipe -> socket inside the kernel,
//! without copying them through user space. A server that kept a pipe pair
//! per connection would spend six descriptors on each; here an idle relay
//! holds only its two sockets, and a pipe goes back to the pool as soon as
//! it is drained.

use crate::fds::{self, Fds};
use crate::sys::{self, splice};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Pipes open in this process (pooled or in use): two descriptors each.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// How many pipes are open right now, for accounting descriptors.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

pub struct Pipe {
    rd: OwnedFd,
    wr: OwnedFd,
    _budget: Fds,
}

impl Pipe {
    /// Fails without a syscall when the descriptor budget has no room for
    /// two more: the relay then copies instead.
    fn new(size: usize) -> io::Result<Pipe> {
        let budget = fds::take(2).ok_or_else(|| io::Error::from_raw_os_error(libc::EMFILE))?;
        let (rd, wr) = sys::pipe()?;
        if size > 0 {
            // Best effort: a larger pipe means fewer splice calls per byte.
            sys::set_pipe_size(wr.as_raw_fd(), size);
        }
        LIVE.fetch_add(1, Ordering::Relaxed);
        Ok(Pipe { rd, wr, _budget: budget })
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pipe {
    /// Socket -> pipe.
    pub fn fill(&self, sock: &impl AsRawFd, len: usize) -> io::Result<usize> {
        splice(sock.as_raw_fd(), self.wr.as_raw_fd(), len)
    }

    /// Pipe -> socket.
    pub fn drain(&self, sock: &impl AsRawFd, len: usize) -> io::Result<usize> {
        splice(self.rd.as_raw_fd(), sock.as_raw_fd(), len)
    }
}

pub struct PipePool {
    free: Vec<Pipe>,
    keep: usize,
    /// Bytes one fill may move; the pipe's capacity.
    pub chunk: usize,
}

impl PipePool {
    pub fn new(chunk: usize, keep: usize) -> PipePool {
        PipePool { free: Vec::with_capacity(keep), keep, chunk }
    }

    /// A pipe, or an error (e.g. out of descriptors: the caller copies
    /// instead).
    pub fn take(&mut self) -> io::Result<Pipe> {
        match self.free.pop() {
            Some(p) => Ok(p),
            None => Pipe::new(self.chunk),
        }
    }

    /// Returns an empty pipe. A pipe that still holds bytes must be dropped
    /// instead, never reused.
    pub fn give(&mut self, p: Pipe) {
        if self.free.len() < self.keep {
            self.free.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn moves_bytes_between_sockets() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        let l2 = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l2.local_addr().unwrap()).unwrap();
        let (mut d, _) = l2.accept().unwrap();
        let mut pool = PipePool::new(64 * 1024, 2);
        let p = pool.take().unwrap();
        a.write_all(b"spliced").unwrap();
        let mut n = 0;
        while n == 0 {
            n = match p.fill(&b, pool.chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => panic!("{e}"),
            };
        }
        assert_eq!(p.drain(&c, n).unwrap(), 7);
        let mut got = [0u8; 7];
        d.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"spliced");
        pool.give(p);
        assert!(pool.take().is_ok());
    }
}
