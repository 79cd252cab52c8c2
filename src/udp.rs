//! UDP ASSOCIATE (RFC 1928 §7): one association per TCP control
//! connection.
//!
//! Two kinds of socket: the relay socket faces the client (bound to the
//! local address the control connection came in on, so the client can reach
//! it) and accepts datagrams only from the client; the out sockets (one per
//! address family, opened on first use) face the targets. Keeping them apart
//! means a reply from a target on the client's own host is never mistaken
//! for a client datagram.
//!
//! Datagrams pass through the reactor's scratch buffer: relaying one
//! allocates nothing. Only the first datagram to a name not yet resolved
//! is copied, and parked until the resolver answers.
//!
//! Replies: by default only from addresses the client has sent to (the
//! last [`SENT_MEMORY`] of them), like an address-restricted NAT, so that
//! nobody who merely learns the relay port can inject datagrams; with
//! `--udp-full-cone`, from anybody. Either way a reply from an address the
//! destination rules deny is dropped.

use crate::clients::{Kind, Slot};
use crate::core::{Core, Shared};
use crate::fds::{self, Fds};
use crate::parse::Addr;
use crate::resolver::Job;
use crate::socks5;
use crate::token::{token, Role};
use mio::net::UdpSocket;
use mio::{Interest, Registry};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, ErrorKind};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;

/// Room kept in front of a reply datagram for its header (IPv6: 22 bytes).
pub const HEADROOM: usize = 22;
/// Datagrams handled per socket before yielding to other connections.
const BUDGET: usize = 64;
/// Names an association remembers.
const NAME_CACHE: usize = 4;
/// Destination addresses an association remembers for admitting replies.
pub const SENT_MEMORY: usize = 16;

/// A datagram waiting for its destination name to resolve.
struct Parked {
    name: Box<str>,
    port: u16,
    data: Box<[u8]>,
}

/// A UDP socket, its share of the descriptor budget, and whether the last
/// event said it is readable.
struct Udp {
    sock: UdpSocket,
    readable: bool,
    _budget: Fds,
}

pub(crate) struct Assoc {
    relay: Udp,
    out4: Option<Udp>,
    out6: Option<Udp>,
    client_ip: IpAddr,
    /// The client as the limits and the resolver count it.
    client_key: IpAddr,
    /// Learned from the first datagram unless the request named it.
    client_port: Option<u16>,
    names: [Option<(Box<str>, IpAddr)>; NAME_CACHE],
    next_name: usize,
    parked: Option<Parked>,
    /// Where the client has sent to, newest replacing oldest.
    sent: [Option<IpAddr>; SENT_MEMORY],
    next_sent: usize,
    /// This client's share of `--udp-ports`, when that is limited.
    _port_slot: Option<Slot>,
    counts: UdpCounts,
}

/// Datagrams and payload bytes each way, and datagrams dropped.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct UdpCounts {
    pub dgrams_up: u64,
    pub dgrams_down: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub dropped: u64,
}

fn no_budget() -> io::Error {
    io::Error::other("out of descriptors (the budget below the open-file limit is spent)")
}

fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&SockAddr::from(addr))?;
    Ok(UdpSocket::from_std(sock.into()))
}

/// Binds the relay socket, from `--udp-ports` when given. Ports in use are
/// skipped; a range with none free is an error (reply 0x01), not a wait.
fn bind_relay(ip: IpAddr, shared: &Shared) -> io::Result<UdpSocket> {
    let Some((lo, hi)) = shared.cfg.udp_ports else {
        return udp_socket(SocketAddr::new(ip, 0));
    };
    let n = (hi - lo) as usize + 1;
    let start = shared.udp_cursor.fetch_add(1, Ordering::Relaxed);
    for i in 0..n {
        let port = lo + ((start + i) % n) as u16;
        match udp_socket(SocketAddr::new(ip, port)) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(ErrorKind::AddrInUse, "--udp-ports range exhausted"))
}

/// IPv4-mapped IPv6 addresses name IPv4 hosts; compare and report them so.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

impl Assoc {
    /// `local_ip`: where the control connection came in; `client_ip`: its
    /// peer; `expect`: the request's DST, used for the source port only when
    /// it names the client's own IP (clients often send the target, or
    /// 0.0.0.0:0, or a NAT-private address there).
    ///
    /// A client holds at most `--udp-ports-per-ip` ports of a
    /// `--udp-ports` range, so one client cannot take them all.
    pub fn open(
        local_ip: IpAddr,
        client_ip: IpAddr,
        client_key: IpAddr,
        expect: Option<SocketAddr>,
        shared: &Shared,
    ) -> io::Result<Assoc> {
        let port_slot = match shared.cfg.udp_ports {
            Some(_) => shared.clients.take(client_key, Kind::UdpPort).map_err(|_| {
                io::Error::new(ErrorKind::AddrInUse, "this client holds its share of --udp-ports (--udp-ports-per-ip)")
            })?,
            None => None,
        };
        let budget = fds::take(1).ok_or_else(no_budget)?;
        let relay = bind_relay(local_ip, shared)?;
        let client_port = expect.map(canonical).filter(|e| e.ip() == client_ip && e.port() != 0).map(|e| e.port());
        Ok(Assoc {
            relay: Udp { sock: relay, readable: false, _budget: budget },
            out4: None,
            out6: None,
            client_ip,
            client_key,
            client_port,
            names: Default::default(),
            next_name: 0,
            parked: None,
            sent: [None; SENT_MEMORY],
            next_sent: 0,
            _port_slot: port_slot,
            counts: UdpCounts::default(),
        })
    }

    /// A lookup is waiting for the resolver (to be cancelled on close).
    pub fn resolving(&self) -> bool {
        self.parked.is_some()
    }

    pub fn relay_addr(&self) -> io::Result<SocketAddr> {
        self.relay.sock.local_addr()
    }

    pub fn register(&mut self, key: usize, reg: &Registry) -> io::Result<()> {
        reg.register(&mut self.relay.sock, token(key, Role::UdpRelay), Interest::READABLE)
    }

    pub fn mark(&mut self, role: Role) {
        let s = match role {
            Role::UdpRelay => Some(&mut self.relay),
            Role::UdpOut4 => self.out4.as_mut(),
            Role::UdpOut6 => self.out6.as_mut(),
            _ => None,
        };
        if let Some(s) = s {
            s.readable = true;
        }
    }

    /// Moves datagrams both ways until the sockets would block or the
    /// budget runs out. Returns (datagrams moved, budget ran out).
    pub fn pump(&mut self, key: usize, id: u64, core: &mut Core, reg: &Registry) -> (usize, bool) {
        let mut moved = 0;
        let mut n = 0;
        while self.relay.readable {
            if n == BUDGET {
                return (moved, true);
            }
            n += 1;
            match self.relay.sock.recv_from(&mut core.scratch) {
                Ok((len, from)) => moved += self.client_datagram(len, canonical(from), key, id, core, reg) as usize,
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.relay.readable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // An ICMP error queued on the socket; nothing to do.
                Err(_) => {}
            }
        }
        let mut more = false;
        for role in [Role::UdpOut4, Role::UdpOut6] {
            let (m, budget_out) = self.target_datagrams(role, core);
            moved += m;
            more |= budget_out;
        }
        (moved, more)
    }

    fn remember_sent(&mut self, ip: IpAddr) {
        if !self.sent.contains(&Some(ip)) {
            self.sent[self.next_sent] = Some(ip);
            self.next_sent = (self.next_sent + 1) % SENT_MEMORY;
        }
    }

    fn dropped(&mut self) -> bool {
        self.counts.dropped += 1;
        false
    }

    /// What this association has relayed and dropped so far.
    pub fn counts(&self) -> &UdpCounts {
        &self.counts
    }

    /// One datagram from the relay socket, in `core.scratch[..len]`.
    fn client_datagram(
        &mut self,
        len: usize,
        from: SocketAddr,
        key: usize,
        id: u64,
        core: &mut Core,
        reg: &Registry,
    ) -> bool {
        if from.ip() != self.client_ip || self.client_port.is_some_and(|p| p != from.port()) {
            return self.dropped();
        }
        let (to, off) = {
            let dgram = &core.scratch[..len];
            let Some((hdr, off)) = socks5::parse_udp_header(dgram) else {
                return self.dropped();
            };
            // No reassembly: RFC 1928 §7 lets such a server drop fragments.
            if hdr.frag != 0 {
                return self.dropped();
            }
            self.client_port = Some(from.port());
            match hdr.dst {
                Addr::Ip(sa) => (sa, off),
                Addr::Domain(name, port) => {
                    let Ok(name) = std::str::from_utf8(name) else { return self.dropped() };
                    if let Ok(ip) = name.parse::<IpAddr>() {
                        (SocketAddr::new(ip, port), off)
                    } else if let Some(ip) = self.cached(name) {
                        (SocketAddr::new(ip, port), off)
                    } else {
                        return self.park(name, port, &dgram[off..], key, id, core);
                    }
                }
            }
        };
        if !core.dest_allowed(to) {
            return self.dropped();
        }
        self.send_out(to, &core.scratch[off..len], key, core, reg)
    }

    fn cached(&self, name: &str) -> Option<IpAddr> {
        self.names.iter().flatten().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, ip)| *ip)
    }

    /// Keeps one datagram while its name resolves; others meanwhile drop.
    fn park(&mut self, name: &str, port: u16, data: &[u8], key: usize, id: u64, core: &Core) -> bool {
        if self.parked.is_some() {
            return self.dropped();
        }
        let job = Job { name: name.into(), port, reactor: core.index, key, id, client: self.client_key, race: false };
        if core.shared.resolver.submit(job, core.now).is_err() {
            return self.dropped();
        }
        self.parked = Some(Parked { name: name.into(), port, data: data.into() });
        false
    }

    pub fn on_resolved(
        &mut self,
        result: Result<Vec<SocketAddr>, crate::reply::Reply>,
        key: usize,
        core: &mut Core,
        reg: &Registry,
    ) {
        let Some(p) = self.parked.take() else { return };
        match result.ok().and_then(|v| v.first().copied()) {
            Some(addr) => {
                self.names[self.next_name] = Some((p.name, addr.ip()));
                self.next_name = (self.next_name + 1) % NAME_CACHE;
                let to = SocketAddr::new(addr.ip(), p.port);
                if core.dest_allowed(to) {
                    self.send_out(to, &p.data, key, core, reg);
                } else {
                    self.dropped();
                }
            }
            None => {
                self.dropped();
            }
        }
    }

    /// The out socket for `to`'s family, opened on first use through
    /// `--outgoing-iface` and from `--outgoing` (a source of the other
    /// family cannot reach `to`: the datagram is dropped).
    fn out_socket(&mut self, to: SocketAddr, key: usize, core: &Core, reg: &Registry) -> io::Result<&UdpSocket> {
        let (slot, role) = if to.is_ipv4() { (&mut self.out4, Role::UdpOut4) } else { (&mut self.out6, Role::UdpOut6) };
        if slot.is_none() {
            let budget = fds::take(1).ok_or_else(no_budget)?;
            let any = if to.is_ipv4() { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) };
            let sock = Socket::new(Domain::for_address(to), Type::DGRAM.nonblocking(), Some(Protocol::UDP))?;
            if to.is_ipv6() {
                sock.set_only_v6(true)?;
            }
            let src = &core.shared.source;
            src.apply(&sock, to.is_ipv4(), 0)?;
            if src.addr.is_none() {
                sock.bind(&SockAddr::from(SocketAddr::new(any, 0)))?;
            }
            let mut sock = UdpSocket::from_std(sock.into());
            reg.register(&mut sock, token(key, role), Interest::READABLE)?;
            *slot = Some(Udp { sock, readable: false, _budget: budget });
        }
        Ok(&slot.as_ref().expect("just opened").sock)
    }

    /// Sends to a destination the rules have already admitted.
    fn send_out(&mut self, to: SocketAddr, data: &[u8], key: usize, core: &Core, reg: &Registry) -> bool {
        match self.out_socket(to, key, core, reg).and_then(|s| s.send_to(data, to)) {
            Ok(n) => {
                self.remember_sent(to.ip().to_canonical());
                self.counts.dgrams_up += 1;
                self.counts.bytes_up += n as u64;
                true
            }
            // UDP is lossy: a full socket buffer drops, as a router would.
            Err(_) => self.dropped(),
        }
    }

    /// Replies from targets, wrapped in a header naming their source and
    /// sent to the client.
    fn target_datagrams(&mut self, role: Role, core: &mut Core) -> (usize, bool) {
        let (mut moved, mut n) = (0, 0);
        loop {
            let Some(out) = (if role == Role::UdpOut4 { self.out4.as_mut() } else { self.out6.as_mut() }) else {
                return (moved, false);
            };
            if !out.readable {
                return (moved, false);
            }
            if n == BUDGET {
                return (moved, true);
            }
            n += 1;
            let (len, src) = match out.sock.recv_from(&mut core.scratch[HEADROOM..]) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    out.readable = false;
                    continue;
                }
                Err(_) => continue,
            };
            let src = canonical(src);
            let admitted = core.shared.cfg.udp_full_cone || self.sent.contains(&Some(src.ip()));
            let Some(port) = self.client_port.filter(|_| admitted && core.dest_allowed(src)) else {
                self.dropped();
                continue;
            };
            let hlen = if src.is_ipv4() { 10 } else { 22 };
            let start = HEADROOM - hlen;
            socks5::encode_udp_header(src, &mut core.scratch[start..HEADROOM]);
            let to = SocketAddr::new(self.client_ip, port);
            match self.relay.sock.send_to(&core.scratch[start..HEADROOM + len], to) {
                Ok(_) => {
                    moved += 1;
                    self.counts.dgrams_down += 1;
                    self.counts.bytes_down += len as u64;
                }
                Err(_) => {
                    self.dropped();
                }
            }
        }
    }
}
