//! The GSS-API method's messages (RFC 1961), apart from any GSS library:
//! the `VER MTYP LEN TOKEN` framing of §3–§5, the protection levels of §4
//! and the server's choice among them. Pure, so the framing is fuzzed
//! and tested without Kerberos; the library calls live in `gss/` (cargo
//! feature `gssapi`).

use crate::parse::Parsed;

/// The sub-negotiation version (RFC 1961 §3).
pub const VERSION: u8 = 1;
/// Longest token: LEN is two octets.
pub const MAX_TOKEN: usize = u16::MAX as usize;
/// Header bytes before the token.
pub const HEADER: usize = 4;
/// The abort message (RFC 1961 §3): `VER 0xFF`, no length, then close.
pub const ABORT: [u8; 2] = [VERSION, 0xFF];

/// Message types (RFC 1961 §3, §4, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mtyp {
    /// Context establishment token.
    Context = 1,
    /// Protection-level negotiation.
    Protection = 2,
    /// An encapsulated (wrapped) message: the request, the reply, data.
    Data = 3,
    /// Abort (sent without LEN and TOKEN).
    Abort = 0xFF,
}

/// What is wrong with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// VER is not 1.
    Version(u8),
    /// An MTYP other than the one expected here (the peer's abort included).
    Unexpected(u8),
    /// LEN is zero: every message carries a token.
    Empty,
    /// LEN exceeds what this server accepts here.
    TooLong(usize),
}

/// One message at the front of `buf`, of type `want`, with a token of at
/// most `max` bytes (the caller's buffer bounds it). Returns the token
/// and the bytes the message took.
pub fn parse(buf: &[u8], want: Mtyp, max: usize) -> Result<Parsed<&[u8]>, FrameError> {
    let Some(&ver) = buf.first() else { return Ok(Parsed::Incomplete) };
    if ver != VERSION {
        return Err(FrameError::Version(ver));
    }
    let Some(&mtyp) = buf.get(1) else { return Ok(Parsed::Incomplete) };
    if mtyp != want as u8 {
        return Err(FrameError::Unexpected(mtyp));
    }
    let Some(len) = buf.get(2..HEADER) else { return Ok(Parsed::Incomplete) };
    let len = u16::from_be_bytes([len[0], len[1]]) as usize;
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > max {
        return Err(FrameError::TooLong(len));
    }
    match buf.get(HEADER..HEADER + len) {
        Some(token) => Ok(Parsed::Done(token, HEADER + len)),
        None => Ok(Parsed::Incomplete),
    }
}

/// The header of a message of type `mtyp` with a `len`-byte token.
///
/// # Panics
/// If `len` is 0 or over [`MAX_TOKEN`]: callers size tokens first.
pub fn header(mtyp: Mtyp, len: usize) -> [u8; HEADER] {
    assert!(len > 0 && len <= MAX_TOKEN, "a token is 1..=65535 bytes");
    let l = (len as u16).to_be_bytes();
    [VERSION, mtyp as u8, l[0], l[1]]
}

/// Per-message protection (RFC 1961 §4). `None` is not in the RFC; it is
/// what the NEC reference server and curl use for "no encapsulation", and
/// curl accepts nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// No per-message protection: data flows as plain SOCKS (splice works).
    None = 0,
    /// Every message wrapped for integrity (`gss_wrap`, conf_req false).
    Integrity = 1,
    /// Every message wrapped for integrity and confidentiality.
    Confidentiality = 2,
}

impl Level {
    /// The level an octet names; 3 (selective, RFC 1961 §4) and anything
    /// else are not offered by this server.
    pub fn from_octet(b: u8) -> Option<Level> {
        match b {
            0 => Some(Level::None),
            1 => Some(Level::Integrity),
            2 => Some(Level::Confidentiality),
            _ => None,
        }
    }

    /// The name `--gssapi-protection` uses.
    pub fn name(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Integrity => "integrity",
            Level::Confidentiality => "confidentiality",
        }
    }
}

/// The levels this server grants (`--gssapi-protection`), never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels(u8);

impl Levels {
    /// Parses a comma-separated list of level names.
    pub fn parse(s: &str) -> Result<Levels, String> {
        let mut bits = 0u8;
        for name in s.split(',') {
            let l = [Level::None, Level::Integrity, Level::Confidentiality]
                .into_iter()
                .find(|l| l.name() == name.trim())
                .ok_or_else(|| format!("unknown protection level {name:?} (none, integrity, confidentiality)"))?;
            bits |= 1 << l as u8;
        }
        Ok(Levels(bits))
    }

    /// Whether `l` is granted.
    pub fn has(self, l: Level) -> bool {
        self.0 & (1 << l as u8) != 0
    }

    /// RFC 1961 §4 leaves the choice to the server: the client's proposal
    /// when it is granted, else the strongest granted level (a client that
    /// finds it unacceptable closes).
    pub fn choose(self, proposed: Option<Level>) -> Level {
        match proposed {
            Some(l) if self.has(l) => l,
            _ => [Level::Confidentiality, Level::Integrity, Level::None]
                .into_iter()
                .find(|&l| self.has(l))
                .unwrap_or(Level::None),
        }
    }
}

impl Default for Levels {
    /// `none` alone: what curl and the NEC clients speak.
    fn default() -> Levels {
        Levels(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        assert_eq!(parse(&[], Mtyp::Context, 100), Ok(Parsed::Incomplete));
        assert_eq!(parse(&[1, 1, 0], Mtyp::Context, 100), Ok(Parsed::Incomplete));
        assert_eq!(parse(&[1, 1, 0, 3, 9, 9], Mtyp::Context, 100), Ok(Parsed::Incomplete));
        assert_eq!(parse(&[1, 1, 0, 2, 9, 8, 7], Mtyp::Context, 100), Ok(Parsed::Done(&[9, 8][..], 6)));
        assert_eq!(parse(&[5, 1], Mtyp::Context, 100), Err(FrameError::Version(5)));
        assert_eq!(parse(&[1, 0xFF], Mtyp::Context, 100), Err(FrameError::Unexpected(0xFF)));
        assert_eq!(parse(&[1, 2, 0, 1, 0], Mtyp::Context, 100), Err(FrameError::Unexpected(2)));
        assert_eq!(parse(&[1, 3, 0, 0], Mtyp::Data, 100), Err(FrameError::Empty));
        assert_eq!(parse(&[1, 3, 1, 0], Mtyp::Data, 100), Err(FrameError::TooLong(256)));
        assert_eq!(header(Mtyp::Data, 258), [1, 3, 1, 2]);
    }

    #[test]
    fn level_choice() {
        let none = Levels::default();
        assert_eq!(none.choose(Some(Level::Confidentiality)), Level::None, "curl asks 2, takes 0");
        let all = Levels::parse("none,integrity,confidentiality").unwrap();
        assert_eq!(all.choose(Some(Level::Integrity)), Level::Integrity);
        assert_eq!(all.choose(Level::from_octet(3)), Level::Confidentiality);
        let min = Levels::parse("integrity, confidentiality").unwrap();
        assert_eq!(min.choose(Some(Level::None)), Level::Confidentiality);
        assert!(Levels::parse("none,secret").is_err());
        assert!(Levels::parse("").is_err());
    }
}
