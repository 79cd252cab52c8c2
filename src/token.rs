//! The token layout: which socket of which connection a readiness event is
//! for.
//!
//! ```text
//!   usize::MAX              the reactor's waker
//!   LISTENER_BASE + i       listener i of this thread
//!   key << ROLE_BITS | role a connection's socket (key: its slab index)
//! ```
//!
//! Roles 0 to 5 are the sockets a connection keeps; 8 to 15 the attempts
//! of a CONNECT racing its addresses (Happy Eyeballs, up to
//! [`ATTEMPT_ROLES`] at once).
//!
//! Every socket of a connection has its own token, so an event names the
//! socket without a lookup.

use mio::Token;

const ROLE_BITS: u32 = 4;
/// The first role number of the CONNECT attempts, and how many there are.
const ATTEMPT_BASE: usize = 8;
pub(crate) const ATTEMPT_ROLES: usize = (1 << ROLE_BITS) - ATTEMPT_BASE;
const ROLE_MASK: usize = (1 << ROLE_BITS) - 1;
/// Listener tokens sit at the top of the token space, far above any
/// connection token a slab can produce.
const LISTENER_BASE: usize = usize::MAX / 2;

/// The reactor's waker (stop requests, resolver answers).
pub(crate) const WAKER: Token = Token(usize::MAX);

/// Which socket of a connection an event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The client's TCP connection.
    Client,
    /// The CONNECT target, or the peer a BIND accepted.
    Target,
    /// The BIND listener.
    Listener,
    /// UDP: the socket facing the client.
    UdpRelay,
    /// UDP: the sockets facing IPv4 and IPv6 targets.
    UdpOut4,
    UdpOut6,
    /// CONNECT: attempt `i` to one of the target's addresses.
    Attempt(u8),
}

const ROLES: [Role; 6] = [Role::Client, Role::Target, Role::Listener, Role::UdpRelay, Role::UdpOut4, Role::UdpOut6];

impl Role {
    fn number(self) -> usize {
        match self {
            Role::Attempt(i) => ATTEMPT_BASE + usize::from(i),
            r => ROLES.iter().position(|&x| x == r).unwrap_or(ROLE_MASK),
        }
    }
}

/// What a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    Waker,
    Listener(usize),
    Conn(usize, Role),
    /// A role number no socket is registered with.
    Unknown,
}

/// The token of connection `key`'s socket in `role`.
pub(crate) fn token(key: usize, role: Role) -> Token {
    Token(key << ROLE_BITS | role.number())
}

/// The token of this thread's `i`th listener.
pub(crate) fn listener(i: usize) -> Token {
    Token(LISTENER_BASE + i)
}

pub(crate) fn decode(t: Token) -> Owner {
    match t.0 {
        usize::MAX => Owner::Waker,
        t if t >= LISTENER_BASE => Owner::Listener(t - LISTENER_BASE),
        t => match (t & ROLE_MASK, ROLES.get(t & ROLE_MASK)) {
            (_, Some(&role)) => Owner::Conn(t >> ROLE_BITS, role),
            (n, None) if n >= ATTEMPT_BASE => Owner::Conn(t >> ROLE_BITS, Role::Attempt((n - ATTEMPT_BASE) as u8)),
            _ => Owner::Unknown,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for key in [0, 1, 1000, (LISTENER_BASE >> ROLE_BITS) - 1] {
            for role in ROLES.into_iter().chain((0..ATTEMPT_ROLES as u8).map(Role::Attempt)) {
                assert_eq!(decode(token(key, role)), Owner::Conn(key, role));
            }
        }
        assert_eq!(decode(WAKER), Owner::Waker);
        assert_eq!(decode(listener(2)), Owner::Listener(2));
        assert_eq!(decode(Token(7)), Owner::Unknown);
    }
}
