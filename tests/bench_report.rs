//! socksd-bench's comparison (issue 27): real socksd servers and the direct
//! path in interleaved rounds through the tool's engine, then its reports
//! checked from outside: the JSON against the schema socksd-bench(1)
//! documents, every median, minimum and maximum against the raw rounds
//! (python3's statistics module, not the tool's own code), the CSV's
//! shape, and the SVG rendered by a real browser (headless Chromium).

mod common;

use common::*;
use socksd_bench::compare::{self, Mode, Server, Settings};
use socksd_bench::{parse_proxy, report, Targets};
use std::process::Command;
use std::time::Duration;

fn run_comparison() -> (compare::Comparison, report::Context) {
    let mut cfg = config();
    loopback_only(&mut cfg);
    let (a, a_addr) = start(cfg.clone());
    let (b, b_addr) = start(cfg);
    let mut servers = vec![Server::direct()];
    for spec in [format!("socksd={a_addr}"), format!("second=socks4a://{b_addr}")] {
        let (name, route) = parse_proxy(&spec).unwrap();
        servers.push(Server { name, route, pid: None });
    }
    let settings = Settings {
        rounds: 3,
        time: Duration::from_millis(150),
        workers: 4,
        count: 200,
        loaded_count: 200,
        quiet: true,
        ..Settings::default()
    };
    let t = Targets::start().unwrap();
    let c = compare::run(servers, vec![Mode::Latency, Mode::Udp, Mode::Bulk], settings, &t);
    drop((a, b));
    (c, report::Context::here(vec!["socksd-bench".into(), "--proxy".into(), "socksd=...".into()]))
}

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3").arg("-c").arg(script).args(args).output().expect("python3");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn json_follows_the_documented_schema_and_medians_are_the_rounds() {
    let (c, ctx) = run_comparison();
    assert!(c.failures.is_empty(), "{:?}", c.failures);
    let dir = std::env::temp_dir().join(format!("socksd-bench-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("r.json");
    std::fs::write(&json, report::json(&c, &ctx)).unwrap();
    let man = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/socksd-bench/socksd-bench.1");
    let checked = python(
        r#"
import json, re, statistics, sys
man = open(sys.argv[1]).read()
block = man.split(".SH JSON OUTPUT", 1)[1].split(".nf\n", 1)[1].split("\n.fi", 1)[0]
schema = json.loads(block.replace("\\-", "-"))
out = json.load(open(sys.argv[2]))
def same_shape(s, o, path):
    if isinstance(s, dict):
        assert isinstance(o, dict), path
        for k in s:
            assert k in o, f"{path}.{k} missing"
            same_shape(s[k], o[k], f"{path}.{k}")
    elif isinstance(s, list):
        assert isinstance(o, list), path
        for x in o:
            same_shape(s[0], x, path + "[]")
    elif isinstance(s, bool):
        assert isinstance(o, bool), path
    elif isinstance(s, (int, float)):
        assert o is None or (isinstance(o, (int, float)) and not isinstance(o, bool)), path
    else:
        assert isinstance(o, str), path
same_shape({k: v for k, v in schema.items() if k not in ("failures", "unsupported")}, out, "$")
assert out["unsupported"] == [{"server": "second", "mode": "udp"}], out["unsupported"]
assert out["schema"] == "socksd-bench/1"
assert [s["name"] for s in out["servers"]] == ["direct", "socksd", "second"]
n = 0
for r in out["results"]:
    v = [x for x in r["rounds"] if x is not None]
    assert len(r["rounds"]) == 3, r
    if r["server"] == "second" and r["mode"] == "udp":
        assert not v and r["median"] is None, r
        continue
    assert v, r
    assert abs(r["median"] - statistics.median(v)) <= 1e-9 * max(1, abs(r["median"])), r
    assert r["min"] == min(v) and r["max"] == max(v), r
    d = [x for x in out["results"] if x["server"] == "direct" and x["mode"] == r["mode"] and x["metric"] == r["metric"]][0]
    if d["median"]:
        assert abs(r["ratio_to_direct"] - r["median"] / d["median"]) < 1e-9 * r["ratio_to_direct"] + 1e-12, r
    n += 1
print(n)
"#,
        &[man, json.to_str().unwrap()],
    );
    // latency 3 + bulk 1 figures for 3 servers, udp 5 for 2 (SOCKS4 has none).
    assert_eq!(checked.trim(), "22");
    let csv = report::csv(&c);
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().ends_with("ratio_to_direct,round_1,round_2,round_3"));
    assert_eq!(lines.count(), 3 * (3 + 5 + 1));
    let md = report::markdown(&c, &ctx);
    assert!(md.contains("| latency | p50_us | us (lower is better) | socksd |"), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn svg_renders_in_headless_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
    else {
        cannot_run("svg_renders_in_headless_chromium", "no chromium (Debian package chromium)");
        return;
    };
    let (c, ctx) = run_comparison();
    let dir = std::env::temp_dir().join(format!("socksd-bench-svg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("r.svg");
    std::fs::write(&svg, report::svg(&c, &ctx)).unwrap();
    let url = format!("file://{}", svg.display());
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ];
    let profile = format!("--user-data-dir={}", dir.join("profile").display());
    // The document as the browser parsed it: an SVG root, no parser error.
    let dom = Command::new(chromium).args(flags).arg(&profile).arg("--dump-dom").arg(&url).output().unwrap();
    let text = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.status.success(), "{}", String::from_utf8_lossy(&dom.stderr));
    assert!(text.contains("<svg") && text.contains("<rect") && !text.contains("parsererror"), "{text}");
    // And drawn: a screenshot that is a PNG of some substance.
    let png = dir.join("r.png");
    let shot = Command::new(chromium)
        .args(flags)
        .arg(&profile)
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=800,900")
        .arg(&url)
        .output()
        .unwrap();
    assert!(shot.status.success(), "{}", String::from_utf8_lossy(&shot.stderr));
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 5_000, "{} bytes", bytes.len());
    std::fs::remove_dir_all(&dir).unwrap();
}
