//! socksd: a SOCKS4, SOCKS4a and SOCKS5 proxy server.
//!
//! The engine is a set of edge-triggered `mio` reactors, one per thread,
//! each with its own SO_REUSEPORT listener and a slab of per-connection
//! state machines relaying through fixed-size pooled buffers. Name
//! resolution runs on helper threads.
//!
//! The public API is what the binary, the tests and the fuzz targets need:
//! the wire formats ([`socks4`], [`socks5`]) and the [`handshake`]
//! decisions, pure and usable on their own; the configuration ([`config`],
//! [`acl`], [`auth`]); and the [`Server`]. `ARCHITECTURE.md` has the map.
//!
//! Modules are listed in layers; a module imports only from layers above
//! it in this list (`tests/layers.rs` checks).
#![warn(missing_docs, missing_debug_implementations)]

// Platform: the libc calls, each behind a safe function.
mod sys;

// Wire formats: pure parsers and encoders, no I/O.
pub mod escape;
pub mod parse;
pub mod reply;
pub mod socks4;
pub mod socks5;
// The PROXY protocol header a load balancer sends first.
pub mod proxy_header;
// What socksd says to an upstream proxy.
pub mod upstream_wire;
// RFC 1961's messages (the GSS-API method's calls are `gss`, below).
pub mod gss_wire;

// Policy: what is allowed, decided without I/O (config also reads files).
pub mod acl;
pub mod auth;
mod fair;
mod flags;
pub mod route;
mod values;

pub mod config;
pub mod handshake;

// I/O primitives: sockets, buffers, pipes, timers, the resolver pool.
mod buffer;
mod clients;
mod fds;
mod host;
mod mailbox;
mod outbound;
mod pipe;
mod relay;
// GSS-API calls and the protected relay (cargo feature `gssapi`).
#[cfg(feature = "gssapi")]
mod gss;
mod resolver;
mod spin;
mod timer;

// Listening sockets and their claims (set up as outbound.rs does).
mod listen;

// The engine's counters, shared context and token layout.
mod stats;

mod core;
mod token;

// Connections: UDP associations' datagrams, and the per-client state
// machine (which holds an association for UDP ASSOCIATE).
mod udp;

mod connection;
mod lanes;

// The event loop, one per thread.
mod reactor;

// Starting and stopping it all; and the process-wide panic rule the
// binary installs.
pub mod fatal;
pub mod settings;

pub mod server;

pub use config::Config;
pub use server::Server;
pub use stats::{Stats, UserStats};

/// The open-file limit socksd's descriptor budget comes from, as it
/// would be at start (the binary raises the soft limit to the hard one
/// first).
pub fn fds_limit() -> usize {
    fds::nofile()
}

/// Starts a named thread (the binary's log writer uses it); see
/// `sys::spawn_named` for why not `std::thread::Builder::name`.
pub fn spawn_named<F: FnOnce() + Send + 'static>(name: &str, f: F) -> std::io::Result<std::thread::JoinHandle<()>> {
    sys::spawn_named(name, None, f)
}

/// Hooks for the integration tests; not part of the API.
#[doc(hidden)]
pub mod testing {
    /// Splice pipes open in this process (two descriptors each).
    pub fn pipes_live() -> usize {
        crate::pipe::live()
    }

    /// The GSS-API client side and context, for the tests' RFC 1961 client.
    #[cfg(feature = "gssapi")]
    pub use crate::gss::{Context as GssContext, Initiator as GssInitiator};
}
