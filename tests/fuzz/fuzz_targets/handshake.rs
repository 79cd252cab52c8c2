#![no_main]
//! The whole handshake decision, in every phase, with and without users.

use libfuzzer_sys::fuzz_target;
use socksd::auth::User;
use socksd::handshake::{decide, Phase, Policy, Step};

fuzz_target!(|data: &[u8]| {
    let users = [User { name: b"alice".to_vec(), pass: b"pw".to_vec() }];
    let open = Policy { users: &[], socks4: true, bind: true, udp: true, trusted: false, gssapi: false };
    let closed = Policy { users: &users, socks4: false, bind: false, udp: false, trusted: false, gssapi: true };
    for phase in [Phase::Greeting, Phase::Auth, Phase::Request] {
        for policy in [&open, &closed] {
            let used = match decide(phase, data, policy) {
                Step::Answer { used, .. } | Step::Connect { used, .. } | Step::Bind { used, .. } | Step::Udp { used, .. } => used,
                _ => 0,
            };
            assert!(used <= data.len());
        }
    }
});
