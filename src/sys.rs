//! The libc calls std and socket2 do not make for us, each behind a safe
//! function. Every `unsafe` block of the library is in this file.

use std::ffi::{CStr, CString};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The soft RLIMIT_NOFILE, if it can be read.
pub(crate) fn nofile() -> Option<usize> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct we pass, which lives on our stack.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    ok.then(|| usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX))
}

/// CPUs this process may run on (its affinity mask, which a cpuset or
/// `taskset` narrows), at least 1.
pub(crate) fn cpus() -> usize {
    // SAFETY: `set` is a plain bitmask struct on our stack; the kernel
    // writes at most size_of::<cpu_set_t>() bytes into it.
    let n = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            libc::CPU_COUNT(&set) as usize
        } else {
            0
        }
    };
    n.max(1)
}

/// Starts a thread named `name` (at most 15 bytes are kept, as `ps -T`
/// and `top -H` show them). The name is set with prctl in the thread itself
/// rather than with `Builder::name`: std names threads through musl's
/// `pthread_setname_np`, which links musl's printf (about 12 KB of a
/// router build) for a path only needed to name another thread.
pub(crate) fn spawn_named<F>(name: &str, stack: Option<usize>, f: F) -> io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    let mut comm = [0u8; 16];
    let n = name.len().min(15);
    comm[..n].copy_from_slice(&name.as_bytes()[..n]);
    let mut b = std::thread::Builder::new();
    if let Some(size) = stack {
        b = b.stack_size(size);
    }
    b.spawn(move || {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16
        // bytes from `comm`, which lives until the call returns.
        unsafe { libc::prctl(libc::PR_SET_NAME, comm.as_ptr() as libc::c_ulong, 0, 0, 0) };
        f()
    })
}

/// Names the calling thread, for std's `Builder::name` on static musl
/// builds. musl's own `pthread_setname_np` can also name another thread
/// (through `/proc/self/task/TID/comm`, a path built with `snprintf`), and
/// so links musl's whole printf: 12 KB of a router build, for a call std
/// only ever makes on the calling thread. Defined here, the linker takes
/// this one and leaves musl's object out. Same contract: ERANGE for a
/// name over 15 bytes; another thread is not supported (ENOTSUP).
#[cfg(all(target_os = "linux", target_env = "musl", target_feature = "crt-static"))]
#[unsafe(no_mangle)]
pub extern "C" fn pthread_setname_np(thread: libc::pthread_t, name: *const libc::c_char) -> libc::c_int {
    // SAFETY: pthread_self has no preconditions.
    if thread != unsafe { libc::pthread_self() } {
        return libc::ENOTSUP;
    }
    // SAFETY: the caller passes a NUL-terminated string, as for musl's.
    if unsafe { CStr::from_ptr(name) }.to_bytes().len() > 15 {
        return libc::ERANGE;
    }
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16
    // bytes, which the check above guarantees.
    match unsafe { libc::prctl(libc::PR_SET_NAME, name as libc::c_ulong, 0, 0, 0) } {
        0 => 0,
        _ => io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL),
    }
}

/// Lowers the calling thread's priority by `by` nice steps (Linux keeps a
/// nice value per thread; lowering it needs no privilege). Best effort.
pub(crate) fn lower_thread_priority(by: libc::c_int) {
    // SAFETY: gettid takes no arguments and touches no memory.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
    // SAFETY: getpriority and setpriority read and set one number of a
    // thread of this process; no memory is passed.
    unsafe {
        let now = libc::getpriority(libc::PRIO_PROCESS as _, tid);
        libc::setpriority(libc::PRIO_PROCESS as _, tid, (now + by).min(19));
    }
}

/// Asks the scheduler to let the calling thread, which sleeps most of the
/// time, preempt a busy one soon after it wakes: a short slice (EEVDF takes
/// `sched_runtime` as a normal task's slice since Linux 6.12, and a task
/// with a shorter slice wins at wakeup). Older kernels ignore the field or
/// refuse the flag; either way nothing changes. The scheduling policy and
/// the nice value are kept. Best effort.
pub(crate) fn request_slice(ns: u64) {
    /// `struct sched_attr` as far as SCHED_ATTR_SIZE_VER0 (48 bytes; the
    /// layout is the same on 32-bit targets: every u64 falls on 8).
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    const SCHED_FLAG_KEEP_POLICY: u64 = 0x08;
    // SAFETY: gettid takes no arguments and touches no memory.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
    // SAFETY: getpriority reads one number of a thread of this process.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS as _, tid) };
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: 0,
        flags: SCHED_FLAG_KEEP_POLICY,
        nice,
        priority: 0,
        runtime: ns,
        deadline: 0,
        period: 0,
    };
    // SAFETY: sched_setattr(0, attr, 0) reads `attr.size` bytes from the
    // struct we pass, which lives on our stack for the whole call, and
    // changes only the calling thread's scheduling.
    unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
}

/// Which addresses a name lookup asks for (getaddrinfo's `ai_family`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
    Any,
}

/// getaddrinfo(3) for `name`: its addresses of `family`, in the order the
/// system resolver gives (RFC 6724's within a family), without
/// duplicates, at most `max`. `None` when the name does not resolve (or
/// holds a NUL). Blocks for as long as the system resolver takes: call it
/// from a resolver thread only.
pub(crate) fn lookup(name: &str, family: Family, max: usize) -> Option<Vec<IpAddr>> {
    let name = CString::new(name).ok()?;
    // SAFETY: an all-zero addrinfo is a valid "no hints" value.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = match family {
        Family::V4 => libc::AF_INET,
        Family::V6 => libc::AF_INET6,
        Family::Any => libc::AF_UNSPEC,
    };
    // One entry per address, not one per socket type.
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: `name` is NUL-terminated and outlives the call; `hints` and
    // `list` live on our stack; the list is freed below, once.
    if unsafe { libc::getaddrinfo(name.as_ptr(), std::ptr::null(), &hints, &mut list) } != 0 {
        return None;
    }
    let mut out: Vec<IpAddr> = Vec::with_capacity(max);
    let mut cur = list;
    while !cur.is_null() && out.len() < max {
        // SAFETY: `cur` is a node of the list getaddrinfo returned, alive
        // until freeaddrinfo; a non-null ai_addr points at a sockaddr of
        // the family ai_family names, whose bytes alone are read.
        let ip = unsafe {
            let sa = (*cur).ai_addr;
            match (*cur).ai_family {
                _ if sa.is_null() => None,
                libc::AF_INET => {
                    let sin = &*(sa as *const libc::sockaddr_in);
                    Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))))
                }
                libc::AF_INET6 => {
                    let sin6 = &*(sa as *const libc::sockaddr_in6);
                    Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
                }
                _ => None,
            }
        };
        if let Some(ip) = ip.filter(|ip| !out.contains(ip)) {
            out.push(ip);
        }
        // SAFETY: as above; ai_next is null at the end of the list.
        cur = unsafe { (*cur).ai_next };
    }
    // SAFETY: `list` came from a successful getaddrinfo and is freed once.
    unsafe { libc::freeaddrinfo(list) };
    (!out.is_empty()).then_some(out)
}

/// This process's effective user id.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The user id of the process at the other end of a Unix socket (as it
/// was when that end connected or listened), if the kernel tells.
#[cfg(target_os = "linux")]
pub(crate) fn peer_uid(sock: &impl std::os::fd::AsRawFd) -> Option<u32> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the descriptor is open for the call (the caller borrows its
    // owner); `cred` and `len` live on our stack and the kernel writes at
    // most `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    (r == 0).then_some(cred.uid)
}

/// Whether an interface of this name exists.
pub(crate) fn interface_exists(name: &str) -> bool {
    let Ok(name) = CString::new(name) else { return false };
    // SAFETY: `name` is a valid NUL-terminated string for the call's duration.
    unsafe { libc::if_nametoindex(name.as_ptr()) != 0 }
}

/// A non-blocking, close-on-exec pipe: (read end, write end).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Asks for a pipe of `size` bytes (best effort: the kernel may refuse).
pub(crate) fn set_pipe_size(fd: RawFd, size: usize) {
    let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    // SAFETY: fcntl on a descriptor the caller owns; F_SETPIPE_SZ takes an int.
    unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, size) };
}

/// splice(2) between a socket and a pipe end, non-blocking. `Ok(0)` from a
/// socket is EOF.
pub(crate) fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: both descriptors are open for the duration of the call (the
    // caller borrows their owners); null offsets mean "current position",
    // as splice requires for sockets and pipes.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Calls `f(interface name, address, prefix length)` for every IPv4 and
/// IPv6 address of every interface (nothing when the list cannot be read).
pub(crate) fn each_interface_addr(mut f: impl FnMut(&[u8], IpAddr, u8)) {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `list`, which we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return;
    }
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive
        // until freeifaddrs; its name is a NUL-terminated string.
        let (name, sa, mask) =
            unsafe { (CStr::from_ptr((*cur).ifa_name).to_bytes(), (*cur).ifa_addr, (*cur).ifa_netmask) };
        if !sa.is_null() {
            // SAFETY: a non-null ifa_addr points at a sockaddr whose family
            // field tells its real type; we read only that type's bytes.
            let ip = unsafe {
                match (*sa).sa_family as libc::c_int {
                    libc::AF_INET => {
                        let sin = &*(sa as *const libc::sockaddr_in);
                        Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))))
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(sa as *const libc::sockaddr_in6);
                        Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
                    }
                    _ => None,
                }
            };
            // SAFETY: a non-null ifa_netmask points at a sockaddr of the
            // address's family; only that type's bytes are read.
            let prefix = unsafe {
                match (mask.is_null(), ip) {
                    (true, _) => None,
                    (false, Some(IpAddr::V4(_))) => {
                        Some((*(mask as *const libc::sockaddr_in)).sin_addr.s_addr.count_ones() as u8)
                    }
                    (false, Some(IpAddr::V6(_))) => Some(
                        (*(mask as *const libc::sockaddr_in6))
                            .sin6_addr
                            .s6_addr
                            .iter()
                            .map(|b| b.count_ones() as u8)
                            .sum(),
                    ),
                    (false, None) => None,
                }
            };
            if let Some(ip) = ip {
                f(name, ip, prefix.unwrap_or(if ip.is_ipv4() { 32 } else { 128 }));
            }
        }
        // SAFETY: as above; ifa_next is null at the end of the list.
        cur = unsafe { (*cur).ifa_next };
    }
    // SAFETY: `list` came from getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(list) };
}
