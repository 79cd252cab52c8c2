//! Users for RFC 1929 username/password authentication.

use crate::escape::Escaped;
use crate::parse::MAX_FIELD;
use std::fmt;
use std::path::Path;

/// The largest users file read; anything bigger is refused, not buffered.
pub const MAX_USERS_FILE: u64 = 1 << 20;

#[derive(Clone, PartialEq, Eq)]
/// One user for RFC 1929 username/password authentication.
pub struct User {
    /// The user name, as sent on the wire.
    pub name: Vec<u8>,
    /// The password, as sent on the wire.
    pub pass: Vec<u8>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "User({:?}, <redacted>)", String::from_utf8_lossy(&self.name))
    }
}

impl User {
    /// Parses `NAME:PASSWORD`; the name may not contain ':', the password
    /// may. Both are 1..=255 bytes, the limits of RFC 1929's length bytes.
    pub fn parse(spec: &str) -> Result<User, String> {
        let (name, pass) = spec.split_once(':').ok_or("expected NAME:PASSWORD")?;
        if name.is_empty() || pass.is_empty() {
            return Err("name and password must not be empty".into());
        }
        if name.len() > MAX_FIELD || pass.len() > MAX_FIELD {
            return Err(format!("name and password are limited to {MAX_FIELD} bytes"));
        }
        Ok(User { name: name.as_bytes().to_vec(), pass: pass.as_bytes().to_vec() })
    }
}

/// The text of a users file, size-checked.
fn read_users_text(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX_USERS_FILE {
        return Err(format!("{}: larger than {MAX_USERS_FILE} bytes", path.display()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(text))
}

/// One line of a users file: a user, nothing (blank or comment), or why
/// it is wrong.
fn parse_line(line: &str) -> Result<Option<User>, String> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let trimmed = line.trim_start_matches([' ', '\t']);
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let user = User::parse(line)?;
    let bad = |b: &u8| b.is_ascii_control();
    if user.name.iter().any(|b| bad(b) || *b == b' ') {
        return Err("a name may not contain whitespace or control characters".into());
    }
    if user.pass.iter().any(bad) {
        return Err("a password may not contain control characters".into());
    }
    if user.pass.last() == Some(&b' ') {
        return Err("the password ends with a space (trailing spaces would be part of it)".into());
    }
    Ok(Some(user))
}

/// Reads a users file, one `NAME:PASSWORD` a line.
///
/// - A UTF-8 byte-order mark at the start is skipped, and so is a CR at
///   the end of a line (files edited on Windows).
/// - Blank lines, and lines whose first non-blank character is `#`, are
///   skipped. There are no comments after a user: everything after the
///   first `:` is the password, `#` included.
/// - A name may not contain whitespace or control characters (so an
///   indented line is an error, not a name with spaces); a password may
///   contain spaces, but may not end with one, nor contain control
///   characters.
/// - A file with no users is an error, as is a name given twice: reloading
///   either would silently turn authentication off, or keep an old
///   password working next to a new one.
///
/// Errors name the file and line.
pub fn load_users_file(path: &Path) -> Result<Vec<User>, String> {
    let text = read_users_text(path)?;
    let mut users: Vec<User> = Vec::new();
    let mut lines: Vec<usize> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = |e: String| format!("{}:{}: {e}", path.display(), i + 1);
        let Some(user) = parse_line(line).map_err(at)? else { continue };
        if let Some(j) = users.iter().position(|u| u.name == user.name) {
            return Err(at(format!("user '{}' is already defined on line {}", Escaped(&user.name), lines[j])));
        }
        users.push(user);
        lines.push(i + 1);
    }
    if users.is_empty() {
        return Err(format!("{}: no users (an empty users file would turn authentication off)", path.display()));
    }
    Ok(users)
}

/// What re-reading the users file (SIGHUP) gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// The file was read whole: the users now (`--user` ones included).
    Loaded(Vec<User>),
    /// The file has an error (`why`). Revocations apply all the same: of
    /// the current users, those the file no longer holds unchanged (name
    /// and password) are dropped (`revoked`); the others stay (`users`).
    /// New users and passwords wait for a file without errors. Two things
    /// keep every current user instead: a file that cannot be read at all
    /// (nothing is known of it), and one that would leave nobody, which
    /// would turn authentication off (`kept_all`).
    Failed {
        /// The file's error, with its line.
        why: String,
        /// The users that stay.
        users: Vec<User>,
        /// The names of those dropped.
        revoked: Vec<Vec<u8>>,
        /// Every current user stayed (an unreadable file, or none left).
        kept_all: bool,
    },
}

/// Re-reads `path` for `current` users, `flag_users` (from `--user`)
/// always staying. Why a failed reload still revokes: the users file is
/// where an operator takes access away, and a typo elsewhere in the file
/// must not keep a user he just removed logging in; adding never happens
/// from a file with errors, so a failed reload can only take away.
pub fn reload_users(path: &Path, flag_users: &[User], current: &[User]) -> Reload {
    let why = match load_users_file(path).and_then(|more| {
        check_unique(flag_users, &more)?;
        Ok(more)
    }) {
        Ok(more) => return Reload::Loaded(flag_users.iter().cloned().chain(more).collect()),
        Err(why) => why,
    };
    let keep_all = |why: String| Reload::Failed { why, users: current.to_vec(), revoked: Vec::new(), kept_all: true };
    let Ok(text) = read_users_text(path) else { return keep_all(why) };
    // The file's good lines; a name on two lines is not trusted either way.
    let good: Vec<User> = text.lines().filter_map(|l| parse_line(l).ok().flatten()).collect();
    let once = |u: &User| good.iter().filter(|g| g.name == u.name).count() == 1 && good.contains(u);
    let (users, gone): (Vec<User>, Vec<User>) =
        current.iter().cloned().partition(|u| flag_users.contains(u) || once(u));
    if users.is_empty() && !current.is_empty() {
        return keep_all(why);
    }
    Reload::Failed { why, users, revoked: gone.into_iter().map(|u| u.name).collect(), kept_all: false }
}

/// Fails if a name is defined both by `--user` and in the users file (or
/// twice by `--user`): two passwords for one name would both work.
pub fn check_unique(flag_users: &[User], file_users: &[User]) -> Result<(), String> {
    for (i, u) in flag_users.iter().enumerate() {
        if flag_users[..i].iter().chain(file_users).any(|o| o.name == u.name) {
            return Err(format!("user '{}' is defined more than once", Escaped(&u.name)));
        }
    }
    Ok(())
}

/// Equality whose running time depends only on the lengths, not on where
/// the first difference is.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() != b.len()) as u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Checks a username and password against every user without stopping at
/// the first match, so timing says nothing about which part was wrong.
pub fn verify(users: &[User], name: &[u8], pass: &[u8]) -> bool {
    let mut ok = false;
    for u in users {
        ok |= ct_eq(&u.name, name) & ct_eq(&u.pass, pass);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_verify() {
        let users = vec![User::parse("alice:s3:cret").unwrap(), User::parse("bob:pw").unwrap()];
        assert_eq!(users[0].pass, b"s3:cret");
        assert!(verify(&users, b"alice", b"s3:cret"));
        assert!(verify(&users, b"bob", b"pw"));
        assert!(!verify(&users, b"bob", b"pw "));
        assert!(!verify(&users, b"bob", b""));
        assert!(!verify(&users, b"", b""));
        assert!(!verify(&users, b"alice", b"pw"));
        assert!(User::parse("nocolon").is_err());
        assert!(User::parse(":x").is_err());
        assert!(User::parse("x:").is_err());
        assert!(!format!("{:?}", users[0]).contains("cret"));
    }

    #[test]
    fn users_file() {
        let dir = std::env::temp_dir().join(format!("socksd-users-{}", std::process::id()));
        std::fs::write(&dir, "# comment\n\nalice:one\r\n  # indented comment\nbob:two:three\n").unwrap();
        let users = load_users_file(&dir).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[1].pass, b"two:three");
        std::fs::write(&dir, "alice:one\nbroken\n").unwrap();
        let err = load_users_file(&dir).unwrap_err();
        assert!(err.ends_with(":2: expected NAME:PASSWORD"), "{err}");
        // BOM skipped; everything after the first colon is the password.
        std::fs::write(&dir, "\u{feff}carol:pw # not a comment\n").unwrap();
        assert_eq!(load_users_file(&dir).unwrap()[0].pass, b"pw # not a comment");
        for (text, why) in [
            ("", "no users"),
            ("# only a comment\n\n", "no users"),
            ("dup:old\ndup:new\n", "already defined on line 1"),
            ("  alice:pw\n", "whitespace"),
            ("alice:pw \n", "ends with a space"),
            ("alice:p\x1bw\n", "control"),
        ] {
            std::fs::write(&dir, text).unwrap();
            let err = load_users_file(&dir).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
        // A failed reload: revocations apply, nothing is added, and
        // authentication never turns off.
        let u = |s: &str| User::parse(s).unwrap();
        let current = vec![u("alice:one"), u("bob:two"), u("carol:three")];
        std::fs::write(&dir, "alice:one\nbroken\ncarol:new\ndave:four\n").unwrap();
        match reload_users(&dir, &[], &current) {
            Reload::Failed { why, users, revoked, kept_all: false } => {
                assert!(why.ends_with(":2: expected NAME:PASSWORD"), "{why}");
                assert_eq!(users, [u("alice:one")], "bob removed, carol's password changed, dave new");
                assert_eq!(revoked, [b"bob".to_vec(), b"carol".to_vec()]);
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&dir, "broken\n").unwrap();
        assert!(matches!(reload_users(&dir, &[], &current), Reload::Failed { kept_all: true, .. }), "never off");
        std::fs::write(&dir, "alice:one\nalice:one\n").unwrap();
        assert!(matches!(reload_users(&dir, &[], &current), Reload::Failed { kept_all: true, .. }), "ambiguous");
        std::fs::write(&dir, "bob:two\n").unwrap();
        assert_eq!(reload_users(&dir, &[u("x:y")], &current), Reload::Loaded(vec![u("x:y"), u("bob:two")]));
        std::fs::remove_file(&dir).unwrap();
        assert!(matches!(reload_users(&dir, &[], &current), Reload::Failed { kept_all: true, .. }), "unreadable");
        let a = User::parse("a:1").unwrap();
        assert!(check_unique(std::slice::from_ref(&a), &[User::parse("a:2").unwrap()]).is_err());
        assert!(check_unique(&[a.clone(), a.clone()], &[]).is_err());
        assert!(check_unique(&[a], &[User::parse("b:2").unwrap()]).is_ok());
    }
}
