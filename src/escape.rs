//! Client-controlled bytes (names, user names) made safe for a log line.
//!
//! A requested domain or a user name may hold CR, LF or terminal escape
//! sequences; written raw they would forge log lines or drive the reader's
//! terminal. [`Escaped`] prints printable ASCII as it is and everything
//! else as `\xNN` (and `\` as `\\`), so one client value is always one run
//! of visible characters.

use std::fmt;

/// Displays bytes with control and non-ASCII bytes escaped.
///
/// ```
/// use socksd::escape::Escaped;
/// assert_eq!(Escaped(b"a.example\r\nforged").to_string(), "a.example\\x0d\\x0aforged");
/// assert_eq!(Escaped(b"\x1b[2J").to_string(), "\\x1b[2J");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a [u8]);

/// Like [`Escaped`], and a space is escaped too (`\x20`): one value of a
/// `key=value` line is one word.
///
/// ```
/// use socksd::escape::Field;
/// assert_eq!(Field(b"a b=c").to_string(), "a\\x20b=c");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Field<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        escape(self.0, 0x20, f)
    }
}

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        escape(self.0, 0x21, f)
    }
}

/// Writes `bytes` with every byte outside `low..0x7f`, and `\`, escaped.
fn escape(bytes: &[u8], low: u8, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut rest = bytes;
    while !rest.is_empty() {
        let plain = rest.iter().position(|&b| !(low..0x7f).contains(&b) || b == b'\\').unwrap_or(rest.len());
        // The run is printable ASCII, hence valid UTF-8.
        f.write_str(std::str::from_utf8(&rest[..plain]).unwrap_or(""))?;
        let Some(&b) = rest.get(plain) else { break };
        if b == b'\\' {
            f.write_str("\\\\")?;
        } else {
            write!(f, "\\x{b:02x}")?;
        }
        rest = &rest[plain + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_but_printable_ascii() {
        assert_eq!(Escaped(b"plain.example").to_string(), "plain.example");
        assert_eq!(Escaped(b"a\\b").to_string(), "a\\\\b");
        assert_eq!(Escaped(b"\0\x7f\xff").to_string(), "\\x00\\x7f\\xff");
        assert_eq!(Escaped("é".as_bytes()).to_string(), "\\xc3\\xa9");
        assert_eq!(Escaped(b"").to_string(), "");
    }
}
