//! The package under OpenWrt's own runtime: procd, ujail, ubusd, uci,
//! opkg and OpenWrt's rc.common, functions.sh, procd.sh and network.sh,
//! built from their sources by the kit in `../shared/openwrt-runtime`,
//! which brings up a router in namespaces with a LAN client and an
//! upstream (WAN) network (its README says what is real and what stands
//! in: netifd, dnsmasq, fw4, glibc for musl).
//!
//! The package is the `.ipk` that `contrib/openwrt/ipk.sh` makes from the
//! static x86_64 build (`contrib/cross/build.sh --router
//! x86_64-unknown-linux-musl`), installed with opkg as a router owner
//! would, or as an image build does. Where the kit, root, namespaces or
//! the binary are missing the tests say SKIP; under `CI` they fail.
//!
//! Not in the `gssapi` build's run: the package is the default build, and
//! the default run has already tested it.
#![cfg(not(feature = "gssapi"))]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const TRIPLE: &str = "x86_64-unknown-linux-musl";
/// The file the upstream web server serves, and its size.
const FILE: &str = "f";
const FILE_LEN: usize = 64 << 10;
const LAN4: &str = "192.168.1.1";
const LAN6: &str = "[fd12:3456:789a::1]";
/// How long procd, a trigger or a reload may take to show its effect.
const SETTLE: Duration = Duration::from_secs(20);

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The kit, built once, and the package made once; `None` (after SKIP)
/// where the test cannot run.
fn setup(test: &str) -> Option<(&'static Path, &'static Path)> {
    if common::skip_under_emulation(test, "the kit runs x86_64 programs") {
        return None;
    }
    let kit = std::env::var_os("SOCKSD_OWRT_KIT")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest().join("../shared/openwrt-runtime"));
    if !kit.join("owrt.sh").exists() {
        common::cannot_run(test, &format!("no OpenWrt runtime kit at {} (SOCKSD_OWRT_KIT)", kit.display()));
        return None;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        common::cannot_run(test, "the kit needs root (namespaces, chroot, mounts)");
        return None;
    }
    let bin = manifest().join("target").join(TRIPLE).join("router/socksd");
    if !bin.exists() {
        common::cannot_run(test, &format!("{} missing: contrib/cross/build.sh --router {TRIPLE}", bin.display()));
        return None;
    }
    if !common::have_curl() {
        common::cannot_run(test, "curl is the LAN client");
        return None;
    }
    static READY: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    let (kit, ipk) = READY.get_or_init(|| {
        // Built once here: two tests building at once would race.
        let st = Command::new(kit.join("owrt.sh")).arg("build").stdout(Stdio::null()).status().unwrap();
        assert!(st.success(), "owrt.sh build");
        // SOCKSD_OWRT_IPK: another build of the package to test (an older one, say).
        if let Some(ipk) = std::env::var_os("SOCKSD_OWRT_IPK") {
            return (kit, PathBuf::from(ipk));
        }
        let out = std::env::temp_dir().join(format!("socksd-ipk-{}", std::process::id()));
        let made = Command::new(manifest().join("contrib/openwrt/ipk.sh"))
            .args(["--out", out.to_str().unwrap(), TRIPLE])
            .output()
            .unwrap();
        assert!(made.status.success(), "ipk.sh: {}", String::from_utf8_lossy(&made.stderr));
        let ipk = PathBuf::from(String::from_utf8(made.stdout).unwrap().trim());
        (kit, ipk)
    });
    Some((kit.as_path(), ipk.as_path()))
}

/// One router root of the kit, taken down and removed on drop.
struct Router {
    kit: PathBuf,
    root: PathBuf,
    /// Programs started in its namespaces (`owrt.sh down` ends them).
    started: std::cell::RefCell<Vec<std::process::Child>>,
}

impl Router {
    /// A fresh root, not yet up.
    fn new(kit: &Path, name: &str) -> Router {
        let root = std::env::temp_dir().join(format!("socksd-owrt-{name}-{}", std::process::id()));
        let r = Router { kit: kit.to_path_buf(), root, started: Default::default() };
        r.kit_ok(&["root"]);
        r
    }

    fn owrt(&self, cmd: &str) -> Command {
        let mut c = Command::new(self.kit.join("owrt.sh"));
        c.arg(cmd).arg(&self.root).stdin(Stdio::null());
        c
    }

    fn kit_ok(&self, args: &[&str]) {
        let out = self.owrt(args[0]).args(&args[1..]).output().unwrap();
        assert!(out.status.success(), "owrt.sh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn up(&self) {
        self.kit_ok(&["up"]);
    }

    /// A shell command line in the router (busybox ash), as root.
    fn sh(&self, script: &str) -> Output {
        self.owrt("exec").args(["sh", "-c", script]).output().unwrap()
    }

    /// [`Router::sh`], which must succeed; its stdout.
    fn run(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "in the router: {script}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The package, installed with opkg on the running router (postinst included).
    fn install(&self, ipk: &Path) {
        let out = self.owrt("opkg").args(["install", ipk.to_str().unwrap()]).output().unwrap();
        assert!(out.status.success(), "opkg install: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// An upstream web server (10.99.0.2 and fd99::2, port 8000) serving
    /// [`FILE`], and a DNS name for it with both families; returns the file.
    fn web(&self, dir: &Path) -> Vec<u8> {
        let body = common::pattern(23, FILE_LEN);
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(FILE), &body).unwrap();
        let busybox = std::env::var("OWRT_PREFIX").unwrap_or_else(|_| "/tmp/openwrt-runtime".into()) + "/bin/busybox";
        // httpd -f stays in the foreground; `owrt.sh down` ends it with the namespace.
        let httpd = self
            .owrt("wan")
            .args([&busybox, "httpd", "-f", "-p", "8000", "-h", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.started.borrow_mut().push(httpd);
        for a in ["10.99.0.2", "fd99::2"] {
            self.kit_ok(&["dns", "www.example.test", a]);
        }
        body
    }

    /// curl from the LAN client through `proxy` (a URL); its exit code and body.
    fn curl(&self, proxy: &str, url: &str) -> (i32, Vec<u8>) {
        let out = self
            .owrt("lan")
            .args(["curl", "-sS", "--max-time", "10", "-x", proxy, url])
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .output()
            .unwrap();
        (out.status.code().unwrap_or(-1), out.stdout)
    }

    /// The main instance's state as procd reports it: `None` when there
    /// is no such instance, else whether it runs and its pid.
    fn instance(&self) -> Option<(bool, u32)> {
        let out = self.sh("s=$(ubus call service list '{\"name\":\"socksd\"}') && \
             i=$(jsonfilter -s \"$s\" -e '@.socksd.instances.main') && \
             echo \"$(jsonfilter -s \"$i\" -e '@.running') $(jsonfilter -s \"$i\" -e '@.pid')\"");
        let text = String::from_utf8(out.stdout).unwrap();
        let mut w = text.split_whitespace();
        let running = w.next()? == "true";
        Some((running, w.next().and_then(|p| p.parse().ok()).unwrap_or(0)))
    }

    fn logread(&self) -> String {
        self.run("logread")
    }

    fn enable(&self, settings: &[&str]) {
        let mut script = String::from("uci set socksd.main.enabled=1");
        for s in settings {
            script.push_str(&format!(" && uci set 'socksd.main.{s}'"));
        }
        self.run(&(script + " && uci commit socksd"));
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.owrt("down").output();
        for mut c in self.started.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
        let _ = std::fs::remove_dir_all(self.root.with_extension("www"));
    }
}

/// Retries `f` until it holds, for at most [`SETTLE`]: procd, its
/// triggers and a reload act in the background, and their only sign is
/// the state they leave.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + SETTLE;
    while !f() {
        assert!(Instant::now() < end, "not within {SETTLE:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// curl's exit code for a proxy that refused the login or the request.
const CURL_PROXY_REFUSED: i32 = 97;

/// From a live install to removal: opkg with its postinst, uci, the init
/// script, curl from the LAN client over socks5h, socks5 and socks4a to
/// IPv4 and IPv6 upstreams, with the proxy reached over IPv4 and IPv6 (the
/// shipped config serves the LAN's own subnets, both families: defect 1),
/// respawn after kill -9, stop, and opkg remove.
#[test]
fn live_install_serves_the_lan_over_both_families() {
    let Some((kit, ipk)) = setup("live_install_serves_the_lan_over_both_families") else { return };
    let r = Router::new(kit, "live");
    r.up();
    let body = r.web(&r.root.with_extension("www"));
    r.install(ipk);
    // The postinst made the user, gave the users file to it, enabled the service.
    assert_eq!(r.run("stat -c '%a %U %G' /etc/socksd /etc/socksd/users"), "750 root socksd\n640 root socksd\n");
    r.run("[ -L /etc/rc.d/S95socksd ] && grep -q '^socksd:x:1080:1080:' /etc/passwd");
    assert_eq!(r.instance(), None, "not running while enabled=0");

    r.enable(&[]);
    r.run("/etc/init.d/socksd start");
    let url = |host: &str| format!("http://{host}:8000/{FILE}");
    eventually("the LAN client is served", || {
        r.curl(&format!("socks5h://{LAN4}:1080"), &url("www.example.test")).0 == 0
    });
    for proxy in [LAN4, LAN6] {
        for scheme in ["socks5h", "socks5", "socks4a"] {
            let (code, got) = r.curl(&format!("{scheme}://{proxy}:1080"), &url("www.example.test"));
            assert_eq!((code, got == body), (0, true), "curl {scheme}://{proxy}:1080");
        }
        let (code, got) = r.curl(&format!("socks5://{proxy}:1080"), &url("[fd99::2]"));
        assert_eq!((code, got == body), (0, true), "an IPv6 upstream through {proxy}");
    }
    let (running, pid) = r.instance().expect("an instance");
    assert!(running);
    // Jailed: its own user, its own mount namespace.
    // ujail, procd's instance, names itself after the jail; the server is its child.
    let server = |jail: u32| {
        format!("for p in $(pidof socksd); do grep -q '^PPid:[[:space:]]*{jail}$' /proc/$p/status && s=$p; done")
    };
    r.run(&format!(
        "{}; grep -q '^Uid:[[:space:]]*1080' /proc/$s/status && \
         [ \"$(readlink /proc/$s/ns/mnt)\" != \"$(readlink /proc/self/ns/mnt)\" ]",
        server(pid)
    ));

    r.run(&format!("{}; kill -9 $s", server(pid)));
    eventually("procd respawns it", || r.instance().is_some_and(|(run, p)| run && p != pid));
    eventually("served again", || {
        r.curl(&format!("socks5h://{LAN6}:1080"), &url("www.example.test")) == (0, body.clone())
    });

    r.run("/etc/init.d/socksd stop");
    eventually("stopped", || r.instance().is_none());
    assert!(!r.sh("pidof socksd").status.success(), "no socksd left");
    let log = r.logread();
    assert!(log.contains("listening on [fd12:3456:789a::1]:1080"), "{log}");
    assert!(!log.contains("socksd: socksd:"), "the name once per line: {log}");
    r.run("opkg remove socksd && [ ! -e /usr/bin/socksd ] && [ ! -e /etc/init.d/socksd ]");
}

/// Defect 2: a reload sees the users file however it was edited: in place
/// (>>), replaced by `sed -i`, or written beside it and renamed over it
/// (editors, LuCI).
#[test]
fn reload_sees_every_kind_of_users_file_edit() {
    let Some((kit, ipk)) = setup("reload_sees_every_kind_of_users_file_edit") else { return };
    let r = Router::new(kit, "users");
    r.up();
    let body = r.web(&r.root.with_extension("www"));
    r.install(ipk);
    r.run("echo 'alice:one' >>/etc/socksd/users");
    r.enable(&["users_file=/etc/socksd/users"]);
    r.run("/etc/init.d/socksd start");
    let url = format!("http://www.example.test:8000/{FILE}");
    let login = |who: &str| r.curl(&format!("socks5h://{who}@{LAN4}:1080"), &url);
    eventually("alice logs in", || login("alice:one") == (0, body.clone()));
    let pid = r.instance().unwrap().1;

    for (edit, now, gone) in [
        ("sed -i 's/^alice:one$/bob:two/' /etc/socksd/users", "bob:two", "alice:one"),
        ("echo 'carol:three' >>/etc/socksd/users", "carol:three", "alice:one"),
        (
            "f=/etc/socksd/users; grep -v '^bob:' $f >$f.new; echo 'dave:four' >>$f.new; \
             chgrp socksd $f.new; chmod 0640 $f.new; mv $f.new $f",
            "dave:four",
            "bob:two",
        ),
    ] {
        r.run(&format!("{edit} && /etc/init.d/socksd reload"));
        eventually(&format!("{now} logs in after: {edit}"), || login(now).0 == 0);
        assert_eq!(login(gone).0, CURL_PROXY_REFUSED, "{gone} refused after: {edit}");
    }
    assert_eq!(r.instance().unwrap().1, pid, "reloads, not restarts");
}

/// Defect 4: following the config's own comment (uncommenting users_file
/// while the users file has only comments) gives one clear line in
/// logread and no instance, not a respawn loop; so do a users file that
/// the unprivileged service cannot read and a port it cannot use. Fixing
/// the setting and reloading starts it.
#[test]
fn a_bad_setting_is_one_line_and_no_crash_loop() {
    let Some((kit, ipk)) = setup("a_bad_setting_is_one_line_and_no_crash_loop") else { return };
    let r = Router::new(kit, "loop");
    r.up();
    let body = r.web(&r.root.with_extension("www"));
    r.install(ipk);
    r.run(
        "sed -i \"s|#option users_file '/etc/socksd/users'|option users_file '/etc/socksd/users'|\" /etc/config/socksd",
    );
    r.enable(&[]);
    r.run("/etc/init.d/socksd start");
    assert_eq!(r.instance(), None, "no instance for a users file without users");
    let log = r.logread();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("not started")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("main: not started: --users-file: /etc/socksd/users: no users"), "{log}");
    assert!(!log.contains("crash loop"), "{log}");

    r.run("echo 'alice:one' >>/etc/socksd/users && /etc/init.d/socksd reload");
    let url = format!("http://www.example.test:8000/{FILE}");
    eventually("it starts once the file has a user", || {
        r.curl(&format!("socks5h://alice:one@{LAN4}:1080"), &url) == (0, body.clone())
    });

    r.run("chmod 0600 /etc/socksd/users && /etc/init.d/socksd reload");
    eventually("no instance when user socksd cannot read the users file", || r.instance().is_none());
    assert!(r.logread().contains("not started: users_file /etc/socksd/users is not readable by user socksd"));
    r.run("chmod 0640 /etc/socksd/users && /etc/init.d/socksd reload");
    eventually("started again", || r.instance().is_some_and(|(run, _)| run));

    // A listen address that is not the router's.
    r.run("uci add_list socksd.main.listen=192.0.2.1:1080 && uci commit socksd && /etc/init.d/socksd reload");
    eventually("no instance on an address of another host", || r.instance().is_none());
    assert!(r.logread().contains("main: not started: listen on 192.0.2.1:1080: not an address of this host"));
    r.run("uci delete socksd.main.listen && uci commit socksd && /etc/init.d/socksd reload");
    eventually("started again", || r.instance().is_some_and(|(run, _)| run));

    r.run("uci set socksd.main.port=80 && uci commit socksd && /etc/init.d/socksd reload");
    eventually("no instance on a privileged port", || r.instance().is_none());
    assert!(r.logread().contains("not started: --listen 192.168.1.1:80: the service runs as user socksd"));
}

/// Defect 5: with `option interface`, the service follows the interface:
/// down, it stops and says so (instead of falling back to 127.0.0.1:1080
/// silently); up, it serves again. With neither listen nor interface it
/// serves 127.0.0.1:1080 and says so.
#[test]
fn the_service_follows_its_interface() {
    let Some((kit, ipk)) = setup("the_service_follows_its_interface") else { return };
    let r = Router::new(kit, "iface");
    r.up();
    let body = r.web(&r.root.with_extension("www"));
    r.install(ipk);
    r.enable(&[]);
    r.run("/etc/init.d/socksd start");
    let url = format!("http://www.example.test:8000/{FILE}");
    let served = || r.curl(&format!("socks5h://{LAN4}:1080"), &url) == (0, body.clone());
    eventually("served", served);

    r.run("ifdown lan");
    eventually("stopped while lan is down", || r.instance().is_none());
    assert!(r.logread().contains("main: interface lan is down; waiting for it"));
    r.run("ifup lan");
    eventually("served again once lan is up", served);

    r.run("uci delete socksd.main.interface && uci commit socksd && /etc/init.d/socksd reload");
    eventually("loopback only", || {
        r.sh("ubus call service list '{\"name\":\"socksd\"}'").stdout.windows(14).any(|w| w == b"127.0.0.1:1080")
    });
    assert!(r.logread().contains("main: neither listen nor interface is set: serving 127.0.0.1:1080"));
}

/// Defect 6: the jail follows DNS changes. The resolver file is replaced
/// (as netifd and dnsmasq do: a new file, renamed over the old) and an
/// interface event follows (a WAN reconnect); lookups inside the jail then
/// use the new servers, without a restart.
#[test]
fn the_jail_follows_dns_changes() {
    let Some((kit, ipk)) = setup("the_jail_follows_dns_changes") else { return };
    let r = Router::new(kit, "dns");
    r.up();
    let body = r.web(&r.root.with_extension("www"));
    // No host has 10.99.0.3 (the WAN's subnet): every lookup times out,
    // after a second.
    r.run("printf 'nameserver 10.99.0.3\\noptions timeout:1 attempts:1\\n' >/tmp/resolv.new && mv /tmp/resolv.new /tmp/resolv.conf");
    for n in 1..=3 {
        r.kit_ok(&["dns", &format!("n{n}.example.test"), "10.99.0.2"]);
    }
    r.install(ipk);
    r.enable(&[]);
    r.run("/etc/init.d/socksd start");
    let fetch = |name: &str| r.curl(&format!("socks5h://{LAN4}:1080"), &format!("http://{name}:8000/{FILE}"));
    eventually("up, with lookups failing", || fetch("n1.example.test").0 == CURL_PROXY_REFUSED);
    let pid = r.instance().unwrap().1;

    r.run("printf 'nameserver 127.0.0.1\\n' >/tmp/resolv.new && mv /tmp/resolv.new /tmp/resolv.conf && ifup wan");
    // A fresh name each try: a failed one is remembered for 5 s.
    let mut n = 0;
    eventually("lookups use the new server", || {
        n += 1;
        fetch(&format!("n{}.example.test", 2 + n % 2)) == (0, body.clone())
    });
    assert_eq!(r.instance().unwrap().1, pid, "no restart: connections are kept");
}

/// Defect 3 and the image build: the files as an image build installs
/// them (opkg --offline-root, then the postinst with IPKG_INSTROOT) keep
/// the users file private, the first boot gives it to the socksd group,
/// and the jailed service reads it. The `.ipk` installs exactly the files
/// (and modes) that the feed Makefile's install section gives.
#[test]
fn image_build_keeps_the_users_file_private() {
    let Some((kit, ipk)) = setup("image_build_keeps_the_users_file_private") else { return };
    let r = Router::new(kit, "image");
    let prefix = std::env::var("OWRT_PREFIX").unwrap_or_else(|_| "/tmp/openwrt-runtime".into());
    let root = r.root.to_str().unwrap();
    let opkg = Command::new(format!("{prefix}/bin/opkg-cl"))
        .args(["--offline-root", root, "--conf", &format!("{root}/etc/opkg.conf"), "install", ipk.to_str().unwrap()])
        .env("LD_LIBRARY_PATH", format!("{prefix}/lib"))
        .output()
        .unwrap();
    assert!(opkg.status.success(), "opkg --offline-root: {}", String::from_utf8_lossy(&opkg.stderr));
    // As OpenWrt's rootfs.mk runs it: on the build host, bash, IPKG_INSTROOT set.
    let post = Command::new("bash")
        .arg(format!("{root}/usr/lib/opkg/info/socksd.postinst"))
        .env("IPKG_INSTROOT", root)
        .output()
        .unwrap();
    assert!(post.status.success(), "postinst: {}", String::from_utf8_lossy(&post.stderr));
    let mode = |p: &str| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(format!("{root}{p}")).unwrap();
        (m.mode() & 0o7777, m.uid(), m.gid())
    };
    assert_eq!(mode("/etc/socksd/users"), (0o600, 0, 0), "the image's users file is root's alone");
    assert!(std::fs::read_to_string(format!("{root}/etc/passwd")).unwrap().contains("socksd:x:1080:1080:"));
    assert!(Path::new(&format!("{root}/etc/rc.d/S95socksd")).exists(), "enabled in the image");

    // The same files and modes as the kit's reading of the Makefile.
    let listed = |r: &Router| -> Vec<(String, u32)> {
        use std::os::unix::fs::MetadataExt;
        let list = std::fs::read_to_string(r.root.join("usr/lib/opkg/info/socksd.list")).unwrap();
        let mut v: Vec<(String, u32)> = list
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .map(|p| {
                let m = std::fs::metadata(format!("{}{p}", r.root.display())).unwrap().mode() & 0o7777;
                (p, m)
            })
            .collect();
        v.sort();
        v
    };
    let feed = Router::new(kit, "feed");
    let bin = manifest().join("target").join(TRIPLE).join("router/socksd");
    feed.kit_ok(&["install-files", manifest().join("contrib/openwrt/socksd").to_str().unwrap(), bin.to_str().unwrap()]);
    assert_eq!(listed(&r), listed(&feed), "the .ipk and the feed Makefile install the same files");
    drop(feed);

    // First boot: OpenWrt's boot runs the uci-defaults scripts once.
    r.run("cd /etc/uci-defaults && for f in *; do (. ./$f) && rm -f $f; done; [ ! -e 90_socksd ]");
    assert_eq!(mode("/etc/socksd/users"), (0o640, 0, 1080));
    assert_eq!(mode("/etc/socksd"), (0o750, 0, 1080));
    r.up();
    let body = r.web(&r.root.with_extension("www"));
    r.run("echo 'alice:one' >>/etc/socksd/users");
    r.enable(&["users_file=/etc/socksd/users"]);
    r.run("/etc/init.d/socksd start");
    eventually("the jailed service reads the users file", || {
        r.curl(&format!("socks5h://alice:one@{LAN4}:1080"), &format!("http://www.example.test:8000/{FILE}"))
            == (0, body.clone())
    });
}

/// Defect 7: the init script's help is aligned like OpenWrt's own
/// commands (extra_command, not EXTRA_COMMANDS/EXTRA_HELP).
#[test]
fn init_script_help_is_aligned() {
    let Some((kit, ipk)) = setup("init_script_help_is_aligned") else { return };
    let r = Router::new(kit, "help");
    r.up();
    r.install(ipk);
    let help = String::from_utf8(r.sh("/etc/init.d/socksd help").stdout).unwrap();
    let commands: Vec<&str> = help.lines().filter(|l| l.starts_with('\t')).collect();
    assert!(commands.iter().any(|l| l.starts_with("\tstats ")), "{help}");
    for l in &commands {
        // rc.common's own: a tab, the command padded to 16, the text.
        let (cmd, text) = l[1..].split_at(16.min(l.len() - 1));
        assert!(!cmd.contains('\t') && cmd.ends_with(' ') && !text.starts_with(' '), "misaligned: {l:?}\n{help}");
    }
}
