//! Users for RFC 1929 username/password authentication.

use crate::parse::MAX_FIELD;
use std::fmt;
use std::path::Path;

/// The largest users file read; anything bigger is refused, not buffered.
pub const MAX_USERS_FILE: u64 = 1 << 20;

#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub name: Vec<u8>,
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

/// Reads a users file: one `NAME:PASSWORD` a line, `#` starts a comment
/// line, blank lines are skipped. Errors name the line.
pub fn load_users_file(path: &Path) -> Result<Vec<User>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX_USERS_FILE {
        return Err(format!("{}: larger than {MAX_USERS_FILE} bytes", path.display()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut users = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let user = User::parse(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
        users.push(user);
    }
    Ok(users)
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
        std::fs::remove_file(&dir).unwrap();
    }
}
