//! OCI `linux.seccomp` → a seccomp BPF program, loaded right before execve.
//!
//! libseccomp turns the section into BPF. That costs ~20 ms for podman's default profile
//! (3 architectures, ~450 names) on the project's machines, so the program is compiled once
//! per distinct section and kept under `--root` (see [`compile`]); `husk create` reads it
//! back in microseconds. The child then loads the bytes itself with seccomp(2), mapping
//! `flags` and NOTIFY to the kernel's filter flags: no libseccomp call happens in the
//! container process at all.
//!
//! The load is the last thing before execve, so the filter never polices husk's own setup.
//! With `process.noNewPrivileges` false the kernel wants CAP_SYS_ADMIN for the load;
//! init.rs keeps it until the filter is in.
//!
//! With a listener (`SCMP_ACT_NOTIFY` + `listenerPath`) the unix socket is connected before
//! pivot_root (the path is a host path) and, once the filter is loaded, the notify fd goes
//! over it with SCM_RIGHTS together with the container process state (runtime-spec
//! "containerProcessState": ociVersion, fds, pid, metadata, state).

use anyhow::{anyhow, bail, Context, Result};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Syscalls husk itself makes between loading the filter and execve while the listener
/// does not yet have the notify fd: notifying them would block the container forever.
const NOTIFY_FORBIDDEN: &[&str] = &["sendmsg"];

fn uses_notify(s: &LinuxSeccomp) -> bool {
    s.syscalls()
        .iter()
        .flatten()
        .any(|r| r.action() == LinuxSeccompAction::ScmpActNotify)
}

/// What the kernel or libseccomp would reject later, checked when config.json is loaded.
/// Errors name the JSON path.
pub fn validate(s: &LinuxSeccomp) -> Result<()> {
    let p = "linux.seccomp";
    if s.default_action() == LinuxSeccompAction::ScmpActNotify {
        bail!("{p}.defaultAction: SCMP_ACT_NOTIFY cannot be the default action (husk's own last syscalls before exec would wait for a listener that has no fd yet)");
    }
    if s.default_errno_ret().is_some() && !takes_errno(s.default_action()) {
        bail!(
            "{p}.defaultErrnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {}",
            s.default_action()
        );
    }
    let notify = uses_notify(s);
    if notify
        && s.listener_path()
            .as_ref()
            .is_none_or(|l| l.as_os_str().is_empty())
    {
        bail!("{p}.listenerPath: required when a rule uses SCMP_ACT_NOTIFY");
    }
    if let Some(l) = s.listener_path() {
        if !l.as_os_str().is_empty() && !l.is_absolute() {
            bail!("{p}.listenerPath {}: must be an absolute path", l.display());
        }
    }
    for (i, r) in s.syscalls().iter().flatten().enumerate() {
        let rp = format!("{p}.syscalls[{i}]");
        if r.names().is_empty() {
            bail!("{rp}.names: empty");
        }
        if r.errno_ret().is_some() && !takes_errno(r.action()) {
            bail!(
                "{rp}.errnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {}",
                r.action()
            );
        }
        if r.action() == LinuxSeccompAction::ScmpActNotify {
            if let Some(n) = r
                .names()
                .iter()
                .find(|n| NOTIFY_FORBIDDEN.contains(&n.as_str()))
            {
                bail!("{rp}: SCMP_ACT_NOTIFY on {n} is not supported (husk sends the listener its fd with {n})");
            }
        }
        for (j, a) in r.args().iter().flatten().enumerate() {
            if a.index() > 5 {
                bail!(
                    "{rp}.args[{j}].index {}: a syscall has arguments 0 to 5",
                    a.index()
                );
            }
        }
    }
    Ok(())
}

fn takes_errno(a: LinuxSeccompAction) -> bool {
    matches!(
        a,
        LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace
    )
}

/// Every action and operator of the spec: `action` and `compare` below match on them
/// exhaustively, and `features_guard` fails to compile if the spec grows one we don't list.
pub const ACTIONS: &[LinuxSeccompAction] = {
    use LinuxSeccompAction::*;
    &[
        ScmpActKill,
        ScmpActKillThread,
        ScmpActKillProcess,
        ScmpActTrap,
        ScmpActErrno,
        ScmpActNotify,
        ScmpActTrace,
        ScmpActLog,
        ScmpActAllow,
    ]
};
pub const OPERATORS: &[LinuxSeccompOperator] = {
    use LinuxSeccompOperator::*;
    &[
        ScmpCmpNe,
        ScmpCmpLt,
        ScmpCmpLe,
        ScmpCmpEq,
        ScmpCmpGe,
        ScmpCmpGt,
        ScmpCmpMaskedEq,
    ]
};
pub const FLAGS: &[LinuxSeccompFilterFlag] = {
    use LinuxSeccompFilterFlag::*;
    &[
        SeccompFilterFlagLog,
        SeccompFilterFlagSpecAllow,
        SeccompFilterFlagTsync,
        SeccompFilterFlagWaitKillableRecv,
    ]
};

#[allow(dead_code)]
fn features_guard(
    a: LinuxSeccompAction,
    o: LinuxSeccompOperator,
    f: LinuxSeccompFilterFlag,
) -> usize {
    use LinuxSeccompAction::*;
    use LinuxSeccompFilterFlag::*;
    use LinuxSeccompOperator::*;
    let a = match a {
        ScmpActKill | ScmpActKillThread | ScmpActKillProcess | ScmpActTrap | ScmpActErrno
        | ScmpActNotify | ScmpActTrace | ScmpActLog | ScmpActAllow => 0,
    };
    let o = match o {
        ScmpCmpNe | ScmpCmpLt | ScmpCmpLe | ScmpCmpEq | ScmpCmpGe | ScmpCmpGt | ScmpCmpMaskedEq => {
            0
        }
    };
    let f = match f {
        SeccompFilterFlagLog
        | SeccompFilterFlagSpecAllow
        | SeccompFilterFlagTsync
        | SeccompFilterFlagWaitKillableRecv => 0,
    };
    a + o + f
}

/// Architectures of the spec that this libseccomp knows.
pub fn supported_archs() -> Vec<String> {
    const ALL: &[&str] = &[
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_MIPS",
        "SCMP_ARCH_MIPS64",
        "SCMP_ARCH_MIPS64N32",
        "SCMP_ARCH_MIPSEL",
        "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32",
        "SCMP_ARCH_PPC",
        "SCMP_ARCH_PPC64",
        "SCMP_ARCH_PPC64LE",
        "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X",
        "SCMP_ARCH_PARISC",
        "SCMP_ARCH_PARISC64",
        "SCMP_ARCH_RISCV64",
        "SCMP_ARCH_LOONGARCH64",
        "SCMP_ARCH_M68K",
        "SCMP_ARCH_SH",
        "SCMP_ARCH_SHEB",
    ];
    ALL.iter()
        .filter(|a| a.parse::<ScmpArch>().is_ok())
        .map(|a| a.to_string())
        .collect()
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> ScmpAction {
    use LinuxSeccompAction::*;
    let errno = errno.unwrap_or(libc::EPERM as u32);
    match a {
        ScmpActKill | ScmpActKillThread => ScmpAction::KillThread,
        ScmpActKillProcess => ScmpAction::KillProcess,
        ScmpActTrap => ScmpAction::Trap,
        ScmpActErrno => ScmpAction::Errno(errno as i32),
        ScmpActNotify => ScmpAction::Notify,
        ScmpActTrace => ScmpAction::Trace(errno as u16),
        ScmpActLog => ScmpAction::Log,
        ScmpActAllow => ScmpAction::Allow,
    }
}

fn compare(a: &LinuxSeccompArg) -> ScmpArgCompare {
    use LinuxSeccompOperator::*;
    let (op, datum) = match a.op() {
        ScmpCmpNe => (ScmpCompareOp::NotEqual, a.value()),
        ScmpCmpLt => (ScmpCompareOp::Less, a.value()),
        ScmpCmpLe => (ScmpCompareOp::LessOrEqual, a.value()),
        ScmpCmpEq => (ScmpCompareOp::Equal, a.value()),
        ScmpCmpGe => (ScmpCompareOp::GreaterEqual, a.value()),
        ScmpCmpGt => (ScmpCompareOp::Greater, a.value()),
        // value is the mask, valueTwo what the masked argument must equal
        ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(a.value()),
            a.value_two().unwrap_or(0),
        ),
    };
    ScmpArgCompare::new(a.index() as u32, op, datum)
}

/// Translate the OCI section into a filter context (not loaded).
pub fn build(s: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    validate(s)?;
    let default = action(s.default_action(), s.default_errno_ret());
    let mut ctx = ScmpFilterContext::new(default).context("seccomp_init")?;
    // We set no_new_privs ourselves, from process.noNewPrivileges.
    ctx.set_ctl_nnp(false)
        .context("seccomp: clear SCMP_FLTATR_CTL_NNP")?;
    for arch in s.architectures().iter().flatten() {
        let name = serde_json::to_value(arch)?
            .as_str()
            .unwrap_or_default()
            .to_string();
        let a: ScmpArch = match name.parse() {
            Ok(a) => a,
            Err(_) => {
                crate::debug!("seccomp: architecture {name} is unknown to libseccomp; skipped");
                continue;
            }
        };
        if ctx.is_arch_present(a).unwrap_or(false) {
            continue;
        }
        if let Err(e) = ctx.add_arch(a) {
            crate::debug!("seccomp: architecture {name} not added ({e}); skipped");
        }
    }
    for (i, r) in s.syscalls().iter().flatten().enumerate() {
        let act = action(r.action(), r.errno_ret());
        if act == default {
            // libseccomp refuses a rule that repeats the default action; it would be a no-op.
            continue;
        }
        let args = r.args().clone().unwrap_or_default();
        let cmps: Vec<ScmpArgCompare> = args.iter().map(compare).collect();
        // Comparisons on distinct arguments are ANDed in one rule. Several on the same
        // argument cannot share a rule in libseccomp: each becomes a rule of its own (OR).
        let mut seen = [false; 6];
        let distinct = args
            .iter()
            .all(|a| !std::mem::replace(&mut seen[a.index()], true));
        for name in r.names() {
            let sc = match ScmpSyscall::from_name(name) {
                Ok(sc) => sc,
                Err(_) => {
                    crate::debug!(
                        "seccomp: syscall {name:?} is unknown on this architecture; rule ignored"
                    );
                    continue;
                }
            };
            let res = if cmps.is_empty() {
                ctx.add_rule(act, sc)
            } else if distinct {
                ctx.add_rule_conditional(act, sc, &cmps)
            } else {
                cmps.iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, sc, &[*c]).map(|_| ()))
                    .map(|_| &mut ctx)
            };
            res.map_err(|e| anyhow!("linux.seccomp.syscalls[{i}] ({name}): add the rule: {e}"))?;
        }
    }
    Ok(ctx)
}

/// A compiled filter: BPF instructions plus the seccomp(2) flags to load them with.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    bpf: Vec<u8>,
    flags: libc::c_ulong,
    listener: Option<(PathBuf, String)>,
}

impl Program {
    /// The listener gets the container state, which the child must ask the parent for.
    pub fn has_listener(&self) -> bool {
        self.listener.is_some()
    }
}

/// Bumped whenever what goes into the cache (or the file layout) changes.
const CACHE_FORMAT: &str = "husk-seccomp-bpf-1";

fn filter_flags(s: &LinuxSeccomp) -> libc::c_ulong {
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // One thread: nothing to synchronise (and TSYNC excludes NEW_LISTENER).
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 0,
            // Only meaningful (and only accepted) together with a listener.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv if uses_notify(s) => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    if uses_notify(s) {
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    }
    flags
}

/// Translate `s` into BPF, or read the program compiled earlier for the same section from
/// `cache_dir`. A cache file holds its whole key (the section as JSON, the libseccomp
/// version, the native architecture) and is used only when the key matches byte for byte,
/// so a hash collision can only cost a recompile. Cache trouble is never an error.
pub fn compile(s: &LinuxSeccomp, cache_dir: Option<&Path>) -> Result<Program> {
    validate(s)?;
    let flags = filter_flags(s);
    let listener = match s.listener_path() {
        Some(p) if uses_notify(s) => {
            Some((p.clone(), s.listener_metadata().clone().unwrap_or_default()))
        }
        _ => None,
    };
    let mut key = serde_json::to_vec(s)?;
    if let Ok(v) = libseccomp::ScmpVersion::current() {
        key.extend_from_slice(
            format!("\n{v}\n{}\n{CACHE_FORMAT}", std::env::consts::ARCH).as_bytes(),
        );
    }
    let file = cache_dir.map(|d| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        d.join(format!("{:016x}.bpf", h.finish()))
    });
    if let Some(bpf) = file.as_deref().and_then(|f| read_cached(f, &key)) {
        crate::debug!("seccomp: compiled filter read from the cache");
        return Ok(Program {
            bpf,
            flags,
            listener,
        });
    }
    let ctx = build(s)?;
    let bpf = export(&ctx).context("export the seccomp filter as BPF")?;
    if let Some(f) = &file {
        if let Err(e) = write_cached(f, &key, &bpf) {
            crate::debug!("seccomp: filter not cached at {}: {e:#}", f.display());
        }
    }
    Ok(Program {
        bpf,
        flags,
        listener,
    })
}

fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>> {
    let fd = nix::sys::memfd::memfd_create(
        c"husk-seccomp",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )?;
    ctx.export_bpf(&fd)?;
    let mut f = std::fs::File::from(fd);
    use std::io::{Read, Seek};
    f.rewind()?;
    let mut bpf = Vec::new();
    f.read_to_end(&mut bpf)?;
    let insn = std::mem::size_of::<libc::sock_filter>();
    if bpf.is_empty() || bpf.len() % insn != 0 || bpf.len() / insn > u16::MAX as usize {
        bail!("libseccomp produced {} bytes of BPF", bpf.len());
    }
    Ok(bpf)
}

fn read_cached(f: &Path, key: &[u8]) -> Option<Vec<u8>> {
    let data = std::fs::read(f).ok()?;
    let klen = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let stored = data.get(4..4 + klen)?;
    let bpf = data.get(4 + klen..)?;
    let insn = std::mem::size_of::<libc::sock_filter>();
    (stored == key && !bpf.is_empty() && bpf.len() % insn == 0).then(|| bpf.to_vec())
}

fn write_cached(f: &Path, key: &[u8], bpf: &[u8]) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = f.parent().ok_or_else(|| anyhow!("no parent"))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    let mut data = (key.len() as u32).to_le_bytes().to_vec();
    data.extend_from_slice(key);
    data.extend_from_slice(bpf);
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    use std::io::Write;
    w.write_all(&data)?;
    drop(w);
    std::fs::rename(&tmp, f)?;
    Ok(())
}

/// A compiled filter in the child, with the listener socket connected if there is one.
pub struct Filter {
    prog: Program,
    listener: Option<(OwnedFd, String)>,
}

impl Filter {
    /// Connect to the listener. Call before pivot_root: listenerPath is a path of the
    /// runtime's mount namespace.
    pub fn prepare(prog: &Program) -> Result<Filter> {
        let listener = match &prog.listener {
            Some((p, meta)) => Some((connect(p)?, meta.clone())),
            None => None,
        };
        Ok(Filter {
            prog: prog.clone(),
            listener,
        })
    }

    /// Load the filter into this process, then hand the notify fd to the listener with the
    /// state JSON that goes with it. `state` is the runtime state of the container.
    pub fn load(self, state: &serde_json::Value) -> Result<()> {
        let fd = load_bpf(&self.prog.bpf, self.prog.flags).context("load the seccomp filter")?;
        let Some((sock, metadata)) = self.listener else {
            return Ok(());
        };
        let fd = fd.ok_or_else(|| anyhow!("the kernel returned no seccomp notify fd"))?;
        let msg = serde_json::json!({
            "ociVersion": state["ociVersion"],
            "fds": ["seccompFd"],
            "pid": state["pid"],
            "metadata": metadata,
            "state": state,
        });
        send_fd(&sock, fd.as_raw_fd(), msg.to_string().as_bytes())
            .context("send the seccomp notify fd to linux.seccomp.listenerPath")?;
        // Our copy closes here (and is close-on-exec anyway): the user's program never
        // holds the listener's fd.
        Ok(())
    }
}

/// seccomp(SECCOMP_SET_MODE_FILTER): returns the notify fd with NEW_LISTENER.
fn load_bpf(bpf: &[u8], flags: libc::c_ulong) -> Result<Option<OwnedFd>> {
    let insns: Vec<libc::sock_filter> = bpf
        .chunks_exact(std::mem::size_of::<libc::sock_filter>())
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let prog = libc::sock_fprog {
        len: insns.len() as u16,
        filter: insns.as_ptr() as *mut libc::sock_filter,
    };
    let mut flags = flags;
    loop {
        // SAFETY: prog points at insns, which outlives the call; the kernel copies it.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if r >= 0 {
            return Ok((flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0)
                // SAFETY: with NEW_LISTENER the result is a new fd that we own.
                .then(|| unsafe { OwnedFd::from_raw_fd(r as i32) }));
        }
        let e = std::io::Error::last_os_error();
        // A kernel older than 5.19 does not know WAIT_KILLABLE_RECV: load without it.
        if e.raw_os_error() == Some(libc::EINVAL)
            && flags & libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0
        {
            flags &= !libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
            continue;
        }
        if e.raw_os_error() == Some(libc::EACCES) {
            bail!("seccomp(SECCOMP_SET_MODE_FILTER): {e} (without no_new_privs this needs CAP_SYS_ADMIN)");
        }
        return Err(e).context(format!(
            "seccomp(SECCOMP_SET_MODE_FILTER, flags {flags:#x})"
        ));
    }
}

fn connect(p: &Path) -> Result<OwnedFd> {
    let ctx = || format!("connect to linux.seccomp.listenerPath {}", p.display());
    let addr = nix::sys::socket::UnixAddr::new(p).with_context(ctx)?;
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .with_context(ctx)?;
    nix::sys::socket::connect(sock.as_raw_fd(), &addr).with_context(ctx)?;
    Ok(sock)
}

fn send_fd(sock: &OwnedFd, fd: i32, data: &[u8]) -> Result<()> {
    let iov = [std::io::IoSlice::new(data)];
    let fds = [fd];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    let n = nix::sys::socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &cmsg,
        nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    if n != data.len() {
        bail!("short write: {n} of {} bytes", data.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sec(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    fn pfc(ctx: &ScmpFilterContext) -> String {
        let mut f = tempfile::tempfile().unwrap();
        ctx.export_pfc(&f).unwrap();
        use std::io::{Read, Seek};
        f.rewind().unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn errno_rules_and_default() {
        let s = sec(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
            "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
            "syscalls":[{"names":["getcwd","no_such_syscall"],"action":"SCMP_ACT_ALLOW"},
                        {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
                        {"names":["chdir"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#);
        let text = pfc(&build(&s).unwrap());
        assert!(text.contains("action ERRNO(38);"), "{text}");
        assert!(text.contains("# filter for syscall \"getcwd\""), "{text}");
        assert!(text.contains("action ERRNO(13);"), "{text}");
        // a rule equal to the default is dropped, not an error
        assert!(!text.contains("\"chdir\""), "{text}");
        assert!(text.contains("filter for arch x86 "), "{text}");
    }

    #[test]
    fn arg_comparisons() {
        let s = sec(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
            {"names":["chmod"],"action":"SCMP_ACT_KILL_PROCESS","args":[{"index":1,"value":2,"valueTwo":2,"op":"SCMP_CMP_MASKED_EQ"}]},
            {"names":["socket"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]}]}"#);
        let text = pfc(&build(&s).unwrap());
        assert!(
            text.contains("if ($a0.lo32 == 8)\n        action ERRNO(1);"),
            "{text}"
        );
        assert!(
            text.contains("if ($a1.lo32 & 0x00000002 == 2)\n        action KILL_PROCESS;"),
            "{text}"
        );
        // two comparisons on one argument: either matches
        assert!(
            text.contains("if ($a0.lo32 == 2)\n        action ERRNO(1);\n      if ($a0.lo32 == 1)"),
            "{text}"
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        let e = crate::config::parse(
            br#"{"ociVersion":"1.0.2","linux":{"seccomp":{"defaultAction":"SCMP_ACT_BOGUS"}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("linux.seccomp.defaultAction:"), "{e}");
        let e = crate::config::parse(br#"{"ociVersion":"1.0.2","linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_BOGUS"}]}]}}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("linux.seccomp.syscalls[0].args[0].op:"),
            "{e}"
        );

        let e = validate(&sec(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#))
            .unwrap_err().to_string();
        assert!(e.starts_with("linux.seccomp.listenerPath:"), "{e}");
        let e = validate(&sec(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_KILL","errnoRet":1}]}"#))
            .unwrap_err().to_string();
        assert!(e.starts_with("linux.seccomp.syscalls[0].errnoRet:"), "{e}");
        let e = validate(&sec(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#))
            .unwrap_err().to_string();
        assert!(
            e.starts_with("linux.seccomp.syscalls[0].args[0].index 6"),
            "{e}"
        );
        let e = validate(&sec(
            r#"{"defaultAction":"SCMP_ACT_NOTIFY","listenerPath":"/x"}"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("linux.seccomp.defaultAction:"), "{e}");
    }

    #[test]
    fn compiled_programs_are_cached_by_their_whole_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = sec(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        let b = sec(r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":2}]}"#);
        let pa = compile(&a, Some(dir.path())).unwrap();
        assert_eq!(pa.flags, libc::SECCOMP_FILTER_FLAG_LOG);
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);
        // a hit gives the same program
        assert_eq!(compile(&a, Some(dir.path())).unwrap(), pa);
        // a file whose key differs (a forced "collision") is not used
        let pb = compile(&b, None).unwrap();
        let fb = compile(&b, Some(dir.path())).unwrap();
        assert_eq!(fb, pb);
        assert_ne!(pb.bpf, pa.bpf);
        let name_b = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| *p != files[0].path())
            .unwrap();
        std::fs::copy(files[0].path(), &name_b).unwrap();
        assert_eq!(compile(&b, Some(dir.path())).unwrap(), pb);
        // garbage in the cache is a miss, not an error
        std::fs::write(files[0].path(), b"junk").unwrap();
        assert_eq!(compile(&a, Some(dir.path())).unwrap(), pa);
    }

    #[test]
    fn notify_sets_new_listener() {
        let s = sec(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/l.sock",
            "flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV","SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        let p = compile(&s, None).unwrap();
        assert_eq!(
            p.flags,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
                | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
                | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
        );
        assert!(p.has_listener());
    }

    #[test]
    fn the_podman_default_profile_translates() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/integration/data/podman-default-seccomp.json"
        ))
        .unwrap();
        let s: LinuxSeccomp = serde_json::from_str(&text).unwrap();
        let out = pfc(&build(&s).unwrap());
        assert!(out.contains("filter for arch x32 "), "{out}");
        assert!(
            out.contains("# filter for syscall \"sethostname\""),
            "{out}"
        );
    }
}
