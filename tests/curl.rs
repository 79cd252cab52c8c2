//! curl, a real third-party client, through each of its SOCKS schemes.
//! Skipped (with a message) where curl is not installed.

mod common;

use common::*;
use socksd::auth::User;

#[test]
fn curl_through_every_scheme() {
    if !have_curl() {
        eprintln!("SKIPPED: curl is not installed");
        return;
    }
    let body = pattern(77, 3 << 20);
    let web = http_server(body.clone());
    let (_srv, proxy) = start(config());
    let by_ip = format!("http://127.0.0.1:{}/file", web.port());
    let by_name = format!("http://localhost:{}/file", web.port());
    for (scheme, url) in [
        ("socks4", &by_ip),
        ("socks4a", &by_name),
        ("socks5", &by_ip),
        ("socks5h", &by_name),
        // A user id in socks4 and credentials offered to a no-auth server.
        ("socks4", &by_name),
    ] {
        let (code, got) = curl(&format!("{scheme}://{proxy}"), url);
        assert_eq!(code, 0, "{scheme} {url}");
        assert!(got == body, "{scheme}: body differs");
    }
    let (code, got) = curl(&format!("socks4a://someone@{proxy}"), &by_name);
    assert_eq!((code, got == body), (0, true), "socks4a with a user id");
    let (code, got) = curl(&format!("socks5h://any:thing@{proxy}"), &by_name);
    assert_eq!((code, got == body), (0, true), "credentials offered, no-auth chosen");
}

#[test]
fn curl_with_username_and_password() {
    if !have_curl() {
        eprintln!("SKIPPED: curl is not installed");
        return;
    }
    let body = pattern(78, 1 << 20);
    let web = http_server(body.clone());
    let mut cfg = config();
    cfg.users = vec![User::parse("alice:s3cret").unwrap()];
    let (_srv, proxy) = start(cfg);
    let by_ip = format!("http://127.0.0.1:{}/f", web.port());
    let by_name = format!("http://localhost:{}/f", web.port());
    for scheme in ["socks5", "socks5h"] {
        let url = if scheme == "socks5" { &by_ip } else { &by_name };
        let (code, got) = curl(&format!("{scheme}://alice:s3cret@{proxy}"), url);
        assert_eq!((code, got == body), (0, true), "{scheme} with the right password");
        let (code, _) = curl(&format!("{scheme}://alice:wrong@{proxy}"), url);
        assert_ne!(code, 0, "{scheme} with a wrong password");
        let (code, _) = curl(&format!("{scheme}://{proxy}"), url);
        assert_ne!(code, 0, "{scheme} without credentials");
    }
    let (code, _) = curl(&format!("socks4://alice@{proxy}"), &by_ip);
    assert_ne!(code, 0, "SOCKS4 refused when users are configured");
}
