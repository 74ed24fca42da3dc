//! The process model: one clone3 straight into the namespaces the config asks for, a
//! typed conversation over a socketpair (sync.rs), and the child's steps in order (init.rs).

pub mod exec;
pub mod idmap;
pub mod idmapped;
pub mod init;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod sync;
pub mod sysctl;

use crate::config::{ns_flag, Config};
use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::LinuxNamespaceType;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use sync::{Channel, Msg};

/// Which namespaces to create and which to join.
#[derive(Debug, Default, Clone)]
pub struct NsPlan {
    /// CLONE_NEW* flags of namespaces to create.
    pub new: libc::c_int,
    /// Namespaces to join, user first (order matters for permissions).
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    /// linux.timeOffsets to write before the first process enters the new time namespace.
    pub time_offsets: Vec<(String, i64, u32)>,
}

impl NsPlan {
    pub fn from_config(cfg: &Config) -> NsPlan {
        let mut p = NsPlan::default();
        let nss = cfg
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        for ns in nss {
            match ns.path() {
                Some(path) => p.join.push((ns.typ(), path.clone())),
                None => p.new |= ns_flag(ns.typ()),
            }
        }
        p.join
            .sort_by_key(|(t, _)| if *t == LinuxNamespaceType::User { 0 } else { 1 });
        if p.has_new(libc::CLONE_NEWTIME) {
            let linux = cfg.spec.linux().as_ref();
            for (clock, o) in linux
                .and_then(|l| l.time_offsets().as_ref())
                .into_iter()
                .flatten()
            {
                p.time_offsets.push((
                    clock.clone(),
                    o.secs().unwrap_or(0),
                    o.nanosecs().unwrap_or(0),
                ));
            }
            p.time_offsets.sort();
        }
        p
    }
    pub fn has_new(&self, flag: libc::c_int) -> bool {
        self.new & flag != 0
    }
    fn joins(&self, t: LinuxNamespaceType) -> bool {
        self.join.iter().any(|(x, _)| *x == t)
    }
    /// One clone with every new namespace works unless a user namespace (new or joined)
    /// must come in a different order relative to namespaces joined by path, or a new time
    /// namespace needs offsets (written after unshare, before any process is in it).
    pub fn fast(&self) -> bool {
        let user_involved =
            self.has_new(libc::CLONE_NEWUSER) || self.joins(LinuxNamespaceType::User);
        let others_joined = self.join.iter().any(|(t, _)| *t != LinuxNamespaceType::Pid);
        !(self.joins(LinuxNamespaceType::User)
            || (user_involved && others_joined)
            || !self.time_offsets.is_empty())
    }
}

pub struct Options<'a> {
    pub id: &'a str,
    pub cfg: &'a Config,
    /// Read end of the exec fifo (O_RDONLY|O_NONBLOCK): the child waits on it for `start`.
    pub fifo: OwnedFd,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    /// `run` in the foreground with process.terminal: the process keeps our terminal.
    pub inherit_tty: bool,
    /// The container's cgroup, already created, or None (rootless without delegation).
    pub cgroup: Option<&'a crate::cgroups::Cgroup>,
    /// Connected `--console-socket` (process.terminal).
    pub console: Option<OwnedFd>,
    /// Where the child writes an error that happens after `start` (startContainer hooks,
    /// seccomp load, execve), for `husk start` to report.
    pub err_file: Option<OwnedFd>,
    /// linux.seccomp compiled to BPF, loaded by the child right before execve.
    pub seccomp: Option<seccomp::Program>,
    /// For each entry of `mounts`, the user namespace of an id-mapped bind (made before clone).
    pub idmap_userns: Vec<Option<OwnedFd>>,
}

pub struct Spawned {
    /// The container's first process, in our pid namespace.
    pub pid: i32,
    /// Our direct child (the same as `pid` except on the double-fork slow path).
    pub child: i32,
}

/// Kill and reap the child if create fails half way.
struct Reaper {
    pids: Vec<i32>,
    armed: bool,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for &p in self.pids.iter().rev() {
            // SAFETY: signalling and reaping our own (or our subreaped) children.
            unsafe {
                libc::kill(p, libc::SIGKILL);
            }
        }
        for &p in &self.pids {
            // SAFETY: as above.
            unsafe {
                libc::waitpid(p, std::ptr::null_mut(), 0);
            }
        }
    }
}

fn setns_path(path: &std::path::Path, flag: libc::c_int, what: &str) -> Result<()> {
    let f = std::fs::File::open(path)
        .with_context(|| format!("open {what} namespace {}", path.display()))?;
    nix::sched::setns(&f, nix::sched::CloneFlags::from_bits_retain(flag))
        .with_context(|| format!("join {what} namespace {}", path.display()))
}

/// Start the container's first process and bring it to the point where it waits for
/// `start`. Returns once the child said Ready.
pub fn spawn(o: &Options) -> Result<Spawned> {
    let plan = NsPlan::from_config(o.cfg);
    let (parent_ch, child_ch) = Channel::pair()?;
    // A pid namespace given by path is joined here: setns(CLONE_NEWPID) only affects the
    // children we create, and the one we are about to create is the container.
    if let Some((_, p)) = plan
        .join
        .iter()
        .find(|(t, _)| *t == LinuxNamespaceType::Pid)
    {
        setns_path(p, libc::CLONE_NEWPID, "pid")?;
    }
    let fast = plan.fast();
    // The cgroup namespace is unshared by the child once it sits in its cgroup.
    let clone_flags = if fast {
        plan.new & !libc::CLONE_NEWCGROUP
    } else {
        0
    };
    if fast {
        crate::debug!("spawn: one clone3 into new namespaces {clone_flags:#x}");
    } else {
        crate::debug!(
            "spawn: clone3 without namespaces; the child joins {:?} and then creates {:#x}",
            plan.join
                .iter()
                .map(|(t, _)| crate::config::ns_name(*t))
                .collect::<Vec<_>>(),
            plan.new
        );
    }
    // On cgroup v2 the child is born in its cgroup (no later write to cgroup.procs).
    let v2fd = o.cgroup.and_then(|c| c.v2_fd());
    let (pid, into_v2) = match crate::sys::clone3(
        clone_flags as u32 as u64,
        v2fd.as_ref().map(|f| f.as_raw_fd()),
    ) {
        Ok(pid) => (pid, v2fd.is_some()),
        Err(e) if v2fd.is_some() => {
            crate::debug!("clone3 into the cgroup failed ({e:#}); attaching afterwards");
            (crate::sys::clone3(clone_flags as u32 as u64, None)?, false)
        }
        Err(e) => return Err(e),
    };
    if pid == 0 {
        drop(parent_ch);
        init::main(child_ch, o, &plan, fast);
    }
    drop(child_ch);
    let mut reaper = Reaper {
        pids: vec![pid],
        armed: true,
    };
    let mut init_pid = pid;
    let linux = o.cfg.spec.linux().as_ref();
    let uid_maps = linux
        .and_then(|l| l.uid_mappings().clone())
        .unwrap_or_default();
    let gid_maps = linux
        .and_then(|l| l.gid_mappings().clone())
        .unwrap_or_default();
    if fast && plan.has_new(libc::CLONE_NEWUSER) {
        idmap::write(pid, &uid_maps, &gid_maps)?;
        send_or_child_error(&parent_ch, &Msg::Mapped)?;
    }
    // cgroups are attached here, while the child sets up its mounts.
    if let Some(cg) = o.cgroup {
        cg.attach(pid, into_v2)?;
    }
    send_or_child_error(&parent_ch, &Msg::CgroupsJoined)?;
    // On the slow path a new pid (or time) namespace means one more fork: the container's
    // pid arrives as Pid(n), which may come after the grandchild's first messages.
    let forks = !fast && plan.new & (libc::CLONE_NEWPID | libc::CLONE_NEWTIME) != 0;
    let mut pid_known = !forks;
    let mut create_runtime_pending = false;
    loop {
        if create_runtime_pending && pid_known {
            create_runtime_pending = false;
            let st = crate::hooks::HookState {
                oci_version: o.cfg.spec.version().clone(),
                id: o.id.to_string(),
                // The hooks run after lifecycle step 2 (the environment exists): state.md
                // calls that "created" (runc says "creating"; crun and the OCI suite agree
                // with the spec's wording).
                status: "created".into(),
                pid: init_pid,
                bundle: o.cfg.bundle.clone(),
                annotations: o.cfg.spec.annotations().clone().unwrap_or_default(),
            };
            let hooks = o.cfg.spec.hooks().as_ref();
            crate::hooks::run(crate::hooks::Kind::Prestart, hooks, &st)?;
            crate::hooks::run(crate::hooks::Kind::CreateRuntime, hooks, &st)?;
            send_or_child_error(&parent_ch, &Msg::State(st))?;
        }
        match parent_ch.recv()? {
            Some(Msg::MapMe) => {
                idmap::write(pid, &uid_maps, &gid_maps)?;
                send_or_child_error(&parent_ch, &Msg::Mapped)?;
            }
            Some(Msg::CreateRuntime) => create_runtime_pending = true,
            Some(Msg::Pid(p)) => {
                init_pid = p;
                pid_known = true;
                reaper.pids.push(p);
                // The intermediate process exits right after telling us; reap it.
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            }
            Some(Msg::Log { level, msg }) => {
                crate::log::log(crate::log::Level::parse(&level), &msg)
            }
            Some(Msg::Ready) => break,
            Some(Msg::Error { msg }) => return Err(anyhow!(msg)),
            Some(m) => bail!("unexpected message from the container process: {m:?}"),
            None => {
                let mut status = 0;
                // SAFETY: reaping our own child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                reaper.pids.retain(|&p| p != pid);
                bail!(
                    "container process exited during setup ({})",
                    describe_status(status)
                );
            }
        }
    }
    reaper.armed = false;
    let _ = parent_ch.raw().as_raw_fd();
    Ok(Spawned {
        pid: init_pid,
        child: pid,
    })
}

/// Pid and time namespaces apply to children only: fork once more. The new process goes on
/// (returns Ok); the intermediate one tells husk the new pid and exits.
pub fn fork_into_namespaces(ch: &Channel, what: &str) -> Result<()> {
    // SAFETY: single-threaded; the child continues with a copy of our state.
    match unsafe { libc::fork() } {
        -1 => bail!("fork into {what}: {}", std::io::Error::last_os_error()),
        0 => Ok(()),
        child => {
            let _ = ch.send(&Msg::Pid(child));
            // SAFETY: the intermediate process ends here.
            unsafe { libc::_exit(0) }
        }
    }
}

/// Send to the child; if it is already gone, what it said before dying (its error) is the
/// real failure, not our EPIPE.
fn send_or_child_error(ch: &Channel, m: &Msg) -> Result<()> {
    let Err(send_err) = ch.send(m) else {
        return Ok(());
    };
    while let Ok(Some(msg)) = ch.recv() {
        if let Msg::Error { msg } = msg {
            return Err(anyhow!(msg));
        }
    }
    Err(send_err)
}

pub fn describe_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_child_reports_its_error_not_our_broken_pipe() {
        let (parent, child) = Channel::pair().unwrap();
        child
            .send(&Msg::Error {
                msg: "process.oomScoreAdj -1000: Permission denied".into(),
            })
            .unwrap();
        drop(child);
        let e = send_or_child_error(&parent, &Msg::CgroupsJoined)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "process.oomScoreAdj -1000: Permission denied");
        // a child that died without a word: the send error stays
        let (parent, child) = Channel::pair().unwrap();
        drop(child);
        let e = format!(
            "{:#}",
            send_or_child_error(&parent, &Msg::CgroupsJoined).unwrap_err()
        );
        assert!(e.contains("Broken pipe"), "{e}");
    }
}
