//! One direction of a relay: bytes from a source socket to a destination
//! socket through one fixed buffer, with explicit edge-triggered readiness.
//!
//! Readiness is tracked per socket ([`Side`]): an edge-triggered event sets
//! the flag, and only `WouldBlock` clears it. A loop that stops early for any
//! other reason (buffer full, budget spent) leaves the flag set, so the work
//! is resumed without waiting for an edge that will never come.

use crate::buffer::{Buf, Pool};
use mio::net::TcpStream;
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;

/// A socket and what the last events said about it.
pub struct Side {
    pub sock: TcpStream,
    pub readable: bool,
    pub writable: bool,
}

impl Side {
    pub fn new(sock: TcpStream) -> Side {
        Side { sock, readable: false, writable: false }
    }

    /// Applies one event's readiness. Errors and hang-ups count as ready:
    /// the next read or write reports them.
    pub fn mark(&mut self, ev: &mio::event::Event) {
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            self.readable = true;
        }
        if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
            self.writable = true;
        }
    }
}

/// One direction's buffer and end-of-stream state.
#[derive(Default)]
pub struct Half {
    buf: Option<Buf>,
    start: usize,
    end: usize,
    /// The source returned EOF.
    pub eof: bool,
    /// `shutdown(Write)` has been sent to the destination.
    pub shut: bool,
}

/// What one [`Half::pump`] call did.
pub struct Pumped {
    pub bytes: usize,
    /// The budget ran out with work left: call again soon.
    pub more: bool,
}

impl Half {
    pub fn pending(&self) -> &[u8] {
        match &self.buf {
            Some(b) => &b[self.start..self.end],
            None => &[],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Both halves of the stream are finished: EOF read, everything written
    /// and the destination told.
    pub fn done(&self) -> bool {
        self.eof && self.shut && self.is_empty()
    }

    /// Drops `n` bytes from the front (the handshake parser consumed them).
    pub fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads once from `src` into the free space after the pending bytes,
    /// moving them to the front first if the tail is full. Used by the
    /// handshake. Returns `Ok(0)` on EOF, `WouldBlock` when drained.
    pub fn read_from(&mut self, src: &mut TcpStream, pool: &mut Pool) -> io::Result<usize> {
        let buf = self.buf.get_or_insert_with(|| pool.take());
        if self.end == buf.len() && self.start > 0 {
            buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == buf.len() {
            return Err(io::Error::new(ErrorKind::OutOfMemory, "handshake buffer full"));
        }
        let n = src.read(&mut buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Returns the buffer to the pool if it holds nothing.
    pub fn release_if_empty(&mut self, pool: &mut Pool) {
        if self.is_empty() {
            if let Some(b) = self.buf.take() {
                pool.give(b);
            }
        }
    }

    /// Returns the buffer to the pool whatever it holds (the connection is
    /// closing).
    pub fn release(&mut self, pool: &mut Pool) {
        if let Some(b) = self.buf.take() {
            pool.give(b);
        }
        self.start = 0;
        self.end = 0;
    }

    /// Moves bytes from `src` to `dst` until one of them would block, EOF
    /// is passed on, or `budget` bytes have been written. A full buffer
    /// stops reading (back-pressure): memory per direction never exceeds one
    /// buffer. Any error ends the relay.
    pub fn pump(&mut self, src: &mut Side, dst: &mut Side, pool: &mut Pool, budget: usize) -> io::Result<Pumped> {
        let mut bytes = 0;
        loop {
            if self.start < self.end {
                if !dst.writable {
                    break;
                }
                let buf = self.buf.as_ref().expect("pending bytes live in a buffer");
                match dst.sock.write(&buf[self.start..self.end]) {
                    Ok(0) => return Err(ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        bytes += n;
                        self.consume(n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => dst.writable = false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            if self.eof {
                if !self.shut {
                    self.shut = true;
                    // The peer may already be gone; the other direction
                    // reports that on its own.
                    let _ = dst.sock.shutdown(Shutdown::Write);
                }
                // A finished direction holds no buffer while the other
                // one carries on.
                self.release_if_empty(pool);
                break;
            }
            if !src.readable {
                self.release_if_empty(pool);
                break;
            }
            if bytes >= budget {
                return Ok(Pumped { bytes, more: true });
            }
            let buf = self.buf.get_or_insert_with(|| pool.take());
            match src.sock.read(&mut buf[..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end = n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => src.readable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Pumped { bytes, more: false })
    }
}
