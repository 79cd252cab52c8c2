//! Out of descriptors: with a low RLIMIT_NOFILE, a flood of clients spends
//! the descriptor budget (or, were the budget wrong, accept fails with
//! EMFILE, and an edge-triggered accept loop could spin on the
//! still-readable listener). socksd must not spin, must say so once, and
//! must serve again as soon as descriptors are free.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 of the whole line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn emfile_backs_off_logs_once_and_recovers() {
    let bin = common::program_sh(env!("CARGO_BIN_EXE_socksd"));
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -n 40 && exec {bin} --listen 127.0.0.1:0 --threads 1 --max-conns 1000 --handshake-timeout 60"
        ))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let err = child.stderr.take().unwrap();
    let mut child = common::ChildGuard(child);
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut log = Vec::new();
    let wait_for = |needle: &str, log: &mut Vec<String>| loop {
        let l = rx.recv_timeout(common::IO_TIMEOUT).unwrap_or_else(|_| panic!("no {needle:?} in {log:?}"));
        log.push(l.clone());
        if l.contains(needle) {
            return l;
        }
    };
    let line = wait_for("listening on ", &mut log);
    let proxy: SocketAddr = line.rsplit(' ').next().unwrap().parse().unwrap();
    let echo = common::echo_server("127.0.0.1:0");

    // More idle clients than the server has descriptors.
    let flood: Vec<TcpStream> = (0..80).map(|_| TcpStream::connect(proxy).unwrap()).collect();
    wait_for("out of descriptors", &mut log);

    let tick = 1.0 / 100.0; // USER_HZ
    let t0 = cpu_ticks(child.0.id());
    let w0 = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let used = (cpu_ticks(child.0.id()) - t0) as f64 * tick;
    let share = used / w0.elapsed().as_secs_f64();
    println!("server CPU while out of descriptors: {:.1}% of a core", share * 100.0);
    assert!(share < 0.3, "server spins while out of descriptors: {:.0}% CPU", share * 100.0);

    // Descriptors free up: service resumes.
    drop(flood);
    let end = Instant::now() + common::IO_TIMEOUT;
    let served = loop {
        assert!(Instant::now() < end, "service did not resume");
        let Ok(mut s) = TcpStream::connect(proxy) else { continue };
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut req = vec![5, 1, 0];
        req.extend(common::s5_request(1, &common::addr_bytes(echo)));
        if s.write_all(&req).is_err() {
            continue;
        }
        let mut r = [0u8; 12];
        if s.read_exact(&mut r).is_ok() && r[..4] == [5, 0, 5, 0] {
            common::echo_check(&mut s, b"back in service");
            break true;
        }
    };
    assert!(served);
    while let Ok(l) = rx.try_recv() {
        log.push(l);
    }
    let warnings = log.iter().filter(|l| l.contains("out of descriptors")).count();
    assert_eq!(warnings, 1, "logged once: {log:?}");
    // SAFETY: kill has no memory effects; the pid is our own child's.
    unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
}
