//! One reactor thread: a `mio::Poll`, its own listeners (SO_REUSEPORT), a
//! slab of connections, a buffer pool and a deadline queue. Edge-triggered
//! throughout; nothing here blocks except `poll` itself.

use crate::connection::{Closed, Conn, End, Flow};
use crate::core::{Core, Shared};
use crate::fds;
use crate::lanes::{Lanes, BULK_NICE, FRONT_SLICE_NS};
use crate::mailbox::Receiver;
use crate::resolver::Answer;
use crate::spin::Spin;
use crate::token::{self, Owner, Role};
use log::{debug, error, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll};
use slab::Slab;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long accepting pauses when the process is out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
const EMFILE_LOG_EVERY: Duration = Duration::from_secs(60);

/// One thread's event loop and the connections it owns.
pub(crate) struct Reactor {
    poll: Poll,
    listeners: Vec<TcpListener>,
    conns: Slab<Conn>,
    answers: Receiver<Answer>,
    /// Context steps back from the GSS-API worker.
    #[cfg(feature = "gssapi")]
    pub(crate) gss_answers: Option<Receiver<crate::gss::worker::Done>>,
    /// The last counters request this thread answered.
    stats_seen: usize,
    core: Core,
    next_id: u64,
    accept_paused: Option<Instant>,
    /// When running out of descriptors was last logged (once a minute at most).
    emfile_logged: Option<Instant>,
    /// Where relays are handed (see lanes.rs).
    pub(crate) lanes: Arc<Lanes>,
    /// Relays handed to this thread, taken from its inbox (see lanes.rs).
    arrived: Vec<Conn>,
    /// Polling on after work (see spin.rs); accepting reactors only.
    spin: Spin,
}

impl Reactor {
    pub(crate) fn new(
        index: usize,
        poll: Poll,
        mut listeners: Vec<TcpListener>,
        answers: Receiver<Answer>,
        shared: Arc<Shared>,
    ) -> std::io::Result<Reactor> {
        for (i, l) in listeners.iter_mut().enumerate() {
            poll.registry().register(l, token::listener(i), Interest::READABLE)?;
        }
        Ok(Reactor {
            poll,
            listeners,
            conns: Slab::with_capacity(1024),
            answers,
            #[cfg(feature = "gssapi")]
            gss_answers: None,
            stats_seen: 0,
            next_id: 0,
            accept_paused: None,
            emfile_logged: None,
            lanes: Arc::default(),
            arrived: Vec::new(),
            spin: Spin::new(shared.cfg.busy_poll),
            core: Core::new(index, shared),
        })
    }

    /// Makes this reactor bulk lane `i`: no listener, lower priority.
    pub(crate) fn lane(&mut self, i: usize) {
        self.core.lane = Some(i);
        // A lane's work is bulk, which a spin would not hurry.
        self.spin = Spin::new(Duration::ZERO);
    }

    /// Hands the GSS-API worker's answers to their connections (a
    /// connection closed meanwhile just drops its context).
    #[cfg(feature = "gssapi")]
    fn gss_answers(&mut self) {
        while let Some(d) = self.gss_answers.as_ref().and_then(Receiver::try_recv) {
            let key = d.key;
            let flow = match self.conns.get_mut(key) {
                Some(c) if c.id() == d.id => c.on_gss(d, &mut self.core, self.poll.registry()),
                _ => Ok(()),
            };
            if let Err(why) = flow {
                self.close(key, why);
            }
        }
    }

    pub(crate) fn run(mut self) {
        if self.core.lane.is_some() {
            crate::sys::lower_thread_priority(BULK_NICE);
        } else if !self.lanes.is_empty() {
            // Without lanes this thread may carry bulk itself, and a hog
            // with a short slice only switches more often.
            crate::sys::request_slice(FRONT_SLICE_NS);
        }
        let mut events = Events::with_capacity(1024);
        let mut resume: Vec<(usize, u64)> = Vec::with_capacity(256);
        while !self.core.shared.stop.load(Ordering::Acquire) {
            let (timeout, spinning) = self.spin.timeout(self.core.now, self.timeout(), || self.lanes.busy());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                error!("poll failed: {e}");
                break;
            }
            self.core.now = Instant::now();
            self.spin.polled(self.core.now, !events.is_empty());
            if spinning && events.is_empty() && self.core.ready.is_empty() {
                // Whatever else this CPU has to run (the peer about to
                // answer, a bulk lane) goes first.
                std::thread::yield_now();
                let back = Instant::now();
                self.spin.yielded(back, back.saturating_duration_since(self.core.now));
            }
            for ev in events.iter() {
                match token::decode(ev.token()) {
                    Owner::Waker | Owner::Unknown => {}
                    Owner::Listener(i) => {
                        if self.accept_paused.is_none() {
                            self.accept(i);
                        }
                    }
                    Owner::Conn(key, role) => {
                        if let Some(c) = self.conns.get_mut(key) {
                            let flow = c.on_event(role, ev, &mut self.core, self.poll.registry());
                            self.settle(key, flow);
                        }
                    }
                }
            }
            while let Some(a) = self.answers.try_recv() {
                let reg = self.poll.registry();
                let key = a.key;
                let flow = match self.conns.get_mut(key) {
                    Some(c) if c.id() == a.id => c.on_resolved(a, &mut self.core, reg),
                    _ => Ok(()),
                };
                self.settle(key, flow);
            }
            #[cfg(feature = "gssapi")]
            self.gss_answers();
            self.adopt();
            self.answer_stats();
            // Connections that yielded: swap lists so that ones yielding
            // again land in the next round, not this one.
            std::mem::swap(&mut resume, &mut self.core.ready);
            for (key, id) in resume.drain(..) {
                if let Some(c) = self.conns.get_mut(key).filter(|c| c.id() == id) {
                    let flow = c.resume(&mut self.core, self.poll.registry());
                    self.settle(key, flow);
                }
            }
            self.expire();
        }
        self.lanes.close(self.core.index, &mut self.arrived);
        while let Some(c) = self.arrived.pop() {
            self.end(c, Closed::Shutdown);
        }
        match self.core.lane {
            Some(i) => debug!("bulk thread {i} stopping with {} connections", self.conns.len()),
            None => debug!("reactor {} stopping with {} connections", self.core.index, self.conns.len()),
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.close(k, Closed::Shutdown);
        }
    }

    /// Adds this thread's counters to a pending request (SIGUSR1), once per
    /// request: an atomic load per round otherwise.
    fn answer_stats(&mut self) {
        let gen = self.core.shared.stats_gen.load(Ordering::Acquire);
        if gen == self.stats_seen {
            return;
        }
        self.stats_seen = gen;
        let ask = self.core.shared.stats_ask.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(ask) = ask else { return };
        let mut snap = self.core.stats.clone();
        for (_, c) in self.conns.iter() {
            c.count_live(&mut snap);
        }
        let mut sum = ask.sum.lock().unwrap_or_else(|e| e.into_inner());
        sum.1.merge(&snap);
        sum.0 += 1;
        ask.done.notify_all();
    }

    fn timeout(&self) -> Option<Duration> {
        if !self.core.ready.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = match (self.core.timers.next(), self.accept_paused) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Round up to whole milliseconds so a due timer is not polled for
        // again and again with a zero timeout.
        next.map(|at| {
            // `now` was read at the end of the round, just before this.
            let d = at.saturating_duration_since(self.core.now);
            Duration::from_millis(crate::timer::millis(d, true))
        })
    }

    fn expire(&mut self) {
        let now = Instant::now();
        self.core.now = now;
        if self.accept_paused.is_some_and(|t| t <= now) {
            self.accept_paused = None;
            for i in 0..self.listeners.len() {
                self.accept(i);
            }
        }
        while let Some((at, key, id)) = self.core.timers.pop_due(now) {
            let reg = self.poll.registry();
            match self.conns.get_mut(key) {
                Some(c) if c.id() == id => {
                    let flow = c.on_timer(at, &mut self.core, reg);
                    self.settle(key, flow);
                }
                _ => {}
            }
        }
    }

    /// Accepts until the listener would block. Out of descriptors, it
    /// stops for [`ACCEPT_BACKOFF`] instead of spinning on a listener that
    /// stays readable, and says so once.
    fn accept(&mut self, i: usize) {
        loop {
            match self.listeners[i].accept() {
                Ok((sock, peer)) => self.admit(sock, peer),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::ConnectionAborted) => {}
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)) =>
                {
                    // The descriptor budget keeps socksd's own use below the
                    // limit; this is someone else's (or the system's) doing.
                    let now = Instant::now();
                    if self.emfile_logged.is_none_or(|t| now.duration_since(t) >= EMFILE_LOG_EVERY) {
                        self.emfile_logged = Some(now);
                        warn!("accept: {e}: out of descriptors; pausing accepts until some free up (raise the open-file limit or lower --max-conns)");
                    }
                    self.accept_paused = Some(now + ACCEPT_BACKOFF);
                    return;
                }
                Err(e) => {
                    warn!("accept: {e}");
                    return;
                }
            }
        }
    }

    /// Takes a new client in, or closes it at once: not in `--allow`,
    /// over `--max-conns-per-ip` or `--max-conns`, or no descriptor left in
    /// the budget (which a flood must not turn into EMFILE for everybody).
    fn admit(&mut self, mut sock: TcpStream, peer: SocketAddr) {
        let shared = self.core.shared.clone();
        let proxied = !shared.cfg.proxy_protocol.is_empty();
        let admitted = if proxied {
            // Behind a balancer, only the balancer connects, and the client's
            // own rules wait for the header that names it (connection/proxied.rs).
            shared.cfg.proxy_protocol.iter().any(|c| c.contains(peer.ip())).then_some(None).ok_or(4)
        } else {
            self.core.admit(peer.ip())
        };
        let slot = match admitted {
            Ok(slot) => slot,
            Err(why) => return self.core.turn_away(peer, why),
        };
        let Some(budget) = fds::take(1) else {
            self.core.stats.turned_away[3] += 1;
            let now = Instant::now();
            if self.emfile_logged.is_none_or(|t| now.duration_since(t) >= EMFILE_LOG_EVERY) {
                self.emfile_logged = Some(now);
                warn!("out of descriptors ({} in use): new clients are closed until some free up (raise the open-file limit or lower --max-conns)", fds::used());
            }
            return;
        };
        if shared.active.fetch_add(1, Ordering::AcqRel) >= shared.max_conns {
            shared.active.fetch_sub(1, Ordering::AcqRel);
            self.core.turn_away(peer, 2);
            return;
        }
        // TCP_NODELAY comes from the listener (see server.rs).
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            token::token(key, Role::Client),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            warn!("register: {e}");
            shared.active.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        // Unique in the process: the thread's count, interleaved with the
        // other threads' (thread i of n numbers i, n + i, 2n + i, ...).
        self.next_id += 1;
        let id = self.next_id * shared.cfg.threads as u64 + self.core.index as u64;
        self.core.stats.accepted += 1;
        let c = entry.insert(Conn::new(key, id, sock, budget, slot, peer, &mut self.core));
        if proxied {
            c.await_proxy_header();
        }
    }

    /// After a connection's turn or timer: closes it, or hands it on: to a
    /// bulk lane if the turn showed a bulk transfer on an accepting
    /// reactor, back to an accepting reactor if it went quiet on a lane.
    fn settle(&mut self, key: usize, flow: Flow) {
        if let Err(why) = flow {
            return self.close(key, why);
        }
        let Some(c) = self.conns.get(key) else { return };
        // Counted once handed over: a hand-off refused at shutdown closes
        // the connection instead.
        match self.core.lane {
            None if !self.lanes.is_empty() && c.wants_bulk_lane() => {
                let moved = self.hand_off(key, Lanes::to_lane, "a bulk lane");
                self.core.stats.bulk_moved += u64::from(moved);
            }
            Some(i) if c.wants_front() => {
                let moved = self.hand_off(key, Lanes::to_front, "an accepting reactor");
                self.core.stats.bulk_returned += u64::from(moved);
                if moved {
                    self.lanes.left(i);
                }
            }
            _ => {}
        }
    }

    /// Moves a relay to another thread; false if it was closed instead
    /// (and counted as closed here).
    fn hand_off(&mut self, key: usize, to: fn(&Lanes, Conn) -> Option<Conn>, place: &str) -> bool {
        let Some(mut c) = self.conns.try_remove(key) else { return false };
        if let Err(e) = c.detach(&self.core, self.poll.registry()) {
            warn!("deregister: {e}");
            self.end(c, Closed::Io(End::Client, e.kind()));
            return false;
        }
        debug!("#{} {} moves to {place}", c.id(), c.peer());
        match to(&self.lanes, c) {
            None => true,
            Some(c) => {
                // Only a stopped thread refuses: the server is shutting down.
                self.end(c, Closed::Shutdown);
                false
            }
        }
    }

    /// Takes in the relays handed to this thread since the last round.
    fn adopt(&mut self) {
        self.lanes.take(self.core.index, &mut self.arrived);
        while let Some(mut c) = self.arrived.pop() {
            let key = self.conns.vacant_key();
            match c.attach(key, &mut self.core, self.poll.registry()) {
                Ok(()) => {
                    self.conns.insert(c);
                }
                Err(e) => {
                    warn!("register: {e}");
                    self.end(c, Closed::Io(End::Client, e.kind()));
                }
            }
        }
    }

    /// Removes a connection: the one place where every close is logged,
    /// with its reason.
    fn close(&mut self, key: usize, why: Closed) {
        if let Some(c) = self.conns.try_remove(key) {
            self.end(c, why);
        }
    }

    fn end(&mut self, mut c: Conn, why: Closed) {
        c.arrive(&mut self.core);
        debug!("#{} {} closed: {}", c.id(), c.peer(), why);
        c.finish(why, &mut self.core);
        c.release(&mut self.core);
        self.core.shared.active.fetch_sub(1, Ordering::AcqRel);
        if let Some(i) = self.core.lane {
            self.lanes.left(i);
        }
    }
}
