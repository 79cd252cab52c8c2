//! Bulk lanes (issue 13): a relay that turns out to be a bulk transfer is
//! handed, whole, to a bulk thread, so that it never shares a thread with
//! small exchanges. These tests check the hand-over itself: which relays
//! move (the bulk one, once; never the interactive one), that nothing is
//! lost, duplicated or reordered on the way, that half-closes and the idle
//! timeout still work afterwards, and that `--bulk-threads 0` keeps every
//! relay where it was accepted. How much it helps latency is measured by
//! `cargo bench` (loaded-latency), not asserted here.

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// Bytes uploaded through the relay under test.
const UP: usize = 16 << 20;
/// Bytes the target answers with once the upload is in.
const DOWN: usize = 8 << 20;
const CHUNK: usize = 64 * 1024;

/// A server config with `threads` accepting reactors and `lanes` lanes.
fn with_lanes(threads: usize, lanes: usize) -> socksd::Config {
    socksd::Config { threads, bulk_threads: Some(lanes), ..config() }
}

/// One test at a time: each moves tens of megabytes, and the thread check
/// reads every thread of this process.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A target that waits at `go` before reading, so that every buffer on
/// the way fills first and the relay's first turns have megabytes to move
/// (a bulk transfer by any measure). It then checks the upload against the
/// pattern, answers with `DOWN` bytes and closes, or with `linger` waits
/// for the proxy to close instead.
fn held_target(go: Arc<Barrier>, linger: bool) -> SocketAddr {
    target("127.0.0.1:0", move |mut s: TcpStream| {
        // Made before the relay runs: under emulation this takes seconds,
        // and a relay that sits idle that long leaves its lane.
        let (want, down) = (pattern(1, UP), pattern(2, DOWN));
        go.wait();
        read_upload(&mut s, &want);
        let mut buf = [0u8; 64];
        if linger {
            // The proxy's idle timeout closes us; the read timeout is the
            // bound if it never does.
            assert_eq!(s.read(&mut buf).unwrap(), 0, "nothing but EOF after the upload");
            return;
        }
        assert_eq!(s.read(&mut buf).unwrap(), 0, "the client's half-close arrives");
        s.write_all(&down).unwrap();
    })
}

/// Reads `UP` bytes and checks them against the pattern [`upload`] sends.
fn read_upload(s: &mut TcpStream, want: &[u8]) {
    let mut got = 0;
    let mut buf = vec![0u8; CHUNK];
    while got < UP {
        let n = s.read(&mut buf[..CHUNK.min(UP - got)]).unwrap();
        assert!(n > 0, "upload cut short at {got} bytes");
        assert!(buf[..n] == want[got..got + n], "upload differs at {got}..{}", got + n);
        got += n;
    }
}

/// Writes until the socket would block (every buffer up to the held
/// target is full), lets the target start, then writes the rest.
fn upload(s: &mut TcpStream, go: &Barrier) {
    let data = pattern(1, UP);
    s.set_nonblocking(true).unwrap();
    let mut sent = 0;
    while sent < UP {
        match s.write(&data[sent..(sent + CHUNK).min(UP)]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("upload: {e}"),
        }
    }
    s.set_nonblocking(false).unwrap();
    go.wait();
    s.write_all(&data[sent..]).unwrap();
}

/// One bulk relay through `proxy`, both ways, checked byte for byte, while
/// a second connection keeps exchanging small messages through an echo
/// target. Returns after both are done.
fn bulk_beside_small(proxy: SocketAddr) {
    let go = Arc::new(Barrier::new(2));
    let t = held_target(go.clone(), false);
    let echo = echo_server("127.0.0.1:0");
    let (mut small, rep, _) = s5_connect(proxy, &addr_bytes(echo));
    assert_eq!(rep, 0);
    let (mut big, rep, _) = s5_connect(proxy, &addr_bytes(t));
    assert_eq!(rep, 0);
    let bulk = thread::spawn(move || {
        upload(&mut big, &go);
        big.shutdown(Shutdown::Write).unwrap();
        let back = read_to_end(&mut big);
        assert_eq!(back.len(), DOWN, "download length");
        assert!(back == pattern(2, DOWN), "download differs");
    });
    let mut i = 0u32;
    while !bulk.is_finished() {
        echo_check(&mut small, &i.to_be_bytes());
        i += 1;
    }
    bulk.join().unwrap();
    echo_check(&mut small, b"still here");
    drop(small);
}

#[test]
fn a_bulk_relay_moves_to_a_lane_once_and_arrives_intact() {
    let _one = serial();
    let (srv, proxy) = start(with_lanes(1, 1));
    bulk_beside_small(proxy);
    wait_idle(&srv);
    let st = srv.stats();
    // A relay idle for a second on its lane goes back (a slow machine may
    // pause that long), and comes back only with another burst.
    assert!(st.bulk_moved >= 1 && st.bulk_moved <= 1 + st.bulk_returned, "only the bulk relay moved: {st:?}");
    assert_eq!(st.ended("eof"), 2, "both relays ended with EOF both ways");
    // The small exchange adds a varying count on top.
    assert!(st.bytes_up as usize > UP && st.bytes_down as usize > DOWN, "{st:?}");
}

#[test]
fn a_moved_relay_still_counts_for_its_user() {
    let _one = serial();
    let mut cfg = with_lanes(1, 1);
    cfg.users = vec![socksd::auth::User::parse("alice:pw").unwrap()];
    let (srv, proxy) = start(cfg);
    let go = Arc::new(Barrier::new(2));
    let t = held_target(go.clone(), false);
    let (mut big, status) = s5_login(proxy, "alice", "pw");
    assert_eq!(status, 0);
    big.write_all(&s5_request(1, &addr_bytes(t))).unwrap();
    assert_eq!(read_s5_reply(&mut big).unwrap().0, 0);
    upload(&mut big, &go);
    big.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut big).len(), DOWN);
    wait_idle(&srv);
    let st = srv.stats();
    assert!(st.bulk_moved >= 1, "{st:?}");
    let alice: Vec<_> = st.users.iter().filter(|u| &*u.name == b"alice").collect();
    assert_eq!(alice.len(), 1, "{:?}", st.users);
    assert_eq!(alice[0].conns, 1, "the moved relay counts once, for alice");
    assert_eq!((alice[0].up as usize, alice[0].down as usize), (UP, DOWN), "its bytes count for alice");
}

#[test]
fn with_no_bulk_threads_every_relay_stays_where_it_was_accepted() {
    let _one = serial();
    let (srv, proxy) = start(with_lanes(1, 0));
    bulk_beside_small(proxy);
    wait_idle(&srv);
    let st = srv.stats();
    assert_eq!(st.bulk_moved, 0);
    assert_eq!(st.ended("eof"), 2);
}

#[test]
fn a_moved_relay_still_times_out_when_idle() {
    let _one = serial();
    let mut cfg = with_lanes(1, 1);
    cfg.idle_timeout = Some(Duration::from_millis(500));
    let (srv, proxy) = start(cfg);
    let go = Arc::new(Barrier::new(2));
    let t = held_target(go.clone(), true);
    let (mut big, rep, _) = s5_connect(proxy, &addr_bytes(t));
    assert_eq!(rep, 0);
    upload(&mut big, &go);
    // Nothing more either way: the lane's idle clock closes the relay.
    assert!(closed_without_data(&mut big), "the idle relay is closed");
    wait_idle(&srv);
    let st = srv.stats();
    assert!(st.bulk_moved >= 1, "{st:?}");
    assert_eq!(st.ended("idle_timeout"), 1);
}

#[test]
fn many_bulk_relays_spread_over_the_lanes_and_all_arrive() {
    let _one = serial();
    let (srv, proxy) = start(with_lanes(2, 2));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            thread::spawn(move || {
                let go = Arc::new(Barrier::new(2));
                let t = held_target(go.clone(), false);
                let (mut big, rep, _) = s5_connect(proxy, &addr_bytes(t));
                assert_eq!(rep, 0);
                upload(&mut big, &go);
                big.shutdown(Shutdown::Write).unwrap();
                assert!(read_to_end(&mut big) == pattern(2, DOWN), "download differs");
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    wait_idle(&srv);
    let st = srv.stats();
    assert!(st.bulk_moved >= 4 && st.bulk_moved <= 4 + st.bulk_returned, "{st:?}");
    assert_eq!(st.ended("eof"), 4);
    assert_eq!(st.bytes_up as usize, 4 * UP);
    assert_eq!(st.bytes_down as usize, 4 * DOWN);
}

#[test]
fn a_relay_that_goes_quiet_on_a_lane_comes_back_and_can_move_again() {
    let _one = serial();
    let (srv, proxy) = start(with_lanes(1, 1));
    let (go1, go2) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let (g1, g2) = (go1.clone(), go2.clone());
    // Bulk, then small exchanges, then bulk again, on one connection.
    let t = target("127.0.0.1:0", move |mut s: TcpStream| {
        let want = pattern(1, UP);
        g1.wait();
        read_upload(&mut s, &want);
        let mut m = [0u8; 4];
        for _ in 0..10 {
            s.read_exact(&mut m).unwrap();
            s.write_all(&m).unwrap();
        }
        g2.wait();
        read_upload(&mut s, &want);
        assert_eq!(s.read(&mut m).unwrap(), 0, "the client's half-close arrives");
        s.write_all(b"done").unwrap();
    });
    let (mut s, rep, _) = s5_connect(proxy, &addr_bytes(t));
    assert_eq!(rep, 0);
    upload(&mut s, &go1);
    // No readiness signal exists for a move inside the server: poll its
    // counters, bounded (the hand-back comes after a second without bulk).
    let end = std::time::Instant::now() + IO_TIMEOUT;
    while srv.stats().bulk_returned == 0 {
        assert!(std::time::Instant::now() < end, "the quiet relay never came back: {:?}", srv.stats());
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(srv.stats().bulk_moved, 1);
    for i in 0..10u32 {
        echo_check(&mut s, &i.to_be_bytes());
    }
    upload(&mut s, &go2);
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut s), b"done");
    wait_idle(&srv);
    let st = srv.stats();
    assert!(st.bulk_moved >= 2, "the second burst moved it again: {st:?}");
    assert_eq!(st.ended("eof"), 1);
}

/// `/proc/self/task/*`: (name, nice, slice in ns if the kernel shows it).
fn threads() -> Vec<(String, i64, Option<u64>)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let p = t.path();
        let Ok(stat) = std::fs::read_to_string(p.join("stat")) else { continue };
        let close = stat.rfind(')').unwrap();
        let name = stat[stat.find('(').unwrap() + 1..close].to_string();
        // Field 19 (nice) is the 17th after the name.
        let nice = stat[close + 2..].split(' ').nth(16).unwrap().parse().unwrap();
        let slice = std::fs::read_to_string(p.join("sched"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("se.slice"))?.split(':').nth(1)?.trim().parse().ok());
        out.push((name, nice, slice));
    }
    out
}

#[test]
fn lanes_run_at_lower_priority_and_reactors_ask_for_short_slices() {
    if skip_under_emulation("lanes_run_at_lower_priority", "qemu-user does not pass sched_setattr through") {
        return;
    }
    let _one = serial();
    let (_srv, proxy) = start(with_lanes(2, 2));
    // Relays through both kinds of thread: each has run its start-up.
    bulk_beside_small(proxy);
    // SAFETY: getpriority reads one number of this process.
    let base = i64::from(unsafe { libc::getpriority(libc::PRIO_PROCESS as _, 0) });
    let all = threads();
    let lanes: Vec<_> = all.iter().filter(|t| t.0.starts_with("socksd-bulk-")).collect();
    let fronts: Vec<_> = all.iter().filter(|t| t.0.starts_with("socksd-reactor")).collect();
    assert_eq!((lanes.len(), fronts.len()), (2, 2), "{all:?}");
    for l in &lanes {
        assert_eq!(l.1, (base + 10).min(19), "a lane runs 10 nice steps lower: {l:?}");
    }
    for f in &fronts {
        assert_eq!(f.1, base, "an accepting reactor keeps the process's priority: {f:?}");
        // Linux 6.12 and later honour a normal thread's own slice, and
        // show it when built with scheduler debugging.
        if let (true, Some(slice)) = (custom_slices(), f.2) {
            assert_eq!(slice, 300_000, "an accepting reactor asks for a 0.3 ms slice: {f:?}");
        }
    }
}

/// Whether this kernel takes a normal thread's `sched_runtime` as its
/// slice (Linux 6.12 and later).
fn custom_slices() -> bool {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut v = rel.split(|c: char| !c.is_ascii_digit()).filter_map(|x| x.parse::<u32>().ok());
    (v.next().unwrap_or(0), v.next().unwrap_or(0)) >= (6, 12)
}
