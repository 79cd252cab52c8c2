//! A panic on any thread ends the whole process.
//!
//! With `panic = "abort"` (our profiles) that is already so. OpenWrt's Rust
//! build replaces the profile with `panic=unwind`, and there a panicking
//! reactor thread would die alone: `main` only waits for signals, so procd
//! would see a live process, never respawn it, and the clients on that
//! thread (all of them with one thread) would hang. The hook makes every
//! build fail loudly and whole, so the supervisor restarts it.

/// Installs the hook: std's message first, then abort (SIGABRT).
pub fn abort_on_panic() {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        print(info);
        std::process::abort();
    }));
}
