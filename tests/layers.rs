//! The house rules, checked: `src/lib.rs` lists the modules in layers,
//! and a module may use only modules listed before it (so imports go one
//! way and there is no circle); no source file is much over 400 lines
//! without its tests.

use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
const MAX_LINES: usize = 420;

/// Module names in the order `lib.rs` declares them.
fn modules() -> Vec<String> {
    let lib = std::fs::read_to_string(Path::new(SRC).join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub ").unwrap_or(l.trim()).strip_prefix("mod "))
        .filter_map(|rest| rest.strip_suffix(';'))
        .map(str::to_string)
        .collect()
}

/// The files of module `m`: `src/m.rs`, or everything under `src/m/`.
fn files(m: &str) -> Vec<PathBuf> {
    let file = Path::new(SRC).join(format!("{m}.rs"));
    if file.exists() {
        return vec![file];
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(Path::new(SRC).join(m))
        .unwrap_or_else(|_| panic!("module {m} has no file"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    out.sort();
    out
}

/// The code of a file without comments and without its `#[cfg(test)]`
/// module (tests may reach anywhere).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let body = text.split("#[cfg(test)]\nmod tests").next().unwrap();
    body.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The modules named as `crate::NAME` in `code`.
fn uses(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + 7..];
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        if end > 0 {
            out.push(rest[..end].to_string());
        }
    }
    out
}

#[test]
fn imports_go_one_way() {
    let order = modules();
    assert!(order.len() > 20, "lib.rs lists the modules: {order:?}");
    let mut wrong = Vec::new();
    for (i, m) in order.iter().enumerate() {
        for f in files(m) {
            for used in uses(&code(&f)) {
                match order.iter().position(|o| *o == used) {
                    Some(j) if j <= i => {}
                    Some(_) => wrong.push(format!("{} uses {used}, listed after {m}", f.display())),
                    // `crate::Config` and the like: items lib.rs re-exports.
                    None => assert!(used.starts_with(char::is_uppercase), "{}: crate::{used}?", f.display()),
                }
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers:\n{}", wrong.join("\n"));
}

#[test]
fn no_file_is_much_over_400_lines_without_tests() {
    let mut long = Vec::new();
    let mut all = vec![Path::new(SRC).join("lib.rs"), Path::new(SRC).join("main.rs")];
    for m in modules() {
        all.extend(files(&m));
    }
    for f in all {
        let n = std::fs::read_to_string(&f).unwrap().split("#[cfg(test)]\nmod tests").next().unwrap().lines().count();
        if n > MAX_LINES {
            long.push(format!("{}: {n} lines", f.display()));
        }
    }
    assert!(long.is_empty(), "{}", long.join("\n"));
}
