//! A panic on any thread ends the whole process, even in a build that
//! unwinds (OpenWrt's profile): this test binary is such a build, since
//! the test harness always unwinds.

mod common;

use std::os::unix::process::ExitStatusExt;

/// In the child: hook installed, a server serving, then a thread panics.
/// Without the hook the thread would die alone and the server would go on
/// (the parent would then time out waiting for the exit).
#[test]
fn a_panicking_thread_ends_the_process() {
    if std::env::var_os("SOCKSD_PANIC_CHILD").is_some() {
        socksd::fatal::abort_on_panic();
        let (_srv, proxy) = common::start(common::config());
        let echo = common::echo_server("127.0.0.1:0");
        let (mut s, rep, _) = common::s5_connect(proxy, &common::addr_bytes(echo));
        assert_eq!(rep, 0);
        common::echo_check(&mut s, b"serving");
        let _ = std::thread::spawn(|| panic!("deliberate panic on a worker thread")).join();
        // Only reached if the panic left the process alive.
        std::thread::sleep(common::IO_TIMEOUT);
        return;
    }
    let out = common::program(std::env::current_exe().unwrap())
        .args(["--exact", "a_panicking_thread_ends_the_process", "--nocapture"])
        .env("SOCKSD_PANIC_CHILD", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "status {:?}, stderr: {err}", out.status);
    assert!(err.contains("deliberate panic"), "std's message is still printed: {err}");
}
