//! The part of the GSS-API C bindings (RFC 2744) socksd calls, as MIT
//! Kerberos' `libgssapi_krb5` exports them. Declarations only: every call
//! is made, with its SAFETY note, by the safe wrappers in `mod.rs`.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};

pub type OM_uint32 = u32;
pub type gss_name_t = *mut c_void;
pub type gss_ctx_id_t = *mut c_void;
pub type gss_cred_id_t = *mut c_void;
pub type gss_OID = *mut c_void;
pub type gss_OID_set = *mut c_void;
pub type gss_channel_bindings_t = *mut c_void;

/// `gss_buffer_desc` (RFC 2744 §3.2).
#[repr(C)]
pub struct gss_buffer_desc {
    pub length: usize,
    pub value: *mut c_void,
}

pub const GSS_C_ACCEPT: c_int = 2;
pub const GSS_C_INDEFINITE: OM_uint32 = 0xffff_ffff;
pub const GSS_C_GSS_CODE: c_int = 1;
pub const GSS_C_MECH_CODE: c_int = 2;
pub const GSS_S_CONTINUE_NEEDED: OM_uint32 = 1;
pub const GSS_C_MUTUAL_FLAG: OM_uint32 = 2;
pub const GSS_C_REPLAY_FLAG: OM_uint32 = 4;
pub const GSS_C_SEQUENCE_FLAG: OM_uint32 = 8;
pub const GSS_C_CONF_FLAG: OM_uint32 = 16;
pub const GSS_C_INTEG_FLAG: OM_uint32 = 32;

/// A calling or routine error (RFC 2744 §3.9.1): the supplementary bits
/// (like CONTINUE_NEEDED) are not errors.
pub fn is_error(major: OM_uint32) -> bool {
    major & 0xffff_0000 != 0
}

#[link(name = "gssapi_krb5")]
extern "C" {
    pub static GSS_C_NT_HOSTBASED_SERVICE: gss_OID;

    pub fn krb5_gss_register_acceptor_identity(keytab: *const c_char) -> OM_uint32;
    pub fn gss_import_name(
        minor: *mut OM_uint32,
        name: *mut gss_buffer_desc,
        name_type: gss_OID,
        out: *mut gss_name_t,
    ) -> OM_uint32;
    pub fn gss_release_name(minor: *mut OM_uint32, name: *mut gss_name_t) -> OM_uint32;
    pub fn gss_display_name(
        minor: *mut OM_uint32,
        name: gss_name_t,
        out: *mut gss_buffer_desc,
        out_type: *mut gss_OID,
    ) -> OM_uint32;
    pub fn gss_acquire_cred(
        minor: *mut OM_uint32,
        name: gss_name_t,
        time_req: OM_uint32,
        mechs: gss_OID_set,
        usage: c_int,
        out: *mut gss_cred_id_t,
        actual_mechs: *mut gss_OID_set,
        time_rec: *mut OM_uint32,
    ) -> OM_uint32;
    pub fn gss_release_cred(minor: *mut OM_uint32, cred: *mut gss_cred_id_t) -> OM_uint32;
    pub fn gss_accept_sec_context(
        minor: *mut OM_uint32,
        ctx: *mut gss_ctx_id_t,
        cred: gss_cred_id_t,
        input: *mut gss_buffer_desc,
        bindings: gss_channel_bindings_t,
        src_name: *mut gss_name_t,
        mech: *mut gss_OID,
        output: *mut gss_buffer_desc,
        ret_flags: *mut OM_uint32,
        time_rec: *mut OM_uint32,
        delegated: *mut gss_cred_id_t,
    ) -> OM_uint32;
    pub fn gss_init_sec_context(
        minor: *mut OM_uint32,
        cred: gss_cred_id_t,
        ctx: *mut gss_ctx_id_t,
        target: gss_name_t,
        mech: gss_OID,
        req_flags: OM_uint32,
        time_req: OM_uint32,
        bindings: gss_channel_bindings_t,
        input: *mut gss_buffer_desc,
        actual_mech: *mut gss_OID,
        output: *mut gss_buffer_desc,
        ret_flags: *mut OM_uint32,
        time_rec: *mut OM_uint32,
    ) -> OM_uint32;
    pub fn gss_delete_sec_context(
        minor: *mut OM_uint32,
        ctx: *mut gss_ctx_id_t,
        output: *mut gss_buffer_desc,
    ) -> OM_uint32;
    pub fn gss_wrap(
        minor: *mut OM_uint32,
        ctx: gss_ctx_id_t,
        conf_req: c_int,
        qop: OM_uint32,
        input: *mut gss_buffer_desc,
        conf_state: *mut c_int,
        output: *mut gss_buffer_desc,
    ) -> OM_uint32;
    pub fn gss_unwrap(
        minor: *mut OM_uint32,
        ctx: gss_ctx_id_t,
        input: *mut gss_buffer_desc,
        output: *mut gss_buffer_desc,
        conf_state: *mut c_int,
        qop_state: *mut OM_uint32,
    ) -> OM_uint32;
    pub fn gss_wrap_size_limit(
        minor: *mut OM_uint32,
        ctx: gss_ctx_id_t,
        conf_req: c_int,
        qop: OM_uint32,
        req_output_size: OM_uint32,
        max_input_size: *mut OM_uint32,
    ) -> OM_uint32;
    pub fn gss_release_buffer(minor: *mut OM_uint32, buf: *mut gss_buffer_desc) -> OM_uint32;
    pub fn gss_display_status(
        minor: *mut OM_uint32,
        status: OM_uint32,
        status_type: c_int,
        mech: gss_OID,
        message_context: *mut OM_uint32,
        out: *mut gss_buffer_desc,
    ) -> OM_uint32;
}
