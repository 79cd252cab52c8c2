//! socksd: a SOCKS4, SOCKS4a and SOCKS5 proxy server.
//!
//! The engine is a set of edge-triggered `mio` reactors, one per thread,
//! each with its own SO_REUSEPORT listener and a slab of per-connection
//! state machines relaying through fixed-size pooled buffers. Name
//! resolution runs on helper threads. The wire formats ([`socks4`],
//! [`socks5`]) are pure parsers, usable and testable on their own.

pub mod acl;
pub mod auth;
pub mod buffer;
pub mod clients;
pub mod config;
pub mod connection;
pub mod escape;
pub mod fatal;
pub mod fds;
pub mod host;
pub mod loadgen;
pub mod outbound;
pub mod parse;
pub mod pipe;
pub mod reactor;
pub mod relay;
pub mod reply;
pub mod resolver;
pub mod server;
pub mod signals;
pub mod socks4;
pub mod socks5;
pub mod timer;
pub mod udp;

pub use config::Config;
pub use server::Server;
