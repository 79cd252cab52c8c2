//! Starting and stopping the server: listeners, reactor threads, resolver
//! pool. The binary and the tests both go through [`Server`].

use crate::auth::User;
use crate::clients::Clients;
use crate::config::Config;
use crate::core::Shared;
use crate::fds;
use crate::lanes::Lanes;
use crate::listen::{listen_on, Claim};
use crate::reactor::Reactor;
use crate::resolver::{self, Outlet, Resolver};
use crate::settings::Limits;
use crate::stats::{Collect, Stats};
use crate::token::WAKER;
use log::{info, warn};
use mio::net::TcpListener;
use mio::{Poll, Waker};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running server. Dropping it stops it.
pub struct Server {
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    wakers: Vec<Arc<Waker>>,
    started: Instant,
    threads: Vec<JoinHandle<()>>,
    /// "socksd serves this address", held while the server runs.
    _claims: Vec<Claim>,
}

impl Server {
    /// Checks what the flags name that only the server's libraries can
    /// open: with `--gssapi`, the keytab's keys for the service (read
    /// once more at start). `--check` and the binary call it before
    /// starting, so an unusable keytab is a bad flag (exit 2).
    pub fn check(cfg: &Config) -> Result<(), String> {
        #[cfg(feature = "gssapi")]
        if let Some(g) = &cfg.gssapi {
            crate::gss::Cred::acceptor(g.keytab.as_deref(), &g.service).map_err(|e| format!("--gssapi: {e}"))?;
        }
        #[cfg(not(feature = "gssapi"))]
        let _ = cfg;
        Ok(())
    }

    /// Binds the listeners and starts the reactor and resolver threads. Errors are the ones to
    /// report to the user: a bad configuration, an address in use.
    pub fn start(cfg: Config) -> io::Result<Server> {
        if cfg.listen.is_empty() || cfg.threads == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "need a listen address and a thread"));
        }
        crate::config::validate(&cfg).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let threads = cfg.threads;
        let mut listeners: Vec<Vec<TcpListener>> = (0..threads).map(|_| Vec::new()).collect();
        let mut addrs = Vec::with_capacity(cfg.listen.len());
        let mut claims = Vec::new();
        for &want in &cfg.listen {
            let (ls, addr, claim) = listen_on(want, threads, cfg.reuse_port, cfg.keepalive)?;
            for (l, per_thread) in ls.into_iter().zip(listeners.iter_mut()) {
                per_thread.push(l);
            }
            addrs.push(addr);
            claims.extend(claim);
        }

        // The accepting reactors, then the bulk lanes (lanes.rs): each a
        // reactor with a poll, a waker and a resolver outlet of its own.
        let lanes = cfg.lanes();
        let all = threads + lanes;
        let mut polls = Vec::with_capacity(all);
        let mut wakers = Vec::with_capacity(all);
        let mut outlets = Vec::with_capacity(all);
        let mut receivers = Vec::with_capacity(all);
        for _ in 0..all {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = crate::mailbox::channel();
            outlets.push(Outlet { tx, waker: waker.clone() });
            receivers.push(rx);
            wakers.push(waker);
            polls.push(poll);
        }
        let resolver = Resolver::start(outlets)?;

        let Limits { budget, max_conns, per_ip, udp_per_ip, .. } = Limits::of(&cfg, fds::nofile());
        fds::set_limit(budget);
        let users: Vec<User> = cfg.users.iter().chain(&cfg.file_users).cloned().collect();
        #[cfg(feature = "gssapi")]
        let authenticated = !users.is_empty() || cfg.gssapi.is_some();
        #[cfg(not(feature = "gssapi"))]
        let authenticated = !users.is_empty();
        let open_proxy =
            !authenticated && addrs.iter().any(|a| !a.ip().is_loopback()) && !cfg.acl.loopback_clients_only();
        #[cfg(feature = "gssapi")]
        let (gss, mut gss_rx) = gss_worker(&cfg, &wakers)?;
        #[allow(unused_mut)]
        let mut sh = Shared::new(cfg, users, max_conns, resolver, Clients::new(per_ip, udp_per_ip));
        #[cfg(feature = "gssapi")]
        {
            sh.gss = gss;
        }
        let shared = Arc::new(sh);

        // With lanes, every reactor has an inbox for relays handed to it.
        let shared_lanes = Arc::new(if lanes > 0 { Lanes::new(threads, &wakers) } else { Lanes::default() });
        let mut server = Server {
            addrs,
            shared: shared.clone(),
            wakers,
            started: Instant::now(),
            threads: Vec::new(),
            _claims: claims,
        };
        listeners.resize_with(all, Vec::new);
        for (i, ((poll, ls), rx)) in polls.into_iter().zip(listeners).zip(receivers).enumerate() {
            let mut reactor = Reactor::new(i, poll, ls, rx, shared.clone())?;
            reactor.lanes = shared_lanes.clone();
            #[cfg(feature = "gssapi")]
            {
                reactor.gss_answers = gss_rx.pop_front();
            }
            let name = if i < threads {
                format!("socksd-reactor{i}")
            } else {
                reactor.lane(i - threads);
                format!("socksd-bulk-{}", i - threads)
            };
            let h = crate::sys::spawn_named(&name, None, move || reactor.run())?;
            server.threads.push(h);
        }
        info!(
            "socksd {}: {threads} reactor threads, {lanes} bulk threads, resolver threads on demand (at most {}); up to {max_conns} connections ({}), {budget} descriptors",
            env!("CARGO_PKG_VERSION"),
            resolver::MAX_WORKERS,
            if per_ip == 0 { "no cap per client".to_string() } else { format!("{per_ip} per client") }
        );
        for a in &server.addrs {
            info!("listening on {a}");
        }
        if open_proxy {
            warn!("listening on a non-loopback address with no --user: this is an open proxy");
        }
        Ok(server)
    }

    /// The addresses actually bound (port 0 resolved), in --listen order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Client connections open right now.
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
    }

    /// UDP datagrams dropped so far (wrong source, fragments, bad headers,
    /// denied or unknown reply sources).
    pub fn udp_dropped(&self) -> u64 {
        self.stats().udp_dropped
    }

    /// The counters, summed over the reactor threads (each sends a snapshot
    /// of its own; a thread that does not answer within a second is left
    /// out). Live connections are counted with what they have moved so far.
    pub fn stats(&self) -> Stats {
        let ask = Arc::new(Collect::default());
        {
            // One request at a time; a newer one replaces an unanswered one.
            let mut slot = self.shared.stats_ask.lock().unwrap_or_else(|e| e.into_inner());
            *slot = Some(ask.clone());
            self.shared.stats_gen.fetch_add(1, Ordering::AcqRel);
        }
        for w in &self.wakers {
            let _ = w.wake();
        }
        let end = Instant::now() + Duration::from_secs(1);
        let mut g = ask.sum.lock().unwrap_or_else(|e| e.into_inner());
        while g.0 < self.threads.len() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            g = ask.done.wait_timeout(g, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        let mut sum = std::mem::take(&mut g.1);
        sum.uptime = self.started.elapsed();
        sum
    }

    /// Name lookups waiting for a resolver thread (running ones aside).
    #[doc(hidden)]
    pub fn resolver_queued(&self) -> usize {
        self.shared.resolver.queued()
    }

    /// The `--max-conns` in force (the default is derived from the open-file limit).
    pub fn max_conns(&self) -> usize {
        self.shared.max_conns
    }

    /// The users in force now.
    pub fn users(&self) -> Vec<User> {
        self.shared.users().to_vec()
    }

    /// Replaces the users; connections already past authentication are
    /// not affected.
    pub fn set_users(&self, users: Vec<User>) {
        self.shared.set_users(users);
        // Who may skip the password is earned against the old users.
        self.forget_auth_once();
    }

    /// Forgets the `--auth-once` addresses (SIGHUP does, users file or not).
    pub fn forget_auth_once(&self) {
        self.shared.forget_auth_once();
    }

    /// Stops every thread and closes every connection.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for w in &self.wakers {
            let _ = w.wake();
        }
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
        // Resolver threads are not joined: one may be stuck in getaddrinfo
        // for the resolver's whole timeout.
        self.shared.resolver.stop();
        #[cfg(feature = "gssapi")]
        if let Some(g) = &self.shared.gss {
            g.stop();
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addrs", &self.addrs).field("threads", &self.threads.len()).finish()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// `--gssapi`: the acceptor credentials (a missing or unreadable keytab
/// fails the start, not the first client), one per worker thread, and the
/// threads, with a channel to each reactor.
#[cfg(feature = "gssapi")]
#[allow(clippy::type_complexity)]
fn gss_worker(
    cfg: &Config,
    wakers: &[Arc<Waker>],
) -> io::Result<(
    Option<crate::gss::worker::Worker>,
    std::collections::VecDeque<crate::mailbox::Receiver<crate::gss::worker::Done>>,
)> {
    use crate::gss::worker::{Outlet, Worker};
    let Some(g) = &cfg.gssapi else { return Ok((None, Default::default())) };
    let creds = (0..crate::gss::worker::threads())
        .map(|_| crate::gss::Cred::acceptor(g.keytab.as_deref(), &g.service))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| io::Error::other(format!("--gssapi: {e}")))?;
    let mut outlets = Vec::new();
    let mut rxs = std::collections::VecDeque::new();
    for w in wakers {
        let (tx, rx) = crate::mailbox::channel();
        outlets.push(Outlet { tx, waker: w.clone() });
        rxs.push_back(rx);
    }
    info!("GSS-API: accepting as {} on {} threads (protection granted: {:?})", g.service, creds.len(), g.levels);
    Ok((Some(Worker::start(creds, outlets)?), rxs))
}
