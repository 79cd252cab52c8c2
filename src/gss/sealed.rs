//! The relay for connections that agreed integrity or confidentiality
//! (RFC 1961 §5): every message, the request and reply included, travels
//! as `VER 0x03 LEN gss_wrap(message)`. Bytes must pass through user
//! space to be wrapped, so splice is out; each direction has fixed
//! buffers sized for the largest token (LEN is two octets), made once per
//! connection. The GSS library allocates the output of each wrap and
//! unwrap itself; it is copied and released at once.

use super::Context;
use crate::gss_wire::{self as wire, Mtyp, HEADER, MAX_TOKEN};
use crate::parse::Parsed;
use crate::relay::{Fault, Pumped, Side};
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;

/// Plaintext per wrapped message toward the client.
const CHUNK: usize = 16 * 1024;

/// A byte window over a fixed buffer.
struct Window {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Window {
    fn new(size: usize) -> Window {
        Window { buf: vec![0; size].into_boxed_slice(), start: 0, end: 0 }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Moves what is pending to the front, for room at the end.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    fn room(&mut self) -> &mut [u8] {
        if self.end == self.buf.len() {
            self.compact();
        }
        &mut self.buf[self.end..]
    }

    /// Writes pending bytes to `dst` until done or it would block; `Ok`
    /// means nothing left or `dst` not writable.
    fn flush(&mut self, dst: &mut Side) -> io::Result<usize> {
        let mut sent = 0;
        while !self.is_empty() && dst.writable {
            match dst.sock.write(self.pending()) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    sent += n;
                    let short = n < self.end - self.start;
                    self.consume(n);
                    if short {
                        dst.writable = false;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => dst.writable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }
}

/// Reads once from `src` into `w`; 0 is EOF. A short read proves the
/// queue drained, unless a FIN is pending behind it (see relay.rs).
fn read_once(src: &mut Side, w: &mut Window) -> io::Result<usize> {
    let room = w.room();
    let want = room.len();
    match src.sock.read(room) {
        Ok(n) => {
            w.end += n;
            if n > 0 && n < want && !src.read_closed {
                src.readable = false;
            }
            Ok(n)
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            src.readable = false;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// How far one direction's source has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Open,
    /// EOF read; what was read before it may still be on its way.
    Eof,
    /// Everything passed on and the other side's write half shut.
    Shut,
}

/// What a direction does once nothing is pending.
enum Refill {
    /// Read once more into the window: go on.
    Read,
    /// Nothing to read now, or the direction is finished.
    Stop,
    /// The round's budget is spent: resume next round.
    Yield,
}

/// The step both directions share once their buffers are empty: after
/// EOF, shut `dst`'s write half (once); else read once more from `src`
/// into `w` while readable and within `budget`.
fn refill(
    src: &mut Side,
    dst: &mut Side,
    w: &mut Window,
    end: &mut End,
    spent: usize,
    budget: usize,
) -> Result<Refill, Fault> {
    if *end != End::Open {
        if *end == End::Eof {
            *end = End::Shut;
            let _ = dst.sock.shutdown(Shutdown::Write);
        }
        return Ok(Refill::Stop);
    }
    if !src.readable {
        return Ok(Refill::Stop);
    }
    if spent >= budget {
        return Ok(Refill::Yield);
    }
    match read_once(src, w) {
        Ok(0) => *end = End::Eof,
        Ok(_) => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
        Err(e) => return Err(Fault::Read(e)),
    }
    Ok(Refill::Read)
}

/// A protected connection's context and buffers.
pub struct Sealed {
    ctx: Box<Context>,
    conf: bool,
    /// Client to target: frames as read, and their plaintext.
    up_in: Window,
    up_plain: Window,
    /// Target to client: plaintext as read, and frames to send.
    down_plain: Window,
    down_out: Window,
    up_end: End,
    down_end: End,
    /// The connection's control bytes are sealed into `down_out`, not yet
    /// all sent.
    pub ctl_sealed: bool,
}

fn bad(msg: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, msg)
}

impl Sealed {
    /// Buffers for an established context at the agreed level.
    pub fn new(ctx: Box<Context>, conf: bool) -> Result<Sealed, String> {
        let chunk = ctx.max_message(conf, MAX_TOKEN)?.clamp(1, CHUNK);
        Ok(Sealed {
            ctx,
            conf,
            up_in: Window::new(HEADER + MAX_TOKEN),
            up_plain: Window::new(MAX_TOKEN),
            down_plain: Window::new(chunk),
            down_out: Window::new(HEADER + MAX_TOKEN),
            up_end: End::Open,
            down_end: End::Open,
            ctl_sealed: false,
        })
    }

    /// Takes raw bytes read during the handshake (the request's frames);
    /// returns how many fitted.
    pub fn take_raw(&mut self, bytes: &[u8]) -> usize {
        let room = self.up_in.room();
        let n = bytes.len().min(room.len());
        room[..n].copy_from_slice(&bytes[..n]);
        self.up_in.end += n;
        n
    }

    /// Unwraps whole frames from the client into plaintext while there is
    /// room (a message is never longer than its token).
    fn open(&mut self) -> io::Result<()> {
        loop {
            let (len, used) = match wire::parse(self.up_in.pending(), Mtyp::Data, MAX_TOKEN) {
                Ok(Parsed::Incomplete) => return Ok(()),
                Err(e) => return Err(bad(format!("bad RFC 1961 message: {e:?}"))),
                Ok(Parsed::Done(tok, used)) => {
                    self.up_plain.compact();
                    let room = &mut self.up_plain.buf[self.up_plain.end..];
                    if room.len() < tok.len() {
                        return Ok(());
                    }
                    let (len, conf) = self.ctx.unwrap_into(tok, room).map_err(bad)?;
                    if self.conf && !conf {
                        return Err(bad("a message without the agreed confidentiality".into()));
                    }
                    (len, used)
                }
            };
            self.up_plain.end += len;
            self.up_in.consume(used);
        }
    }

    /// The request's plaintext so far, unwrapping what has arrived.
    pub fn request(&mut self) -> io::Result<&[u8]> {
        self.open()?;
        Ok(self.up_plain.pending())
    }

    /// Drops `n` bytes of request plaintext (the parser took them).
    pub fn consume_request(&mut self, n: usize) {
        self.up_plain.consume(n);
    }

    /// Wraps `msg` (a reply) into a frame queued for the client.
    pub fn seal(&mut self, msg: &[u8]) -> io::Result<()> {
        self.down_out.compact();
        let w = &mut self.down_out;
        let free = w.buf.len() - w.end;
        let t = self.ctx.wrap_into(self.conf, msg, &mut w.buf[w.end + HEADER..]).map_err(bad)?;
        if t + HEADER > free {
            return Err(bad("reply too long".into()));
        }
        w.buf[w.end..w.end + HEADER].copy_from_slice(&wire::header(Mtyp::Data, t));
        w.end += HEADER + t;
        Ok(())
    }

    /// Sends queued frames; `Ok(true)` when none are left.
    pub fn flush(&mut self, client: &mut Side) -> io::Result<bool> {
        self.down_out.flush(client)?;
        Ok(self.down_out.is_empty())
    }

    /// Both directions are finished.
    pub fn done(&self) -> bool {
        self.up_end == End::Shut && self.down_end == End::Shut
    }

    /// Client to target: read frames, unwrap, write plaintext. With
    /// `hold`, nothing is read from `src`: bytes read before (the
    /// handshake buffer's) are still to come first.
    pub fn pump_up(&mut self, src: &mut Side, dst: &mut Side, budget: usize, hold: bool) -> Result<Pumped, Fault> {
        let mut bytes = 0;
        loop {
            if !self.up_plain.is_empty() {
                if !dst.writable {
                    break;
                }
                bytes += self.up_plain.flush(dst).map_err(Fault::Write)?;
                continue;
            }
            self.open().map_err(Fault::Read)?;
            if !self.up_plain.is_empty() {
                continue;
            }
            if hold {
                break;
            }
            match refill(src, dst, &mut self.up_in, &mut self.up_end, bytes, budget)? {
                Refill::Read => {}
                Refill::Stop => break,
                Refill::Yield => return Ok(Pumped { bytes, more: true }),
            }
        }
        Ok(Pumped { bytes, more: false })
    }

    /// Target to client: read plaintext, wrap, write frames.
    pub fn pump_down(&mut self, src: &mut Side, dst: &mut Side, budget: usize) -> Result<Pumped, Fault> {
        let mut bytes = 0;
        loop {
            if !self.down_out.is_empty() {
                if !dst.writable {
                    break;
                }
                self.down_out.flush(dst).map_err(Fault::Write)?;
                continue;
            }
            if !self.down_plain.is_empty() {
                let n = self.down_plain.end - self.down_plain.start;
                let plain = &self.down_plain.buf[self.down_plain.start..self.down_plain.end];
                let w = &mut self.down_out;
                w.start = 0;
                let t = self.ctx.wrap_into(self.conf, plain, &mut w.buf[HEADER..]).map_err(|e| Fault::Read(bad(e)))?;
                w.buf[..HEADER].copy_from_slice(&wire::header(Mtyp::Data, t));
                w.end = HEADER + t;
                self.down_plain.consume(n);
                bytes += n;
                continue;
            }
            match refill(src, dst, &mut self.down_plain, &mut self.down_end, bytes, budget)? {
                Refill::Read => {}
                Refill::Stop => break,
                Refill::Yield => return Ok(Pumped { bytes, more: true }),
            }
        }
        Ok(Pumped { bytes, more: false })
    }
}
