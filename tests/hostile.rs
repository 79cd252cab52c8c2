//! Hostile clients: thousands of garbage handshakes and slowloris
//! connections, while a normal client keeps being served.

mod common;

use common::*;
use socksd::auth::User;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// A byte that is not a SOCKS version: noise never forms a request.
fn not_version(rng: &mut Rng) -> u8 {
    loop {
        let b = rng.next() as u8;
        if b != 4 && b != 5 {
            return b;
        }
    }
}

/// What a garbage case must get back before the server closes.
enum Expect {
    /// Closed with no reply at all.
    Nothing,
    /// Exactly these bytes, then closed.
    Exactly(Vec<u8>),
    /// At most this many bytes, then closed.
    AtMost(usize),
}

/// One garbage case: the bytes to send, whether to half-close after them,
/// and what must come back.
fn case(rng: &mut Rng, echo: SocketAddr) -> (Vec<u8>, bool, Expect) {
    let valid5 = {
        let mut v = vec![5, 1, 0];
        v.extend(s5_request(1, &addr_bytes(echo)));
        v
    };
    match rng.below(11) {
        0 => {
            let n = 1 + rng.below(300);
            let mut b = rng.bytes(n);
            b[0] = not_version(rng);
            (b, false, Expect::Nothing)
        }
        1 => {
            let v = [0x00, 0x06, 0xFF][rng.below(3)];
            (vec![v, 1, 0, 1, 127, 0, 0, 1, 0, 80], false, Expect::Nothing)
        }
        2 => (vec![5, 0], false, Expect::Exactly(vec![5, 0xFF])),
        3 => {
            let mut b = vec![5, 1, 0];
            b.extend(s5_request(1, &[3, 0, 0, 80]));
            (b, false, Expect::Exactly(vec![5, 0, 5, 4, 0, 1, 0, 0, 0, 0, 0, 0]))
        }
        4 => {
            let mut b = vec![5, 1, 0, 5, 1, 0, 9];
            b.extend(rng.bytes(8));
            (b, false, Expect::Exactly(vec![5, 0, 5, 8, 0, 1, 0, 0, 0, 0, 0, 0]))
        }
        5 => {
            let mut b = vec![5, 1, 0, 5, 0x42, 0, 1];
            b.extend(rng.bytes(6));
            (b, false, Expect::Exactly(vec![5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0]))
        }
        6 => {
            // Greeting, then noise where the request should be.
            let mut b = vec![5, 1, 0, not_version(rng)];
            let n = rng.below(40);
            b.extend(rng.bytes(n));
            (b, false, Expect::Exactly(vec![5, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0]))
        }
        7 => {
            let mut b = vec![4, 1, 0, 80, 127, 0, 0, 1];
            b.extend(std::iter::repeat_n(b'u', 256 + rng.below(200)));
            (b, false, Expect::Exactly(vec![0, 0x5B, 0, 0, 0, 0, 0, 0]))
        }
        8 => {
            let mut b = vec![4, 1, 0, 80, 0, 0, 0, 1, 0];
            b.extend(std::iter::repeat_n(b'd', 256 + rng.below(100)));
            (b, false, Expect::Exactly(vec![0, 0x5B, 0, 0, 0, 0, 0, 0]))
        }
        9 => (vec![4, 9, 0, 80, 127, 0, 0, 1, 0], false, Expect::Exactly(vec![0, 0x5B, 0, 0, 0, 0, 0, 0])),
        _ => {
            // A valid handshake cut short, then EOF.
            let cut = rng.below(valid5.len());
            (valid5[..cut].to_vec(), true, Expect::AtMost(2))
        }
    }
}

fn run_case(proxy: SocketAddr, bytes: &[u8], half_close: bool, expect: &Expect) {
    let mut s = connect(proxy);
    // The server may close before taking everything: that is fine.
    let _ = s.write_all(bytes);
    if half_close {
        let _ = s.shutdown(Shutdown::Write);
    }
    let mut got = Vec::new();
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("{bytes:?}: no close ({e}); got {got:?}"),
        }
        assert!(got.len() <= 64, "{bytes:?}: too much back: {got:?}");
    }
    match expect {
        Expect::Nothing => assert!(got.is_empty(), "{bytes:?}: {got:?}"),
        Expect::Exactly(want) => assert_eq!(&got, want, "{bytes:?}"),
        Expect::AtMost(n) => assert!(got.len() <= *n, "{bytes:?}: {got:?}"),
    }
}

/// A normal client doing CONNECT + echo round trips until told to stop.
fn normal_client(proxy: SocketAddr, echo: SocketAddr, stop: Arc<AtomicBool>) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        let mut rounds = 0;
        while !stop.load(Ordering::Relaxed) || rounds == 0 {
            let (mut s, rep, _) = s5_connect(proxy, &addr_bytes(echo));
            assert_eq!(rep, 0, "normal client refused under attack");
            echo_check(&mut s, &pattern(rounds as u64, 4096));
            rounds += 1;
        }
        rounds
    })
}

#[test]
fn garbage_connections_get_the_right_answer_and_harm_no_one() {
    raise_nofile();
    let mut cfg = config();
    cfg.handshake_timeout = Duration::from_secs(3);
    cfg.max_conns = Some(10_000);
    loopback_only(&mut cfg);
    let (srv, proxy) = start(cfg);
    let echo = echo_server("127.0.0.1:0");
    let stop = Arc::new(AtomicBool::new(false));
    let normal = normal_client(proxy, echo, stop.clone());
    const WORKERS: usize = 16;
    const PER_WORKER: usize = 150;
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let done = done.clone();
            thread::spawn(move || {
                let mut rng = Rng(0xC0FFEE + w as u64);
                for _ in 0..PER_WORKER {
                    let (bytes, half, expect) = case(&mut rng, echo);
                    run_case(proxy, &bytes, half, &expect);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = normal.join().unwrap();
    println!("garbage connections: {}, normal round trips meanwhile: {rounds}", done.load(Ordering::Relaxed));
    assert_eq!(done.load(Ordering::Relaxed), WORKERS * PER_WORKER);

    // Zero-length username and password, with users configured.
    let mut cfg = config();
    cfg.users = vec![User::parse("alice:pw").unwrap()];
    let (_auth, aproxy) = start(cfg);
    run_case(aproxy, &[5, 1, 2, 1, 0, 0], false, &Expect::Exactly(vec![5, 2, 1, 1]));
    run_case(aproxy, &[5, 1, 2, 2, 0, 0], false, &Expect::Exactly(vec![5, 2, 1, 1]));
    wait_idle(&srv);
}

#[test]
fn slowloris_is_closed_at_the_handshake_timeout() {
    raise_nofile();
    let mut cfg = config();
    cfg.handshake_timeout = Duration::from_millis(1500);
    cfg.max_conns = Some(10_000);
    let (srv, proxy) = start(cfg);
    let echo = echo_server("127.0.0.1:0");
    const N: usize = 1000;
    let silent: Vec<TcpStream> = (0..N).map(|_| connect(proxy)).collect();
    let mut dribbling: Vec<TcpStream> = (0..N).map(|_| connect(proxy)).collect();
    let slow = {
        let mut v = vec![5, 1, 0];
        v.extend(s5_request(1, &addr_bytes(echo)));
        v
    };
    // One byte per connection per round, a round every 200 ms, while a
    // normal client is served.
    let stop = Arc::new(AtomicBool::new(false));
    let normal = normal_client(proxy, echo, stop.clone());
    let mut closed_early = 0;
    for round in 0..4 {
        for s in &mut dribbling {
            if s.write_all(&slow[round..round + 1]).is_err() {
                closed_early += 1;
            }
        }
        thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = normal.join().unwrap();
    assert!(rounds > 0);
    // Every slow connection is closed by the server.
    for mut s in silent.into_iter().chain(dribbling) {
        let mut b = [0u8; 16];
        loop {
            match s.read(&mut b) {
                Ok(0) => break,
                // The dribblers saw their method selection.
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!("slow connection not closed: {e}"),
            }
        }
    }
    println!("slowloris connections closed: {}, normal round trips meanwhile: {rounds}, early: {closed_early}", 2 * N);
    wait_idle(&srv);
}
