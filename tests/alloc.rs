//! Allocation counting: steady-state relaying allocates nothing, and a
//! handshake allocates at most a small constant.
//!
//! The counter is global, so this file holds a single test and everything
//! inside the measured windows (client, target) uses buffers allocated
//! before the window opens.

mod common;

use common::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator, which
// upholds GlobalAlloc's contract; the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `p` was allocated by System with layout `l`, as our caller guarantees.
        unsafe { System.realloc(p, l, n) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` was allocated by System with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> usize {
    ALLOCS.load(Ordering::SeqCst)
}

/// Relays 64 MiB each way through `proxy` after a warm-up; returns the
/// allocations counted during the measured part.
fn relay_window(proxy: std::net::SocketAddr) -> usize {
    // Echo target with one buffer, allocated before any window.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let echo = l.local_addr().unwrap();
    thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => s.write_all(&buf[..n]).unwrap(),
            }
        }
    });

    const CHUNK: usize = 64 * 1024;
    const ROUNDS: usize = 1024; // 64 MiB each way
                                // A whole pass first: pools reach the most either direction ever holds
                                // at once; the measured pass must then allocate nothing at all.
    const WARM: usize = ROUNDS;
    let (s, rep, _) = s5_connect(proxy, &addr_bytes(echo));
    assert_eq!(rep, 0);
    let mut r = s.try_clone().unwrap();
    // Progress is reported through an atomic, not a channel: a blocking
    // channel receive allocates a wait context the first time.
    let received = std::sync::Arc::new(AtomicUsize::new(0));
    let rx_count = received.clone();
    let reader = thread::spawn(move || {
        let mut buf = vec![0u8; CHUNK];
        let mut h = FNV0;
        let mut n = 0;
        while n < (WARM + ROUNDS) * CHUNK {
            let k = r.read(&mut buf).unwrap();
            assert!(k > 0);
            h = fnv(h, &buf[..k]);
            n += k;
            rx_count.store(n, Ordering::Release);
        }
        h
    });
    let wait_for = |total: usize| {
        while received.load(Ordering::Acquire) < total {
            thread::sleep(std::time::Duration::from_millis(1));
        }
    };
    let data = pattern(5, CHUNK);
    let mut w = s;
    for _ in 0..WARM {
        w.write_all(&data).unwrap();
    }
    wait_for(WARM * CHUNK);

    let before = allocs();
    for _ in 0..ROUNDS {
        w.write_all(&data).unwrap();
    }
    wait_for((WARM + ROUNDS) * CHUNK);
    let during = allocs() - before;
    let h = reader.join().unwrap();
    let want = (0..WARM + ROUNDS).fold(FNV0, |h, _| fnv(h, &data));
    assert_eq!(h, want, "echoed stream intact");
    during
}

#[test]
fn relay_allocates_nothing_and_handshakes_little() {
    // The connection log (with its time stamps, protocol and user kept
    // per connection) must not add any either.
    for (splice, connlog) in [(false, false), (true, false), (true, true)] {
        let mut cfg = config();
        cfg.threads = 1;
        cfg.splice = splice;
        cfg.log_connections = connlog;
        let (_srv, proxy) = start(cfg);
        let during = relay_window(proxy);
        println!("allocations while relaying 64 MiB each way (splice={splice}, log={connlog}): {during}");
        assert_eq!(during, 0, "steady-state relaying must not allocate (splice={splice}, log={connlog})");
    }
    let mut cfg = config();
    cfg.threads = 1;
    let (_srv, proxy) = start(cfg);

    // Handshakes: CONNECT by IP to a listener that never accepts (the
    // kernel completes the TCP handshake from the backlog).
    let sink = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sink.bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
    sink.listen(1024).unwrap();
    let sink_addr = sink.local_addr().unwrap().as_socket().unwrap();
    let mut req = vec![5, 1, 0];
    req.extend(s5_request(1, &addr_bytes(sink_addr)));
    let mut reply = [0u8; 12];
    const N: usize = 100;
    // Warm the server's pool and slab first.
    let mut warm = Vec::with_capacity(N);
    for _ in 0..N {
        let mut c = std::net::TcpStream::connect(proxy).unwrap();
        c.write_all(&req).unwrap();
        c.read_exact(&mut reply).unwrap();
        warm.push(c);
    }
    drop(warm);
    let mut held = Vec::with_capacity(N);
    let before = allocs();
    for _ in 0..N {
        let mut c = std::net::TcpStream::connect(proxy).unwrap();
        c.write_all(&req).unwrap();
        c.read_exact(&mut reply).unwrap();
        assert_eq!(reply[..4], [5, 0, 5, 0]);
        held.push(c);
    }
    let per = (allocs() - before) as f64 / N as f64;
    println!("allocations per CONNECT handshake: {per:.2}");
    assert!(per <= 4.0, "a handshake allocates at most a small constant, got {per}");
    drop(held);
    drop(sink);

    // UDP: datagrams through an association, after a warm-up.
    let echo_u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo_u.local_addr().unwrap();
    thread::spawn(move || {
        let mut b = vec![0u8; 2048];
        while let Ok((n, from)) = echo_u.recv_from(&mut b) {
            let _ = echo_u.send_to(&b[..n], from);
        }
    });
    let (ctl, rep, relay) = s5_associate(proxy, &addr_bytes("0.0.0.0:0".parse().unwrap()));
    assert_eq!(rep, 0);
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut dgram = vec![0u8, 0, 0];
    dgram.extend(addr_bytes(echo_addr));
    dgram.extend_from_slice(&[7u8; 512]);
    let mut back = vec![0u8; 2048];
    let mut trip = |u: &std::net::UdpSocket| {
        u.send_to(&dgram, relay).unwrap();
        let (n, _) = u.recv_from(&mut back).unwrap();
        assert_eq!(n, 10 + 512);
    };
    for _ in 0..16 {
        trip(&u);
    }
    let before = allocs();
    for _ in 0..1000 {
        trip(&u);
    }
    let during = allocs() - before;
    println!("allocations while relaying 2000 datagrams: {during}");
    assert_eq!(during, 0, "relaying a datagram must not allocate");
    drop(ctl);
}
