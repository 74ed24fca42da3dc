//! `husk exec`: a new process inside a container that is already running.
//!
//! The process joins every namespace of the container's first process and its cgroups,
//! then takes the same steps as the first process does before execve (process.rs). In order:
//!
//! ```text
//!  husk exec (parent)                         the new process (child)
//!  PR_SET_DUMPABLE 0  (inherited by the child: no container process can open
//!                      /proc/<child>/exe, i.e. our binary, or its fds)
//!  open /proc/<init>/ns/* (skip the ones we share); check init is still the container's
//!  setns(pid) here when we may: the child is then born in the container's pid namespace
//!  clone ──────────────────────────────────▶  restore the signal mask
//!                                             join the cgroups (cgroup.procs)
//!                                             setns user, [pid], the rest, mount last
//!                                             ([pid] and a fork when husk could not join
//!                                              the pid namespace itself: rootless)
//!                       ◀──────────────────── Pid(n)             (only after that fork)
//!                                             chdir /, setsid, rlimits, scheduler, I/O
//!                                             priority, user, capabilities, cwd, umask,
//!                                             no_new_privs, personality, fds CLOEXEC
//!                       ◀──────────────────── Log{..} / Error{msg}
//!  EOF on the channel (closed by a successful  execve
//!  execve, since it is close-on-exec)
//! ```

use super::process;
use super::sync::{Channel, Msg};
use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{Linux, Process};
use std::convert::Infallible;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

pub struct ExecOptions<'a> {
    /// The container's first process (whose namespaces we join).
    pub init_pid: i32,
    /// Its start time, to tell a reused pid apart.
    pub init_start: u64,
    pub process: &'a Process,
    /// The container's linux section (personality applies to every process).
    pub linux: Option<&'a Linux>,
    /// Cgroup directories of the container.
    pub cgroup_paths: &'a [PathBuf],
    pub preserve_fds: u32,
    /// The signal mask the process starts with (the caller blocks signals to forward them).
    pub sigmask: nix::sys::signal::SigSet,
    /// process.terminal with --console-socket: the connected socket for the pty master.
    pub console: Option<std::os::fd::OwnedFd>,
    /// process.terminal in the foreground without a socket: keep our terminal.
    pub inherit_tty: bool,
    /// The container's linux.seccomp, compiled: exec'd processes get the same filter.
    pub seccomp: Option<super::seccomp::Program>,
    /// The container's state, for a seccomp notify listener.
    pub state: serde_json::Value,
}

/// Namespaces in the order they are joined: user first (it grants the capabilities the
/// others need), mount last (it changes our root, and nothing after it opens host paths).
const NAMESPACES: [(&str, libc::c_int); 8] = [
    ("user", libc::CLONE_NEWUSER),
    ("pid", libc::CLONE_NEWPID),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("time", libc::CLONE_NEWTIME),
    ("mnt", libc::CLONE_NEWNS),
];

struct Ns {
    name: &'static str,
    flag: libc::c_int,
    fd: OwnedFd,
}

/// The namespaces of `pid` that differ from ours, opened.
fn open_namespaces(pid: i32) -> Result<Vec<Ns>> {
    let mut out = vec![];
    for (name, flag) in NAMESPACES {
        let path = format!("/proc/{pid}/ns/{name}");
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            // A kernel without this namespace type.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e).with_context(|| format!("open {path}")),
        };
        let theirs = f.metadata().with_context(|| format!("stat {path}"))?;
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}"))
            .with_context(|| format!("stat /proc/self/ns/{name}"))?;
        if (theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino()) {
            continue;
        }
        out.push(Ns {
            name,
            flag,
            fd: f.into(),
        });
    }
    Ok(out)
}

fn setns(ns: &Ns) -> Result<()> {
    nix::sched::setns(
        ns.fd.as_fd(),
        nix::sched::CloneFlags::from_bits_retain(ns.flag),
    )
    .with_context(|| format!("join the container's {} namespace", ns.name))
}

/// Kills and reaps what we started if exec fails half way.
struct Reaper(Vec<i32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for &p in &self.0 {
            // SAFETY: signalling and reaping our own (or subreaped) child.
            unsafe {
                libc::kill(p, libc::SIGKILL);
                libc::waitpid(p, std::ptr::null_mut(), 0);
            }
        }
    }
}

fn init_alive(o: &ExecOptions) -> bool {
    matches!(crate::sys::proc_stat(o.init_pid), Some((s, start)) if start == o.init_start && s != 'Z' && s != 'X')
}

/// Start the process; returns its pid (in our pid namespace) once it has called execve.
pub fn spawn(o: &ExecOptions) -> Result<i32> {
    nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
    let nss = open_namespaces(o.init_pid)?;
    // The fds now refer to the namespaces of whatever process has init_pid: make sure that
    // is still the container's first process.
    if !init_alive(o) {
        bail!("the container's process {} has exited", o.init_pid);
    }
    // setns(CLONE_NEWPID) changes only where our children are born. It needs CAP_SYS_ADMIN
    // over the container's pid namespace; without it (rootless), the child joins it after
    // the user namespace and forks once more.
    let mut pid_in_child = false;
    if let Some(pidns) = nss.iter().find(|n| n.flag == libc::CLONE_NEWPID) {
        match nix::sched::setns(pidns.fd.as_fd(), nix::sched::CloneFlags::CLONE_NEWPID) {
            Ok(()) => {}
            Err(nix::errno::Errno::EPERM) => {
                pid_in_child = true;
                nix::sys::prctl::set_child_subreaper(true)
                    .context("prctl(PR_SET_CHILD_SUBREAPER)")?;
            }
            Err(e) => {
                return Err(e).context("join the container's pid namespace");
            }
        }
    }
    let (parent_ch, child_ch) = Channel::pair()?;
    let pid = match crate::sys::clone3(0, None) {
        Ok(pid) => pid,
        // A pid namespace whose init has died takes no new processes (ENOMEM).
        Err(_) if !init_alive(o) => bail!("the container's process {} has exited", o.init_pid),
        Err(e) => return Err(e),
    };
    if pid == 0 {
        drop(parent_ch);
        child_main(child_ch, o, nss, pid_in_child);
    }
    drop(child_ch);
    drop(nss);
    let mut reaper = Reaper(vec![pid]);
    let mut exec_pid = pid;
    loop {
        match parent_ch.recv()? {
            Some(Msg::Log { level, msg }) => {
                crate::log::log(crate::log::Level::parse(&level), &msg)
            }
            Some(Msg::Pid(p)) => {
                exec_pid = p;
                reaper.0.push(p);
                // The intermediate process exits right after telling us; reap it.
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                reaper.0.retain(|&x| x != pid);
            }
            Some(Msg::Error { msg }) => return Err(anyhow!(msg)),
            Some(m) => bail!("unexpected message from the exec process: {m:?}"),
            // The channel is close-on-exec: EOF means execve succeeded (or the process
            // died, which its exit status will tell).
            None => break,
        }
    }
    reaper.0.clear();
    Ok(exec_pid)
}

fn child_main(ch: Channel, o: &ExecOptions, nss: Vec<Ns>, pid_in_child: bool) -> ! {
    crate::log::forward_to(ch.raw());
    let err = match child(&ch, o, nss, pid_in_child) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = ch.send(&Msg::Error {
        msg: format!("{err:#}"),
    });
    // SAFETY: leave without running destructors or atexit handlers of the parent's image.
    unsafe { libc::_exit(1) }
}

fn child(ch: &Channel, o: &ExecOptions, nss: Vec<Ns>, pid_in_child: bool) -> Result<Infallible> {
    o.sigmask
        .thread_set_mask()
        .context("restore the signal mask")?;

    // The notify listener (if any) is a host path: connect before joining the mount namespace.
    let filter = o
        .seccomp
        .as_ref()
        .map(super::seccomp::Filter::prepare)
        .transpose()?;

    // 1. cgroups, from the host's view (before the mount and cgroup namespaces change it)
    for dir in o.cgroup_paths {
        let procs = dir.join("cgroup.procs");
        // "0" is the writing process itself, in any pid namespace.
        std::fs::write(&procs, "0")
            .with_context(|| format!("join the container's cgroup {}", dir.display()))?;
    }

    // 2. namespaces: user first, the pid namespace only on the rootless path, mount last
    for ns in &nss {
        if ns.flag == libc::CLONE_NEWPID && !pid_in_child {
            continue;
        }
        setns(ns)?;
    }
    drop(nss);
    if pid_in_child {
        super::fork_into_namespaces(ch, "the container's pid namespace")?;
    }
    // Joining the mount namespace moved our root and cwd to its root (the container's
    // rootfs); be explicit about the cwd.
    nix::unistd::chdir("/").context("chdir to / in the container")?;
    if !o.inherit_tty {
        nix::unistd::setsid().context("setsid")?;
    }
    if let Some(sock) = &o.console {
        crate::tty::setup(
            sock,
            o.process.console_size(),
            o.process.user().uid(),
            false,
        )?;
    }

    // 3. the process, as for the container's first process
    let p = o.process;
    process::set_oom_score_adj(p)?;
    let process::Prepared {
        exec,
        caps,
        keep_admin,
    } = process::prepare(p, o.linux, filter.is_some())?;
    crate::sys::cloexec_from(3 + o.preserve_fds)?;
    // Last: the same filter as the container's first process.
    if let Some(f) = filter {
        f.load(&o.state)?;
    }
    if keep_admin {
        process::finish_caps(&caps)?;
    }
    Err(exec.exec())
}
