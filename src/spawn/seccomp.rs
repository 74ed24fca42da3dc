//! OCI `linux.seccomp` → a libseccomp filter.
//!
//! The child translates the section with [`build`] before it waits for `start` (errors are
//! still errors of `create` then), and [`Filter::load`] installs it right before execve, so
//! the filter never polices husk's own setup. With `process.noNewPrivileges` false the
//! kernel wants CAP_SYS_ADMIN for the load; init.rs keeps it until the filter is in.
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
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

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
    for f in s.flags().iter().flatten() {
        match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => {
                ctx.set_ctl_log(true)
                    .context("linux.seccomp.flags SECCOMP_FILTER_FLAG_LOG")?;
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                ctx.set_ctl_ssb(true)
                    .context("linux.seccomp.flags SECCOMP_FILTER_FLAG_SPEC_ALLOW")?;
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => {
                // husk's child has one thread; the flag changes nothing but is accepted.
                ctx.set_ctl_tsync(true)
                    .context("linux.seccomp.flags SECCOMP_FILTER_FLAG_TSYNC")?;
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                if let Err(e) = ctx.set_ctl_waitkill(true) {
                    crate::warn!("linux.seccomp.flags SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is not supported by this libseccomp ({e}); ignored");
                }
            }
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

/// A translated filter, and the listener socket if the config names one.
pub struct Filter {
    ctx: ScmpFilterContext,
    listener: Option<(OwnedFd, String)>,
}

impl Filter {
    /// Translate, and connect to the listener. Call before pivot_root: listenerPath is a
    /// path of the runtime's mount namespace.
    pub fn prepare(s: &LinuxSeccomp) -> Result<Filter> {
        let ctx = build(s)?;
        let listener = match s.listener_path() {
            Some(p) if uses_notify(s) => Some((
                connect(p)?,
                s.listener_metadata().clone().unwrap_or_default(),
            )),
            _ => None,
        };
        Ok(Filter { ctx, listener })
    }

    /// Load the filter into this process, then hand the notify fd to the listener with the
    /// state JSON that goes with it. `state` is the runtime state of the container.
    pub fn load(self, state: &serde_json::Value) -> Result<()> {
        self.ctx.load().context("load the seccomp filter")?;
        let Some((sock, metadata)) = self.listener else {
            return Ok(());
        };
        let fd = self
            .ctx
            .get_notify_fd()
            .context("get the seccomp notify fd")?;
        let msg = serde_json::json!({
            "ociVersion": state["ociVersion"],
            "fds": ["seccompFd"],
            "pid": state["pid"],
            "metadata": metadata,
            "state": state,
        });
        send_fd(&sock, fd, msg.to_string().as_bytes())
            .context("send the seccomp notify fd to linux.seccomp.listenerPath")?;
        // The notify fd is close-on-exec (the kernel makes it so): the user's program never
        // holds it.
        Ok(())
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
