//! GSS-API (RFC 2743, C bindings RFC 2744) through MIT Kerberos'
//! `libgssapi_krb5`, for the GSS-API method (RFC 1961). Built only with
//! the cargo feature `gssapi`, so router builds link no Kerberos.
//!
//! Which calls may run where: `gss_accept_sec_context` reads the keytab
//! and writes the replay cache (files: a slow disk would stall), so it
//! runs on the helper thread in `worker.rs`, never on a reactor.
//! `gss_wrap`, `gss_unwrap` and `gss_wrap_size_limit` on an established
//! krb5 context are memory and crypto only, so the reactor calls them.
//!
//! Why hand-written bindings and not the `libgssapi` crate: that crate
//! generates its bindings with bindgen at build time (libclang and
//! several more crates), for the dozen calls declared in `ffi.rs`.

mod ffi;
pub(crate) mod sealed;
pub(crate) mod worker;

use std::ffi::{c_int, c_void, CString};
use std::fmt;
use std::path::Path;
use std::ptr;

/// A failed GSS call, in the library's words (error paths only: this
/// allocates).
fn status(call: &str, major: u32, minor: u32) -> String {
    let mut out = format!("{call}: ");
    for (code, kind) in [(major, ffi::GSS_C_GSS_CODE), (minor, ffi::GSS_C_MECH_CODE)] {
        if code == 0 {
            continue;
        }
        let mut ctx = 0u32;
        // At most a few messages per code; the bound guards a library
        // that never clears the context.
        for _ in 0..4 {
            let mut m = 0u32;
            let mut buf = Buffer::empty();
            // SAFETY: `m`, `ctx` and `buf.0` are valid for writes; a null
            // mech OID means the default; the output buffer is owned by
            // `buf` and released by its Drop.
            unsafe { ffi::gss_display_status(&mut m, code, kind, ptr::null_mut(), &mut ctx, &mut buf.0) };
            out.push_str(&String::from_utf8_lossy(buf.as_slice()));
            out.push_str("; ");
            if ctx == 0 {
                break;
            }
        }
    }
    out.truncate(out.trim_end_matches("; ").len());
    out
}

/// A buffer the GSS library allocated: released on drop.
pub struct Buffer(ffi::gss_buffer_desc);

impl Buffer {
    fn empty() -> Buffer {
        Buffer(ffi::gss_buffer_desc { length: 0, value: ptr::null_mut() })
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        if self.0.value.is_null() || self.0.length == 0 {
            return &[];
        }
        // SAFETY: the library set `value` to `length` readable bytes it
        // owns until gss_release_buffer, which only Drop calls.
        unsafe { std::slice::from_raw_parts(self.0.value as *const u8, self.0.length) }
    }
}

// SAFETY: the bytes are owned by this value alone, and
// gss_release_buffer (free) may be called from any thread.
unsafe impl Send for Buffer {}

impl Drop for Buffer {
    fn drop(&mut self) {
        if !self.0.value.is_null() {
            let mut m = 0;
            // SAFETY: the buffer came from the library and is released once.
            unsafe { ffi::gss_release_buffer(&mut m, &mut self.0) };
        }
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Buffer({} bytes)", self.0.length)
    }
}

/// An input buffer over borrowed bytes. The library only reads input
/// buffers, so the `*mut` is never written through.
fn input(bytes: &[u8]) -> ffi::gss_buffer_desc {
    ffi::gss_buffer_desc { length: bytes.len(), value: bytes.as_ptr() as *mut c_void }
}

/// A name imported as a host-based service (`service@host`, RFC 2743
/// §4.1); `service/host` is taken as the same.
fn import_service(service: &str) -> Result<ffi::gss_name_t, String> {
    let s = service.replacen('/', "@", 1);
    let mut buf = input(s.as_bytes());
    let mut name: ffi::gss_name_t = ptr::null_mut();
    let mut m = 0;
    // SAFETY: `buf` borrows `s`, alive for the call; the OID is the
    // library's own static; `name` receives a name released by the caller.
    let major = unsafe { ffi::gss_import_name(&mut m, &mut buf, ffi::GSS_C_NT_HOSTBASED_SERVICE, &mut name) };
    if ffi::is_error(major) {
        return Err(status("gss_import_name", major, m));
    }
    Ok(name)
}

fn release_name(mut name: ffi::gss_name_t) {
    if !name.is_null() {
        let mut m = 0;
        // SAFETY: a name the library gave us, released once.
        unsafe { ffi::gss_release_name(&mut m, &mut name) };
    }
}

/// The acceptor's credentials: the service's keys from the keytab.
pub struct Cred(ffi::gss_cred_id_t);

// SAFETY: an MIT credential handle is a heap object with its own lock;
// it is only used by the worker thread after start (it moves there).
unsafe impl Send for Cred {}

impl Cred {
    /// Credentials to accept as `service` (`rcmd`: any host's `rcmd/...`
    /// key in the keytab), with keys from `keytab` (else the library's
    /// default, `KRB5_KTNAME`).
    pub fn acceptor(keytab: Option<&Path>, service: &str) -> Result<Cred, String> {
        if let Some(kt) = keytab {
            let path = CString::new(kt.as_os_str().as_encoded_bytes())
                .map_err(|_| "--gssapi-keytab: a path without NUL bytes".to_string())?;
            // SAFETY: `path` is a NUL-terminated string alive for the call;
            // the library copies it.
            let major = unsafe { ffi::krb5_gss_register_acceptor_identity(path.as_ptr()) };
            if ffi::is_error(major) {
                return Err(status("krb5_gss_register_acceptor_identity", major, 0));
            }
        }
        let name = import_service(service)?;
        let mut cred: ffi::gss_cred_id_t = ptr::null_mut();
        let mut m = 0;
        // SAFETY: `name` is valid; null mechs and outputs mean "default"
        // and "not wanted"; `cred` receives a handle Drop releases.
        let major = unsafe {
            ffi::gss_acquire_cred(
                &mut m,
                name,
                ffi::GSS_C_INDEFINITE,
                ptr::null_mut(),
                ffi::GSS_C_ACCEPT,
                &mut cred,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        release_name(name);
        if ffi::is_error(major) {
            return Err(status("gss_acquire_cred", major, m));
        }
        Ok(Cred(cred))
    }
}

impl Drop for Cred {
    fn drop(&mut self) {
        let mut m = 0;
        // SAFETY: our handle, released once.
        unsafe { ffi::gss_release_cred(&mut m, &mut self.0) };
    }
}

impl fmt::Debug for Cred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cred")
    }
}

/// One security context, accepting or initiating.
pub struct Context {
    ctx: ffi::gss_ctx_id_t,
}

// SAFETY: a context is a heap object the library does not tie to a
// thread; socksd uses it from one thread at a time (it moves to the
// worker for a step and back), never concurrently.
unsafe impl Send for Context {}

/// What one acceptor step gives.
#[derive(Debug)]
pub enum Accepted {
    /// Send this token and wait for the client's next one.
    Continue(Buffer),
    /// Established: the last token to send, if any, and the client's
    /// principal.
    Done(Option<Buffer>, String),
}

impl Context {
    /// No context yet (`GSS_C_NO_CONTEXT`).
    pub fn new() -> Context {
        Context { ctx: ptr::null_mut() }
    }

    /// One `gss_accept_sec_context` step (RFC 2743 §2.2.2). May touch the
    /// keytab and replay cache: call it off the reactor.
    pub fn accept(&mut self, cred: &Cred, token: &[u8]) -> Result<Accepted, String> {
        let mut inb = input(token);
        let mut out = Buffer::empty();
        let mut src: ffi::gss_name_t = ptr::null_mut();
        let mut m = 0;
        // SAFETY: `self.ctx` is null or our context, updated in place;
        // `inb` borrows `token` for the call; `out` and `src` receive
        // objects released by Buffer's Drop and release_name; null
        // pointers mean "not wanted".
        let major = unsafe {
            ffi::gss_accept_sec_context(
                &mut m,
                &mut self.ctx,
                cred.0,
                &mut inb,
                ptr::null_mut(),
                &mut src,
                ptr::null_mut(),
                &mut out.0,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if ffi::is_error(major) {
            release_name(src);
            return Err(status("gss_accept_sec_context", major, m));
        }
        if major & ffi::GSS_S_CONTINUE_NEEDED != 0 {
            release_name(src);
            return Ok(Accepted::Continue(out));
        }
        let mut shown = Buffer::empty();
        // SAFETY: `src` is the name the call above returned; `shown`
        // receives a buffer its Drop releases; null: type not wanted.
        let major = unsafe { ffi::gss_display_name(&mut m, src, &mut shown.0, ptr::null_mut()) };
        release_name(src);
        if ffi::is_error(major) {
            return Err(status("gss_display_name", major, m));
        }
        let name = String::from_utf8_lossy(shown.as_slice()).into_owned();
        let last = if out.as_slice().is_empty() { None } else { Some(out) };
        Ok(Accepted::Done(last, name))
    }

    /// `gss_wrap` of `msg` into `out` (RFC 2743 §2.3.3): integrity, and
    /// confidentiality when `conf`. Returns the token's length. The
    /// library allocates the token; it is copied and released at once.
    pub fn wrap_into(&self, conf: bool, msg: &[u8], out: &mut [u8]) -> Result<usize, String> {
        let mut inb = input(msg);
        let mut tok = Buffer::empty();
        let mut got: c_int = 0;
        let mut m = 0;
        // SAFETY: `self.ctx` is an established context; `inb` borrows
        // `msg` for the call; `tok` receives a buffer its Drop releases.
        let major = unsafe { ffi::gss_wrap(&mut m, self.ctx, c_int::from(conf), 0, &mut inb, &mut got, &mut tok.0) };
        if ffi::is_error(major) {
            return Err(status("gss_wrap", major, m));
        }
        if conf && got == 0 {
            return Err("gss_wrap: confidentiality not available".into());
        }
        let t = tok.as_slice();
        let dst = out.get_mut(..t.len()).ok_or("gss_wrap: token larger than the buffer")?;
        dst.copy_from_slice(t);
        Ok(t.len())
    }

    /// `gss_unwrap` of `token` into `out`; returns the message length and
    /// whether it was encrypted.
    pub fn unwrap_into(&self, token: &[u8], out: &mut [u8]) -> Result<(usize, bool), String> {
        let mut inb = input(token);
        let mut msg = Buffer::empty();
        let mut conf: c_int = 0;
        let mut m = 0;
        // SAFETY: as in wrap_into; a null qop pointer: not wanted.
        let major = unsafe { ffi::gss_unwrap(&mut m, self.ctx, &mut inb, &mut msg.0, &mut conf, ptr::null_mut()) };
        if ffi::is_error(major) {
            return Err(status("gss_unwrap", major, m));
        }
        let t = msg.as_slice();
        let dst = out.get_mut(..t.len()).ok_or("gss_unwrap: message larger than the buffer")?;
        dst.copy_from_slice(t);
        Ok((t.len(), conf != 0))
    }

    /// The longest message whose wrapped token fits in `max_token` bytes.
    pub fn max_message(&self, conf: bool, max_token: usize) -> Result<usize, String> {
        let mut max = 0u32;
        let mut m = 0;
        let req = u32::try_from(max_token).unwrap_or(u32::MAX);
        // SAFETY: `self.ctx` is an established context; `max` is writable.
        let major = unsafe { ffi::gss_wrap_size_limit(&mut m, self.ctx, c_int::from(conf), 0, req, &mut max) };
        if ffi::is_error(major) {
            return Err(status("gss_wrap_size_limit", major, m));
        }
        Ok(max as usize)
    }
}

impl Default for Context {
    fn default() -> Context {
        Context::new()
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if !self.ctx.is_null() {
            let mut m = 0;
            // SAFETY: our context, deleted once; a null output token
            // buffer means none is wanted.
            unsafe { ffi::gss_delete_sec_context(&mut m, &mut self.ctx, ptr::null_mut()) };
        }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Context")
    }
}

/// The client side, for the tests' own RFC 1961 client: initiates a
/// context to `service@host` from the default credential cache.
#[derive(Debug)]
pub struct Initiator {
    ctx: Context,
    target: String,
}

impl Initiator {
    /// A context to be initiated to `target` (`rcmd@localhost`).
    pub fn new(target: &str) -> Initiator {
        Initiator { ctx: Context::new(), target: target.to_string() }
    }

    /// One `gss_init_sec_context` step with the server's last token:
    /// the token to send (if any) and whether the context is complete.
    pub fn step(&mut self, server: &[u8]) -> Result<(Vec<u8>, bool), String> {
        let name = import_service(&self.target)?;
        let mut inb = input(server);
        let mut out = Buffer::empty();
        let mut m = 0;
        let flags = ffi::GSS_C_MUTUAL_FLAG
            | ffi::GSS_C_REPLAY_FLAG
            | ffi::GSS_C_SEQUENCE_FLAG
            | ffi::GSS_C_CONF_FLAG
            | ffi::GSS_C_INTEG_FLAG;
        // SAFETY: null credential and mech: the defaults; `self.ctx.ctx`
        // is null or our context; `inb` borrows `server`; `out` receives a
        // buffer its Drop releases; null outputs: not wanted.
        let major = unsafe {
            ffi::gss_init_sec_context(
                &mut m,
                ptr::null_mut(),
                &mut self.ctx.ctx,
                name,
                ptr::null_mut(),
                flags,
                0,
                ptr::null_mut(),
                &mut inb,
                ptr::null_mut(),
                &mut out.0,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        release_name(name);
        if ffi::is_error(major) {
            return Err(status("gss_init_sec_context", major, m));
        }
        Ok((out.as_slice().to_vec(), major & ffi::GSS_S_CONTINUE_NEEDED == 0))
    }

    /// The established context, for wrapping and unwrapping.
    pub fn context(&self) -> &Context {
        &self.ctx
    }
}
