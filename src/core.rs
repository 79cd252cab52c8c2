//! What connection handlers may touch besides their own state: the
//! per-thread context ([`Core`]) and the process-wide state every thread
//! shares ([`Shared`]). Below the reactor, so that connections need not
//! know it.

use crate::auth::User;
use crate::buffer::Pool;
use crate::clients::{Clients, Kind, Slot};
use crate::config::Config;
use crate::host::{LocalCache, OnLink};
use crate::outbound::Source;
use crate::pipe::PipePool;
use crate::resolver::Resolver;
use crate::stats::{Collect, RateLimit, Stats};
use crate::timer::Timers;
use log::{debug, info};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// Spare buffers a thread keeps after a burst (1 MiB at the default
/// size); beyond that, returned buffers are freed.
const POOL_KEEP: usize = 64;
/// Capacity asked of each splice pipe, and how many idle pipes a thread
/// keeps (each is two descriptors).
const PIPE_SIZE: usize = 256 * 1024;
const PIPES_KEEP: usize = 32;
/// Scratch space for discarded input (and whole datagrams).
const SCRATCH: usize = 64 * 1024;
/// Most client IPs `--auth-once` remembers; the oldest are forgotten first.
const AUTH_ONCE_MAX: usize = 4096;

/// State every reactor thread shares. Read-mostly; the only writes are the
/// connection count and a users reload.
pub(crate) struct Shared {
    pub cfg: Config,
    pub source: Source,
    users: RwLock<Arc<Vec<User>>>,
    pub max_conns: usize,
    pub active: AtomicUsize,
    pub stop: AtomicBool,
    pub resolver: Resolver,
    /// Where the next `--udp-ports` search starts, so ports rotate.
    pub udp_cursor: AtomicUsize,
    /// What each client holds (`--max-conns-per-ip`, `--udp-ports-per-ip`).
    pub clients: Arc<Clients>,
    /// `--auth-once`: client IPs that authenticated, with the user, oldest
    /// first.
    authed: Mutex<VecDeque<(IpAddr, Box<[u8]>)>>,
    /// A pending request for the counters, and its number: a reactor that
    /// sees a number it has not served yet adds its snapshot.
    pub stats_ask: Mutex<Option<Arc<Collect>>>,
    pub stats_gen: AtomicUsize,
    /// `--gssapi`: the thread that accepts security contexts.
    #[cfg(feature = "gssapi")]
    pub gss: Option<crate::gss::worker::Worker>,
}

impl Shared {
    pub fn new(cfg: Config, users: Vec<User>, max_conns: usize, resolver: Resolver, clients: Arc<Clients>) -> Shared {
        let source = Source { addr: cfg.outgoing, iface: cfg.outgoing_iface.clone(), keepalive: cfg.keepalive };
        Shared {
            cfg,
            source,
            users: RwLock::new(Arc::new(users)),
            max_conns,
            active: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            resolver,
            udp_cursor: AtomicUsize::new(0),
            clients,
            authed: Mutex::new(VecDeque::new()),
            stats_ask: Mutex::new(None),
            stats_gen: AtomicUsize::new(0),
            #[cfg(feature = "gssapi")]
            gss: None,
        }
    }

    /// The user who last logged in from `ip`, if `--auth-once` knows it.
    pub fn auth_once_user(&self, ip: IpAddr) -> Option<Box<[u8]>> {
        let set = self.authed.lock().unwrap_or_else(|e| e.into_inner());
        set.iter().find(|(a, _)| *a == ip).map(|(_, u)| u.clone())
    }

    pub fn auth_once_remember(&self, ip: IpAddr, user: &[u8]) {
        let mut set = self.authed.lock().unwrap_or_else(|e| e.into_inner());
        match set.iter_mut().find(|(a, _)| *a == ip) {
            Some((_, u)) if **u == *user => {}
            Some((_, u)) => *u = user.into(),
            None => {
                if set.len() == AUTH_ONCE_MAX {
                    set.pop_front();
                }
                set.push_back((ip, user.into()));
            }
        }
    }

    /// Forgets the `--auth-once` addresses.
    pub fn forget_auth_once(&self) {
        self.authed.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The current users (a cheap handle; a reload swaps it).
    pub fn users(&self) -> Arc<Vec<User>> {
        self.users.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_users(&self, users: Vec<User>) {
        *self.users.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(users);
    }
}

/// One reactor thread's context, lent to the connection it is driving.
pub(crate) struct Core {
    pub shared: Arc<Shared>,
    pub index: usize,
    pub pool: Pool,
    /// Pipes for the splice path; `None` when it is off.
    pub pipes: Option<PipePool>,
    pub timers: Timers,
    /// Connections whose relay budget ran out, to resume next round.
    /// Keyed by slab key and connection id, like timer entries: an entry
    /// whose slot now holds another connection is skipped.
    pub ready: Vec<(usize, u64)>,
    pub now: Instant,
    pub scratch: Box<[u8]>,
    /// Bytes one direction may move before yielding to other connections.
    pub budget: usize,
    /// On a bulk lane: its number (see lanes.rs).
    pub lane: Option<usize>,
    /// Recent answers to "is this address the host itself?" (`self`).
    pub local: LocalCache,
    /// This host's IPv6 prefixes, for counting IPv6 clients.
    pub on_link: OnLink,
    /// This thread's counters (see stats.rs).
    pub stats: Stats,
    /// The rate limit on refusal and failed-login lines.
    pub limit: RateLimit,
}

impl Core {
    pub fn new(index: usize, shared: Arc<Shared>) -> Core {
        let size = shared.cfg.buffer_size;
        Core {
            index,
            pool: Pool::new(size, POOL_KEEP),
            pipes: shared.cfg.splice.then(|| PipePool::new(PIPE_SIZE, PIPES_KEEP)),
            timers: Timers::with_capacity(1024),
            ready: Vec::with_capacity(256),
            now: Instant::now(),
            scratch: vec![0u8; SCRATCH].into_boxed_slice(),
            // Per direction and round: four buffers' or pipes' worth.
            budget: 4 * if shared.cfg.splice { PIPE_SIZE } else { size.max(16 * 1024) },
            lane: None,
            local: LocalCache::default(),
            on_link: OnLink::default(),
            stats: Stats::default(),
            limit: RateLimit::default(),
            shared,
        }
    }

    /// The client `ip` is counted as (limits, the resolver's share).
    pub fn client_key(&mut self, ip: IpAddr) -> IpAddr {
        let (now, on_link) = (self.now, &mut self.on_link);
        crate::clients::client_key(ip, |v6| on_link.contains(v6, now))
    }

    /// Whether a client at `ip` is let in (`--allow`, then
    /// `--max-conns-per-ip`): its place, or why not as an index of
    /// [`crate::stats::TURNED_AWAY`].
    pub fn admit(&mut self, ip: IpAddr) -> Result<Option<Slot>, usize> {
        if !self.shared.cfg.acl.client_allowed(ip) {
            return Err(0);
        }
        let key = self.client_key(ip);
        self.shared.clients.take(key, Kind::Conn).map_err(|_| 1)
    }

    /// Counts a client closed at accept (`why` indexes
    /// [`crate::stats::TURNED_AWAY`]) and says so, rate-limited: at `-v`, and
    /// in the connection log, where a scan is what an owner wants to see.
    pub fn turn_away(&mut self, peer: SocketAddr, why: usize) {
        self.stats.turned_away[why] += 1;
        let word = crate::stats::TURNED_AWAY[why];
        // A client the limits turn away is said (an operator must know
        // why a host gets resets); one outside --allow only at -v, as a
        // scan would fill the log.
        let limits = why != 0;
        let logging = self.shared.cfg.log_connections || limits || log::log_enabled!(log::Level::Debug);
        if !logging {
            return;
        }
        if !self.limit.allow(Instant::now()) {
            self.stats.log_suppressed += 1;
            return;
        }
        let held = std::mem::take(&mut self.limit.held);
        if self.shared.cfg.log_connections {
            log::info!(target: "connlog", "conn id=- client={peer} end={word} suppressed={held}");
        } else if limits {
            let cap = match why {
                1 => format!("it holds {} connections, --max-conns-per-ip", self.shared.clients.max_conns()),
                2 => format!("{} connections are open, --max-conns", self.shared.max_conns),
                3 => "no descriptor left under the open-file limit".to_string(),
                _ => "not in --proxy-protocol-from".to_string(),
            };
            info!("{peer}: closed at accept: {word} ({cap}; {held} such lines suppressed)");
        } else {
            debug!("{peer}: closed at accept: {word} (suppressed {held})");
        }
    }

    /// The destination rules, `--deny-dest self` included, for `addr`.
    pub fn dest_allowed(&mut self, addr: SocketAddr) -> bool {
        let (now, local) = (self.now, &mut self.local);
        self.shared.cfg.acl.dest_allowed_at(addr, |a| local.is_local(a, now))
    }
}
