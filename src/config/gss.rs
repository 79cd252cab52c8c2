//! The GSS-API method's settings (RFC 1961) and their flags (cargo
//! feature `gssapi`).

use super::{ArgError, Config};
use std::path::PathBuf;

/// The GSS-API method's settings (RFC 1961).
#[derive(Debug, Clone, Default)]
pub struct GssConfig {
    /// `--gssapi-keytab`.
    pub keytab: Option<PathBuf>,
    /// `--gssapi-service`: `rcmd`, or `service/host`.
    pub service: String,
    /// `--gssapi-protection`: the levels granted.
    pub levels: crate::gss_wire::Levels,
    /// `--gssapi-allow`: principals (`alice@EXAMPLE.ORG`) or realms
    /// (`@EXAMPLE.ORG`); empty admits any.
    pub allow: Vec<String>,
}

impl GssConfig {
    /// Whether `principal` (its display name, `name@REALM`) may use the
    /// proxy. `@REALM` matches the principal's realm exactly: the part
    /// after its last unescaped `@` (a `@` inside a name or realm is
    /// displayed as `\@`), so `x\@A.ORG@B.ORG` is in B.ORG, not A.ORG.
    pub fn admits(&self, principal: &str) -> bool {
        let realm = realm_of(principal);
        self.allow.is_empty()
            || self.allow.iter().any(|a| match a.strip_prefix('@') {
                Some(r) => realm == Some(r),
                None => a == principal,
            })
    }
}

/// The realm of a principal's display name: after its last `@` that no
/// backslash escapes.
fn realm_of(display: &str) -> Option<&str> {
    let b = display.as_bytes();
    (0..b.len()).rev().find_map(|i| {
        let escapes = b[..i].iter().rev().take_while(|&&c| c == b'\\').count();
        (b[i] == b'@' && escapes % 2 == 0).then(|| &display[i + 1..])
    })
}

pub(super) fn gss_flags(m: &getopts::Matches, c: &mut Config) -> Result<(), ArgError> {
    let set = ["gssapi-keytab", "gssapi-service", "gssapi-protection", "gssapi-allow"];
    if !m.opt_present("gssapi") {
        if let Some(f) = set.iter().find(|f| m.opt_present(f)) {
            return Err(ArgError(format!("--{f} needs --gssapi")));
        }
        return Ok(());
    }
    let mut g = GssConfig { service: "rcmd".into(), ..GssConfig::default() };
    g.keytab = m.opt_str("gssapi-keytab").map(PathBuf::from);
    if let Some(s) = m.opt_str("gssapi-service") {
        if s.is_empty() || s.len() > 255 || s.contains(['@', '\0']) || s.contains(char::is_whitespace) {
            return Err(ArgError(format!(
                "invalid value for --gssapi-service: '{s}' (a name like rcmd or sockd/host)"
            )));
        }
        g.service = s;
    }
    if let Some(l) = m.opt_str("gssapi-protection") {
        g.levels = crate::gss_wire::Levels::parse(&l)
            .map_err(|e| ArgError(format!("invalid value for --gssapi-protection: {e}")))?;
    }
    for a in m.opt_strs("gssapi-allow") {
        if a.is_empty() || a.len() > 255 || a.contains(char::is_whitespace) || a == "@" {
            return Err(ArgError(format!("invalid value for --gssapi-allow: '{a}' (a principal or @REALM)")));
        }
        g.allow.push(a);
    }
    c.gssapi = Some(g);
    Ok(())
}
