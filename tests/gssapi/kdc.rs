//! A Kerberos realm of the tests' own on loopback: MIT's KDC in a temp
//! directory, a keytab for the proxy, and a ticket for alice. Started
//! once per test process; a shell keeper stops the KDC (by its PID) and
//! removes the directory when this process exits and closes the pipe
//! the keeper reads.

use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const REALM: &str = "SOCKSD.TEST";
pub const ALICE: &str = "alice@SOCKSD.TEST";

/// The realm's files and its running KDC.
#[derive(Debug)]
pub struct Kdc {
    pub dir: PathBuf,
    pub keytab: PathBuf,
    pub conf: PathBuf,
    pub ccache: PathBuf,
    /// The keeper; its stdin is held open for the life of this process.
    _keeper: Mutex<(Child, ChildStdin)>,
}

impl Kdc {
    /// The environment a socksd or curl started by a test needs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("KRB5_CONFIG", self.conf.display().to_string()),
            ("KRB5CCNAME", format!("FILE:{}", self.ccache.display())),
            ("KRB5_KTNAME", format!("FILE:{}", self.keytab.display())),
            ("KRB5RCACHEDIR", self.dir.display().to_string()),
        ]
    }
}

static KDC: OnceLock<Option<Kdc>> = OnceLock::new();

/// The realm, started on first use; `None` (after a SKIP line) where MIT
/// Kerberos' programs are missing, except under CI, where `.ci/run`
/// installs them and their absence fails the test.
pub fn kdc(test: &str) -> Option<&'static Kdc> {
    let k = KDC.get_or_init(start).as_ref();
    if k.is_none() {
        assert!(std::env::var_os("CI").is_none(), "{test}: krb5kdc, kdb5_util, kadmin.local or kinit missing under CI");
        eprintln!("SKIP {test}: needs MIT Kerberos (apt install krb5-kdc krb5-admin-server krb5-user)");
    }
    k
}

/// A program from PATH or the sbin directories (not on every PATH).
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path.split(':').chain(["/usr/sbin", "/sbin"]).map(|d| Path::new(d).join(name)).find(|p| p.is_file());
    found
}

fn run(cmd: &mut Command) {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A port free for both TCP and UDP on 127.0.0.1 (the KDC takes both).
fn free_port() -> u16 {
    loop {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn start() -> Option<Kdc> {
    let [krb5kdc, kdb5_util, kadmin, kinit] = ["krb5kdc", "kdb5_util", "kadmin.local", "kinit"].map(tool);
    let (krb5kdc, kdb5_util, kadmin, kinit) = (krb5kdc?, kdb5_util?, kadmin?, kinit?);
    let dir = std::env::temp_dir().join(format!("socksd-kdc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let d = dir.display();
    let conf = dir.join("krb5.conf");
    std::fs::write(
        &conf,
        format!(
            "[libdefaults]\n default_realm = {REALM}\n dns_lookup_kdc = false\n dns_lookup_realm = false\n\
             rdns = false\n dns_canonicalize_hostname = false\n udp_preference_limit = 1\n\
             [realms]\n {REALM} = {{\n  kdc = 127.0.0.1:{port}\n }}\n"
        ),
    )
    .unwrap();
    let kdc_conf = dir.join("kdc.conf");
    std::fs::write(
        &kdc_conf,
        format!(
            "[kdcdefaults]\n kdc_listen = 127.0.0.1:{port}\n kdc_tcp_listen = 127.0.0.1:{port}\n\
             [realms]\n {REALM} = {{\n  database_name = {d}/principal\n  key_stash_file = {d}/stash\n\
               acl_file = {d}/kadm5.acl\n  max_life = 1h\n }}\n\
             [logging]\n kdc = FILE:{d}/kdc.log\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("kadm5.acl"), "").unwrap();
    let keytab = dir.join("socksd.keytab");
    let ccache = dir.join("cc");
    // Every GSS call in this process (the tests' client, the in-process
    // server) and every program it starts reads these; set before the
    // first, under the OnceLock.
    std::env::set_var("KRB5_CONFIG", &conf);
    std::env::set_var("KRB5CCNAME", format!("FILE:{}", ccache.display()));
    std::env::set_var("KRB5_KTNAME", format!("FILE:{}", keytab.display()));
    std::env::set_var("KRB5RCACHEDIR", &dir);
    std::env::set_var("KRB5_KDC_PROFILE", &kdc_conf);
    let k = Kdc { dir: dir.clone(), keytab, conf, ccache, _keeper: Mutex::new(keeper(&krb5kdc, &dir)) };
    run(Command::new(&kdb5_util).args(["create", "-s", "-r", REALM, "-P", "masterpw", "-W"]));
    let kt = k.keytab.display().to_string();
    for q in [
        "addprinc -pw userpw alice".to_string(),
        "addprinc -randkey rcmd/localhost".into(),
        format!("ktadd -k {kt} rcmd/localhost"),
        // A key the proxy's keytab has an old version of: its tickets are
        // ones the proxy cannot read.
        "addprinc -randkey rcmd/stale".into(),
        format!("ktadd -k {kt} rcmd/stale"),
        "cpw -randkey rcmd/stale".into(),
    ] {
        run(Command::new(&kadmin).args(["-r", REALM, "-q", &q]));
    }
    // The database exists now; tell the keeper to start the KDC.
    k._keeper.lock().unwrap().1.write_all(b"go\n").unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "the KDC did not listen on 127.0.0.1:{port}; see {d}/kdc.log");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = Command::new(&kinit).arg("alice").stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    c.stdin.take().unwrap().write_all(b"userpw\n").unwrap();
    assert!(c.wait().unwrap().success(), "kinit alice failed");
    Some(k)
}

/// The shell that runs the KDC: it starts it when told, and when this
/// process exits (its stdin closes) stops it by PID and removes `dir`.
fn keeper(krb5kdc: &Path, dir: &Path) -> (Child, ChildStdin) {
    let script = "read go || { rm -rf \"$1\"; exit; }; \"$2\" -n -r \"$3\" & k=$!; cat >/dev/null; kill $k; wait $k; rm -rf \"$1\"";
    let mut c = Command::new("sh")
        .args(["-c", script, "keeper"])
        .arg(dir)
        .arg(krb5kdc)
        .arg(REALM)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = c.stdin.take().unwrap();
    (c, stdin)
}
