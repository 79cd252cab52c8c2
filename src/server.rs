//! Starting and stopping the server: listeners, reactor threads, resolver
//! pool. The binary and the tests both go through [`Server`].

use crate::auth::User;
use crate::config::Config;
use crate::outbound::Source;
use crate::reactor::{Reactor, WAKER};
use crate::resolver::{Outlet, Resolver};
use log::{info, warn};
use mio::net::TcpListener;
use mio::{Poll, Waker};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

/// Resolver threads. getaddrinfo calls are short on a router's local
/// resolver; a few threads keep one slow name from holding up the rest.
const DNS_THREADS: usize = 4;
const BACKLOG: i32 = 1024;
/// Descriptors kept out of the default --max-conns for listeners, the
/// poll instances, resolver sockets and logging.
const FD_RESERVE: usize = 64;

/// State every reactor thread shares. Read-mostly; the only writes are the
/// connection count and a users reload.
pub struct Shared {
    pub cfg: Config,
    pub source: Source,
    users: RwLock<Arc<Vec<User>>>,
    pub max_conns: usize,
    pub active: AtomicUsize,
    pub stop: AtomicBool,
    pub resolver: Resolver,
    /// Where the next `--udp-ports` search starts, so ports rotate.
    pub udp_cursor: AtomicUsize,
    /// UDP datagrams dropped: wrong source, FRAG != 0, bad header, no route.
    pub udp_dropped: AtomicU64,
    /// `--auth-once`: client IPs that authenticated, oldest first.
    authed: Mutex<VecDeque<IpAddr>>,
}

/// Most client IPs `--auth-once` remembers; the oldest are forgotten first.
const AUTH_ONCE_MAX: usize = 4096;

impl Shared {
    pub fn auth_once_knows(&self, ip: IpAddr) -> bool {
        self.authed.lock().unwrap_or_else(|e| e.into_inner()).contains(&ip)
    }

    pub fn auth_once_remember(&self, ip: IpAddr) {
        let mut set = self.authed.lock().unwrap_or_else(|e| e.into_inner());
        if !set.contains(&ip) {
            if set.len() == AUTH_ONCE_MAX {
                set.pop_front();
            }
            set.push_back(ip);
        }
    }

    /// The current users (a cheap handle; a reload swaps it).
    pub fn users(&self) -> Arc<Vec<User>> {
        self.users.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A running server. Dropping it stops it.
pub struct Server {
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    wakers: Vec<Arc<Waker>>,
    threads: Vec<JoinHandle<()>>,
    dns_threads: Vec<JoinHandle<()>>,
}

fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    // Each reactor binds its own socket; the kernel spreads connections.
    sock.set_reuse_port(true)?;
    if addr.is_ipv6() {
        // [::]:1080 and 0.0.0.0:1080 can then be listened on side by side.
        sock.set_only_v6(true)?;
    }
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux:
    // one setsockopt here instead of one per client.
    sock.set_tcp_nodelay(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&SockAddr::from(addr))?;
    sock.listen(BACKLOG)?;
    Ok(TcpListener::from_std(sock.into()))
}

/// Two descriptors per relayed connection, less a reserve.
pub fn default_max_conns() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct we pass, which lives on our stack.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    let nofile = if ok { lim.rlim_cur as usize } else { 1024 };
    (nofile.saturating_sub(FD_RESERVE) / 2).max(1)
}

impl Server {
    pub fn start(cfg: Config) -> io::Result<Server> {
        if cfg.listen.is_empty() || cfg.threads == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "need a listen address and a thread"));
        }
        crate::config::validate(&cfg).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let threads = cfg.threads;
        let mut listeners: Vec<Vec<TcpListener>> = (0..threads).map(|_| Vec::new()).collect();
        let mut addrs = Vec::with_capacity(cfg.listen.len());
        for &want in &cfg.listen {
            let first = bind_listener(want).map_err(|e| io::Error::new(e.kind(), format!("listen on {want}: {e}")))?;
            // With port 0 the kernel picks a port; the other threads join it.
            let addr = first.local_addr()?;
            listeners[0].push(first);
            for l in listeners.iter_mut().skip(1) {
                l.push(bind_listener(addr)?);
            }
            addrs.push(addr);
        }

        let mut polls = Vec::with_capacity(threads);
        let mut wakers = Vec::with_capacity(threads);
        let mut outlets = Vec::with_capacity(threads);
        let mut receivers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = std::sync::mpsc::channel();
            outlets.push(Outlet { tx, waker: waker.clone() });
            receivers.push(rx);
            wakers.push(waker);
            polls.push(poll);
        }
        let (resolver, dns_threads) = Resolver::start(DNS_THREADS, outlets)?;

        let max_conns = cfg.max_conns.unwrap_or_else(default_max_conns);
        let users = Arc::new(cfg.users.iter().chain(&cfg.file_users).cloned().collect::<Vec<_>>());
        let source = Source { addr: cfg.outgoing, iface: cfg.outgoing_iface.clone() };
        let open_proxy = users.is_empty() && addrs.iter().any(|a| !a.ip().is_loopback());
        let shared = Arc::new(Shared {
            cfg,
            source,
            users: RwLock::new(users),
            max_conns,
            active: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            resolver,
            udp_cursor: AtomicUsize::new(0),
            udp_dropped: AtomicU64::new(0),
            authed: Mutex::new(VecDeque::new()),
        });

        let mut server = Server { addrs, shared: shared.clone(), wakers, threads: Vec::new(), dns_threads };
        for (i, ((poll, ls), rx)) in polls.into_iter().zip(listeners).zip(receivers).enumerate() {
            let reactor = Reactor::new(i, poll, ls, rx, shared.clone())?;
            let h = std::thread::Builder::new().name(format!("socksd-reactor-{i}")).spawn(move || reactor.run())?;
            server.threads.push(h);
        }
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

    /// UDP datagrams dropped so far (wrong source, fragments, bad headers).
    pub fn udp_dropped(&self) -> u64 {
        self.shared.udp_dropped.load(Ordering::Relaxed)
    }

    pub fn max_conns(&self) -> usize {
        self.shared.max_conns
    }

    /// Replaces the users; connections already past authentication are
    /// not affected.
    pub fn set_users(&self, users: Vec<User>) {
        *self.shared.users.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(users);
        // Who may skip the password is earned against the old users.
        self.shared.authed.lock().unwrap_or_else(|e| e.into_inner()).clear();
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
        self.shared.resolver.stop();
        for h in self.dns_threads.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
