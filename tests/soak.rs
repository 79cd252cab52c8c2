//! Soak: 1,000 concurrent relayed connections echoing checksummed data for
//! a bounded time through the real binary; no byte lost, RSS flat.
//! Ignored by default (it runs for minutes):
//!   SOCKSD_SOAK_SECS=120 cargo test --release --test soak -- --ignored --nocapture

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let l = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
#[ignore]
fn soak_1000_connections() {
    raise_nofile();
    let secs: u64 = std::env::var("SOCKSD_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(120);
    const CONNS: usize = 1000;
    let bin = env!("CARGO_BIN_EXE_socksd");
    let mut child = common::program(bin)
        .args(["--listen", "127.0.0.1:0", "--threads", "2", "--max-conns", "5000"])
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut child = common::ChildGuard(child);
    let proxy: SocketAddr = loop {
        let l = lines.next().unwrap().unwrap();
        if let Some(a) = l.strip_prefix("socksd: info: listening on ") {
            break a.parse().unwrap();
        }
    };
    let echo = echo_server("127.0.0.1:0");
    let end = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = (0..CONNS)
        .map(|i| {
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let (mut s, rep, _) = s5_connect(proxy, &addr_bytes(echo));
                    assert_eq!(rep, 0);
                    // Counted per thread and summed at the end: no 64-bit
                    // atomics, which 32-bit MIPS does not have.
                    let (mut round, mut bytes) = (0u64, 0u64);
                    let mut back = vec![0u8; 32 * 1024];
                    while Instant::now() < end {
                        let len = 1024 + ((i as u64 * 7919 + round * 104_729) % (31 * 1024)) as usize;
                        let data = pattern(i as u64 * 1_000_003 + round, len);
                        s.write_all(&data).unwrap();
                        s.read_exact(&mut back[..len]).unwrap();
                        assert!(back[..len] == data[..], "connection {i} round {round}: bytes differ");
                        bytes += 2 * len as u64;
                        round += 1;
                    }
                    (round, bytes)
                })
                .unwrap()
        })
        .collect();
    // Sample RSS after a warm-up and at the end.
    std::thread::sleep(Duration::from_secs(secs.min(10)));
    let rss_warm = rss_kib(child.0.id());
    let mut samples = vec![rss_warm];
    while end.saturating_duration_since(Instant::now()) > Duration::from_secs(1) {
        std::thread::sleep(Duration::from_secs(5).min(end.saturating_duration_since(Instant::now()) / 2));
        samples.push(rss_kib(child.0.id()));
    }
    // The last sample under load.
    let rss_end = *samples.last().unwrap();
    let (rounds, total) =
        workers.into_iter().map(|w| w.join().unwrap()).fold((0u64, 0u64), |(r, b), (r1, b1)| (r + r1, b + b1));
    let rss_closed = rss_kib(child.0.id());
    println!(
        "soak: {CONNS} connections, {secs} s, {rounds} round trips, {:.2} GiB relayed (both ways), 0 bytes lost; \
         server RSS {rss_warm} KiB after warm-up, {rss_end} KiB at the end of the load, max {} KiB, \
         {rss_closed} KiB after all closed",
        total as f64 / (1u64 << 30) as f64,
        samples.iter().max().unwrap()
    );
    assert!(rss_end <= rss_warm + rss_warm / 4 + 1024, "RSS grew: {rss_warm} -> {rss_end} KiB");
    // SAFETY: kill has no memory effects; the pid is our own child's.
    unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
}
