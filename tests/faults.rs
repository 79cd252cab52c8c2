//! Faults mid-stream: resets from either side, a target that never reads,
//! a target that never answers the connect. Afterwards no descriptor is
//! left behind. One test in this file: the descriptor count is per process.

mod common;

use common::*;
use socket2::{Domain, SockAddr, Socket, Type};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Closes with a reset (SO_LINGER 0) instead of a FIN.
fn reset(s: TcpStream) {
    Socket::from(s).set_linger(Some(Duration::ZERO)).unwrap();
}

/// Reads until the stream ends, one way or another.
fn until_end(s: &mut TcpStream) -> usize {
    let mut b = [0u8; 16384];
    let mut n = 0;
    loop {
        match s.read(&mut b) {
            Ok(0) => return n,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return n,
            Err(e) => panic!("stream did not end: {e}"),
        }
    }
}

/// Targets the scenarios use, set up once.
struct Scene {
    rst_target: SocketAddr,
    watcher: SocketAddr,
    seen_rx: mpsc::Receiver<&'static str>,
    deaf: SocketAddr,
    hold_rx: mpsc::Receiver<TcpStream>,
    full_addr: SocketAddr,
    _full: Socket,
    _fillers: Vec<Socket>,
}

fn scene() -> Scene {
    let rst_target = target("127.0.0.1:0", |mut s| {
        s.write_all(&[1u8; 1000]).unwrap();
        let mut b = [0u8; 10];
        let _ = s.read(&mut b);
        reset(s);
    });
    let (seen_tx, seen_rx) = mpsc::channel::<&'static str>();
    let seen_tx = std::sync::Mutex::new(seen_tx);
    let watcher = target("127.0.0.1:0", move |mut s| {
        until_end(&mut s);
        seen_tx.lock().unwrap().send("closed").unwrap();
    });
    let (hold_tx, hold_rx) = mpsc::channel::<TcpStream>();
    let hold_tx = std::sync::Mutex::new(hold_tx);
    let deaf = target("127.0.0.1:0", move |s| {
        // Never reads: hands the socket to the test to keep it open.
        hold_tx.lock().unwrap().send(s).unwrap();
    });
    let full = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    full.bind(&SockAddr::from("127.0.0.1:0".parse::<SocketAddr>().unwrap())).unwrap();
    full.listen(0).unwrap();
    let full_addr = full.local_addr().unwrap().as_socket().unwrap();
    let fillers: Vec<Socket> = (0..4)
        .map(|_| {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            s.set_nonblocking(true).unwrap();
            let _ = s.connect(&SockAddr::from(full_addr));
            s
        })
        .collect();
    Scene { rst_target, watcher, seen_rx, deaf, hold_rx, full_addr, _full: full, _fillers: fillers }
}

/// Every fault once (resets 10 times), then waits until the server is idle.
fn round(srv: &socksd::Server, proxy: SocketAddr, sc: &Scene) {
    for _ in 0..10 {
        // The target resets mid-stream: the client sees the end.
        let (mut c, rep, _) = s5_connect(proxy, &addr_bytes(sc.rst_target));
        assert_eq!(rep, 0);
        c.write_all(b"poke").unwrap();
        assert!(until_end(&mut c) <= 1000);

        // The client resets mid-stream: the target sees the end.
        let (mut c, rep, _) = s5_connect(proxy, &addr_bytes(sc.watcher));
        assert_eq!(rep, 0);
        c.write_all(b"some bytes").unwrap();
        reset(c);
        assert_eq!(sc.seen_rx.recv_timeout(IO_TIMEOUT).unwrap(), "closed");
    }
    for _ in 0..2 {
        // A target that never answers the connect: 0x06.
        let (_c, rep, _) = s5_connect(proxy, &addr_bytes(sc.full_addr));
        assert_eq!(rep, 0x06);
    }

    // A target that never reads: the relay stops reading the client once
    // its buffer and the kernel's are full, instead of buffering more.
    let (mut c, rep, _) = s5_connect(proxy, &addr_bytes(sc.deaf));
    assert_eq!(rep, 0);
    let held = sc.hold_rx.recv_timeout(IO_TIMEOUT).unwrap();
    c.set_write_timeout(Some(Duration::from_millis(300))).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0usize;
    loop {
        match c.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("{e}"),
        }
        // The kernel's socket buffers on the way (client send, server
        // receive and send, target receive) can grow to the tcp_wmem and
        // tcp_rmem maxima, 32 MiB each way on some machines; what the
        // server itself holds is a buffer or a pipe on top.
        assert!(sent < kernel_buffers_max() + (4 << 20), "the server buffers without bound");
    }
    println!("bytes accepted before back-pressure stopped the client: {sent}");
    // Others are still served meanwhile.
    let (mut e, rep, _) = s5_connect(proxy, &addr_bytes(sc.watcher));
    assert_eq!(rep, 0);
    e.write_all(b"x").unwrap();
    drop(e);
    assert_eq!(sc.seen_rx.recv_timeout(IO_TIMEOUT).unwrap(), "closed");
    drop(c);
    drop(held);
    wait_idle(srv);
}

/// Waits until every descriptor beyond `baseline` is a pooled pipe end.
fn settle(baseline: usize) -> usize {
    let end = std::time::Instant::now() + IO_TIMEOUT;
    loop {
        let (n, pipes) = (open_fds(), socksd::testing::pipes_live());
        if n <= baseline + 2 * pipes {
            return pipes;
        }
        assert!(std::time::Instant::now() < end, "leaked descriptors: {n} > {baseline} + 2 x {pipes} pipes");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn faults_leave_nothing_behind() {
    let sc = scene();
    std::thread::sleep(Duration::from_millis(50));
    for splice in [false, true] {
        let mut cfg = config();
        cfg.connect_timeout = Duration::from_millis(300);
        cfg.splice = splice;
        let (srv, proxy) = start(cfg);
        let baseline = open_fds();
        round(&srv, proxy, &sc);
        // Every socket on both sides is gone; what remains beyond the
        // baseline is idle pipes in the pool (none on the copy path; on
        // the splice path at most 32 per reactor thread).
        let pipes = settle(baseline);
        assert!(pipes <= 32 * 2, "{pipes} pipes pooled");
        if !splice {
            assert_eq!(pipes, 0);
        }
        println!("splice={splice}: back to {baseline} descriptors + {pipes} pooled pipes");
        drop(srv);
    }
}

/// The most the kernel may buffer between the client and a target that
/// does not read: two send and two receive buffers at their autotuning
/// maxima (`net.ipv4.tcp_wmem`, `tcp_rmem`; Linux's defaults where
/// unreadable).
fn kernel_buffers_max() -> usize {
    let max = |path: &str, default: usize| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().nth(2).and_then(|v| v.parse().ok()))
            .unwrap_or(default)
    };
    2 * max("/proc/sys/net/ipv4/tcp_wmem", 4 << 20) + 2 * max("/proc/sys/net/ipv4/tcp_rmem", 6 << 20)
}
