//! The documentation matches the program: every flag `--help` prints is in
//! the man page's OPTIONS and in the README's table, and the reverse; the
//! man pages render without warnings.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_socksd");
const MAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/man/socksd.8");
const BENCH_MAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/socksd-bench/socksd-bench.1");
const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");

/// Long flags (`--name`) in a text.
fn flags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i + 2 < b.len() {
        if &b[i..i + 2] == b"--" && b[i + 2].is_ascii_lowercase() && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) {
            let end = (i + 2..b.len()).find(|&j| !(b[j].is_ascii_lowercase() || b[j] == b'-')).unwrap_or(b.len());
            out.insert(text[i..end].trim_end_matches('-').to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

fn help_flags() -> BTreeSet<String> {
    let out = common::program(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    // Only the option lines, not the examples.
    let opts = help.split("Examples:").next().unwrap();
    flags(opts)
}

/// Flags named in the man page's OPTIONS section (roff escapes removed).
fn man_option_flags() -> BTreeSet<String> {
    let man = std::fs::read_to_string(MAN).unwrap().replace("\\-", "-");
    let start = man.find(".SH OPTIONS").unwrap();
    let end = start + man[start..].find(".SH EXAMPLES").unwrap();
    let tagged: String = man[start..end]
        .lines()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == ".TP")
        .map(|w| w[1].to_string() + "\n")
        .collect();
    flags(&tagged)
}

#[test]
fn help_and_man_page_list_the_same_flags() {
    let help = help_flags();
    // The man page documents the GSS-API flags for every build; only a
    // build with the cargo feature prints them.
    let man = man_option_flags()
        .into_iter()
        .filter(|f| cfg!(feature = "gssapi") || !f.starts_with("--gssapi"))
        .collect::<BTreeSet<_>>();
    assert!(help.len() > 25, "{help:?}");
    assert_eq!(help, man, "--help and man/socksd.8 OPTIONS differ");
}

#[test]
fn readme_table_lists_every_flag() {
    let readme = std::fs::read_to_string(README).unwrap();
    let table: String = readme.lines().filter(|l| l.starts_with("| `")).map(|l| l.to_string() + "\n").collect();
    let missing: Vec<_> = help_flags().difference(&flags(&table)).cloned().collect();
    assert!(missing.is_empty(), "README flag table lacks {missing:?}");
}

#[test]
fn help_is_grouped_and_aligned() {
    let out = common::program(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for heading in ["Listening:", "Authentication:", "Access control:", "Timeouts", "Relay:", "Other:"] {
        assert!(help.contains(heading), "{heading}");
    }
    assert!(help.contains("(default 10)") && help.contains("(default 16384)"), "defaults shown");
}

#[test]
fn man_pages_render_without_warnings() {
    if Command::new("groff").arg("--version").output().is_err() {
        eprintln!("SKIPPED: groff is not installed");
        return;
    }
    for page in [MAN, BENCH_MAN] {
        let out = Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z", page]).output().unwrap();
        assert!(out.status.success(), "{page}");
        assert!(out.stderr.is_empty(), "{page}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
