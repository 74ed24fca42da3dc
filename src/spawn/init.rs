//! The container's first process, from clone to execve. The steps, top to bottom, are the
//! order the kernel needs: namespaces, mounts (with the create hooks just before
//! pivot_root), identity, capabilities, then wait for start; after it the startContainer
//! hooks, the seccomp filter, and execve.

use super::sync::{Channel, Msg};
use super::{process, rootfs, seccomp, sysctl, NsPlan, Options};
use crate::hooks::{self, HookState, Kind};
use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxNamespaceType;
use std::convert::Infallible;
use std::os::fd::AsRawFd;

/// Messages from the parent can arrive before the child asks for them; remember them.
struct Waiter<'a> {
    ch: &'a Channel,
    mapped: bool,
    cgroups: bool,
    state: Option<HookState>,
}

impl Waiter<'_> {
    fn wait(&mut self, want: &Msg) -> Result<()> {
        loop {
            if (*want == Msg::Mapped && self.mapped)
                || (*want == Msg::CgroupsJoined && self.cgroups)
                || (matches!(want, Msg::State(_)) && self.state.is_some())
            {
                return Ok(());
            }
            match self.ch.recv()? {
                Some(Msg::Mapped) => self.mapped = true,
                Some(Msg::CgroupsJoined) => self.cgroups = true,
                Some(Msg::State(s)) => self.state = Some(s),
                Some(m) => bail!("unexpected message from husk: {m:?}"),
                None => bail!("husk went away during container setup"),
            }
        }
    }
}

pub fn main(ch: Channel, o: &Options, plan: &NsPlan, fast: bool) -> ! {
    crate::log::forward_to(ch.raw());
    let err = match run(&ch, o, plan, fast) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let msg = format!("{err:#}");
    // Before `start` the parent reads this; after it, `husk start` reads the error file.
    let _ = ch.send(&Msg::Error { msg: msg.clone() });
    if let Some(f) = &o.err_file {
        // SAFETY: msg is valid for its length; f is the error file's fd.
        unsafe { libc::write(f.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
    }
    // SAFETY: leave without running destructors or atexit handlers of the parent's image.
    unsafe { libc::_exit(1) }
}

fn join(plan: &NsPlan, user: bool) -> Result<()> {
    for (t, p) in &plan.join {
        if (*t == LinuxNamespaceType::User) != user || *t == LinuxNamespaceType::Pid {
            continue;
        }
        let name = crate::config::ns_name(*t);
        super::setns_path(p, crate::config::ns_flag(*t), name)?;
    }
    Ok(())
}

/// Inside a user namespace, become its root so that files we create are owned by a mapped id.
fn become_root() -> Result<()> {
    // SAFETY: plain syscalls; EINVAL just means id 0 is not mapped.
    unsafe {
        if libc::setresgid(0, 0, 0) < 0
            && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
        {
            bail!(
                "setresgid(0) in the user namespace: {}",
                std::io::Error::last_os_error()
            );
        }
        if libc::setresuid(0, 0, 0) < 0
            && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
        {
            bail!(
                "setresuid(0) in the user namespace: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

fn run(ch: &Channel, o: &Options, plan: &NsPlan, fast: bool) -> Result<Infallible> {
    let spec = &o.cfg.spec;
    let process_opt = spec.process().as_ref();
    let mut w = Waiter {
        ch,
        mapped: false,
        cgroups: false,
        state: None,
    };
    let new_user = plan.has_new(libc::CLONE_NEWUSER);
    let in_userns = new_user
        || plan
            .join
            .iter()
            .any(|(t, _)| *t == LinuxNamespaceType::User);

    // 1. namespaces
    if fast {
        if new_user {
            w.wait(&Msg::Mapped)?;
            become_root()?;
        }
        join(plan, false)?;
    } else {
        join(plan, true)?;
        if in_userns && !new_user {
            become_root()?;
        }
        join(plan, false)?;
        if new_user {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
                .context("unshare the user namespace")?;
            ch.send(&Msg::MapMe)?;
            w.wait(&Msg::Mapped)?;
            become_root()?;
        }
        let rest = plan.new & !(libc::CLONE_NEWUSER | libc::CLONE_NEWCGROUP);
        if rest != 0 {
            nix::sched::unshare(nix::sched::CloneFlags::from_bits_retain(rest))
                .with_context(|| format!("unshare namespaces {rest:#x}"))?;
        }
        if rest & libc::CLONE_NEWTIME != 0 {
            write_time_offsets(&plan.time_offsets)?;
        }
        if rest & (libc::CLONE_NEWPID | libc::CLONE_NEWTIME) != 0 {
            // New pid and time namespaces take effect for children only: fork once more.
            w.wait(&Msg::CgroupsJoined)?;
            super::fork_into_namespaces(ch, "the new pid namespace")?;
        }
    }
    // Our mappings are written: from now on nothing outside may inspect or ptrace us, and
    // no container process can open /proc/<us>/exe (our binary).
    nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
    if let Some(p) = process_opt {
        process::set_oom_score_adj(p)?;
    }
    if !o.inherit_tty {
        nix::unistd::setsid().context("setsid")?;
    }
    // SAFETY: umask only changes our file creation mask; devices get exact modes this way.
    unsafe { libc::umask(0) };

    // 2. the mount namespace
    let ctx = rootfs::Ctx {
        spec,
        bundle: &o.cfg.bundle,
        rootfs: &o.cfg.rootfs,
        no_pivot: o.no_pivot,
        own_mntns: plan.has_new(libc::CLONE_NEWNS)
            || plan
                .join
                .iter()
                .any(|(t, _)| *t == LinuxNamespaceType::Mount),
        // mknod needs privilege in the initial user namespace: rootless (also inside
        // rootless podman's user namespace) binds the host's devices instead.
        in_userns: in_userns || crate::sys::rootless(),
        cgroupns: plan.has_new(libc::CLONE_NEWCGROUP)
            || plan
                .join
                .iter()
                .any(|(t, _)| *t == LinuxNamespaceType::Cgroup),
        cgroup: o.cgroup,
        idmap_userns: &o.idmap_userns,
    };
    // The cgroup namespace must be made once we are in our cgroups (so that they are its
    // root) and before cgroupfs is mounted; waiting for the parent's attach (the slow,
    // erratic part of start-up on v1) only then lets the other mounts overlap with it.
    let mut cgroupns_pending = plan.has_new(libc::CLONE_NEWCGROUP);
    let mut enter_cgroupns = || -> Result<()> {
        if std::mem::take(&mut cgroupns_pending) {
            w.wait(&Msg::CgroupsJoined)?;
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
                .context("unshare the cgroup namespace")?;
        }
        Ok(())
    };
    let late_propagation = rootfs::setup(&ctx, &mut enter_cgroupns)?;
    enter_cgroupns()?;
    let hooks = spec.hooks().as_ref();
    let needs_state = hooks::any(
        hooks,
        &[
            Kind::Prestart,
            Kind::CreateRuntime,
            Kind::CreateContainer,
            Kind::StartContainer,
        ],
    ) || o.seccomp.as_ref().is_some_and(|p| p.has_listener());
    if needs_state {
        ch.send(&Msg::CreateRuntime)?;
        w.wait(&Msg::State(HookState::default()))?;
    }
    let state = w.state.take().unwrap_or_default();
    // In the container's namespaces, before pivot_root: the hook's path is a host path.
    hooks::run(Kind::CreateContainer, hooks, &state)?;
    // Compiled by the parent; the listener (a host path) is connected before pivot_root.
    let filter = o
        .seccomp
        .as_ref()
        .map(seccomp::Filter::prepare)
        .transpose()?;
    rootfs::enter(&ctx)?;
    // /proc is the container's and /proc/sys not yet read-only.
    sysctl::apply(spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()))?;
    rootfs::finish(spec, late_propagation)?;
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).with_context(|| format!("set hostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        // SAFETY: valid pointer/length.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } < 0 {
            bail!("set domainname {d:?}: {}", std::io::Error::last_os_error());
        }
    }

    let Some(process) = process_opt else {
        // No process: the container exists, and `start` fails saying why.
        w.wait(&Msg::CgroupsJoined)?;
        ch.send(&Msg::Ready)?;
        wait_for_start(o.fifo.as_raw_fd())?;
        bail!("process: missing in config.json: the container has nothing to start");
    };
    if let Some(sock) = &o.console {
        crate::tty::setup(sock, process.console_size(), process.user().uid(), true)?;
    }

    // 3. the process
    let process::Prepared {
        exec,
        caps,
        keep_admin,
    } = process::prepare(process, spec.linux().as_ref(), filter.is_some())?;
    crate::sys::cloexec_from(3 + o.preserve_fds)?;
    w.wait(&Msg::CgroupsJoined)?;

    // 4. ready; wait for `start` on the exec fifo, then become the user's program.
    ch.send(&Msg::Ready)?;
    wait_for_start(o.fifo.as_raw_fd())?;
    // In the container, as its user: the hook's path is resolved in the container.
    let state = state.with_status("created");
    hooks::run(Kind::StartContainer, hooks, &state)?;
    // Last: the filter polices nothing of ours but these few calls and execve.
    if let Some(f) = filter {
        f.load(&serde_json::to_value(&state)?)?;
    }
    if keep_admin {
        process::finish_caps(&caps)?;
    }
    Err(exec.exec())
}

/// linux.timeOffsets, into the time namespace we just unshared (it applies to our children:
/// no process may have entered it yet).
fn write_time_offsets(offsets: &[(String, i64, u32)]) -> Result<()> {
    let text: String = offsets
        .iter()
        .map(|(clock, secs, nanos)| format!("{clock} {secs} {nanos}\n"))
        .collect();
    if text.is_empty() {
        return Ok(());
    }
    std::fs::write("/proc/self/timens_offsets", &text).with_context(|| {
        format!(
            "linux.timeOffsets: write {:?} to /proc/self/timens_offsets",
            text.trim_end()
        )
    })
}

/// Block until `husk start` writes to the exec fifo. The fifo was opened O_RDONLY|O_NONBLOCK
/// before any writer existed, so poll sleeps until a writer comes and writes.
fn wait_for_start(fd: i32) -> Result<()> {
    loop {
        crate::sys::poll1(fd, libc::POLLIN).context("wait on the exec fifo")?;
        let mut b = [0u8; 1];
        // SAFETY: one-byte buffer.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
        if n == 1 {
            return Ok(());
        }
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) {
            continue;
        }
        // A writer came and went without a byte: keep waiting.
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
