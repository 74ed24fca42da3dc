//! Lifecycle of a stored container: create, start, kill, delete, and status refresh.

use crate::config;
use crate::hooks;
use crate::spawn::{self, Options, Spawned};
use crate::state::{State, Status, Store, FIFO, START_ERR};
use anyhow::{anyhow, bail, Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub struct Global {
    pub root: PathBuf,
    pub systemd_cgroup: bool,
}

impl Global {
    pub fn store(&self) -> Store {
        Store::new(&self.root)
    }
}

pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    /// `run` in the foreground: a terminal process keeps our stdio.
    pub foreground: bool,
}

/// Compiled seccomp filters under --root; '@' keeps the name apart from container ids.
const SECCOMP_CACHE: &str = "@seccomp-cache";

/// Removes a half-made container (state dir, process) unless disarmed.
struct Undo {
    dir: Option<PathBuf>,
    pids: Vec<i32>,
    cgroup: Option<crate::cgroups::Cgroup>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        for &p in &self.pids {
            // SAFETY: killing and reaping the process we created.
            unsafe {
                libc::kill(p, libc::SIGKILL);
                libc::waitpid(p, std::ptr::null_mut(), 0);
            }
        }
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.remove();
        }
        if let Some(d) = self.dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A created container; `console` is our end of the terminal socket when `run` in the
/// foreground proxies the container's pty.
pub struct Created {
    pub state: State,
    pub spawned: Spawned,
    pub console: Option<OwnedFd>,
}

pub fn create(g: &Global, o: &CreateOpts) -> Result<Created> {
    crate::state::valid_id(&o.id)?;
    let cfg = config::load(&o.bundle)?;
    host_support(&cfg)?;
    let terminal = cfg
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if o.console_socket.is_some() && !terminal {
        bail!("--console-socket was given but process.terminal is false");
    }
    if terminal && o.console_socket.is_none() && !o.foreground {
        bail!("process.terminal is true but no --console-socket was given");
    }
    if crate::sys::rootless() {
        crate::rootless::check_cgroups(&cfg.spec)?;
    }
    let store = g.store();
    let dir = store.create_dir(&o.id)?;
    let mut undo = Undo {
        dir: Some(dir.clone()),
        pids: vec![],
        cgroup: None,
    };
    let resources = cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone());
    let cgroup = crate::cgroups::Cgroup::plan(&cfg.spec, &o.id, g.systemd_cgroup)?
        .create(resources.as_ref())?;
    undo.cgroup = cgroup.clone();
    if let (Some(cg), Some(r)) = (&cgroup, &resources) {
        cg.apply(r)?;
    }
    // Compiled (or read back from the cache) now: a bad filter is an error of create.
    let seccomp = match cfg.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(spawn::seccomp::compile(
            s,
            Some(&store.root.join(SECCOMP_CACHE)),
        )?),
        None => None,
    };
    let fifo_path = dir.join(FIFO);
    nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .with_context(|| format!("mkfifo {}", fifo_path.display()))?;
    let fifo_c = crate::sys::cstr(&fifo_path)?;
    // SAFETY: valid C string; the fd is owned below.
    let fd = unsafe {
        libc::open(
            fifo_c.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("open {}", fifo_path.display()));
    }
    // SAFETY: fresh fd from open.
    let fifo = unsafe { OwnedFd::from_raw_fd(fd) };
    let err_path = dir.join(START_ERR);
    let err_file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&err_path)
        .with_context(|| format!("create {}", err_path.display()))?;
    // `run` in the foreground with a terminal: the pty comes to us over a socketpair and
    // husk copies between it and our own terminal, as runc does.
    let (console_child, console_ours) = if terminal && o.foreground && o.console_socket.is_none() {
        let (a, b) = crate::tty::internal_socket()?;
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    let opts = Options {
        id: &o.id,
        cfg: &cfg,
        fifo,
        no_pivot: o.no_pivot,
        preserve_fds: o.preserve_fds,
        inherit_tty: false,
        cgroup: cgroup.as_ref(),
        console: match (&o.console_socket, &console_child) {
            (Some(p), _) => Some(crate::tty::connect(p)?),
            (None, Some(c)) => Some(c.try_clone().context("dup the terminal socket")?),
            (None, None) => None,
        },
        err_file: Some(err_file.into()),
        idmap_userns: cfg
            .spec
            .mounts()
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, m)| {
                if !spawn::idmapped::wanted(m) {
                    return Ok(None);
                }
                let (u, g) = spawn::idmapped::mappings(&cfg.spec, m)?;
                spawn::idmapped::userns(&u, &g)
                    .map(Some)
                    .with_context(|| format!("mounts[{i}] ({})", m.destination().display()))
            })
            .collect::<Result<Vec<_>>>()?,
        seccomp,
    };
    let spawned = match spawn::spawn(&opts) {
        Ok(s) => s,
        Err(e) => {
            // Lifecycle step 12 then 13: destroy what create made, then poststop hooks.
            drop(undo);
            let st = State {
                id: o.id.clone(),
                bundle: cfg.bundle.clone(),
                annotations: cfg.spec.annotations().clone().unwrap_or_default(),
                oci_version: cfg.spec.version().clone(),
                ..Default::default()
            };
            hooks::run_warn(
                hooks::Kind::Poststop,
                cfg.spec.hooks().as_ref(),
                &st.hook_state(Status::Stopped),
            );
            return Err(e);
        }
    };
    undo.pids = vec![spawned.pid];
    let pid_start = crate::sys::proc_stat(spawned.pid).map(|s| s.1).unwrap_or(0);
    let annotations = cfg.spec.annotations().clone().unwrap_or_default();
    let st = State {
        id: o.id.clone(),
        pid: spawned.pid,
        pid_start,
        bundle: cfg.bundle.clone(),
        rootfs: cfg.rootfs.clone(),
        created: crate::sys::rfc3339_now(),
        owner: nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default(),
        annotations,
        cgroup_paths: cgroup.as_ref().map(|c| c.paths()).unwrap_or_default(),
        cgroup_owned: cgroup
            .as_ref()
            .map(|c| c.created.clone())
            .unwrap_or_default(),
        own_pidns: spawn::NsPlan::from_config(&cfg).has_new(libc::CLONE_NEWPID),
        shares_our_mntns: !cfg
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|n| {
                n.iter()
                    .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Mount)
            }),
        oci_version: cfg.spec.version().clone(),
        hooks: cfg
            .spec
            .hooks()
            .clone()
            .filter(|h| hooks::any(Some(h), &[hooks::Kind::Poststart, hooks::Kind::Poststop])),
    };
    store.save(&st)?;
    if let Some(p) = &o.pid_file {
        write_pid_file(p, spawned.pid)?;
    }
    undo.dir = None;
    undo.pids.clear();
    undo.cgroup = None;
    drop(opts);
    Ok(Created {
        state: st,
        spawned,
        console: console_ours,
    })
}

/// What the config asks of the host beyond namespaces and cgroups: LSM labels, Intel RDT.
fn host_support(cfg: &config::Config) -> Result<()> {
    let linux = cfg.spec.linux().as_ref();
    if let Some(p) = cfg.spec.process() {
        spawn::process::lsm_labels(p, linux)?;
    }
    if linux.and_then(|l| l.intel_rdt().as_ref()).is_some() {
        let mounted = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .any(|l| {
                l.split(" - ")
                    .nth(1)
                    .is_some_and(|t| t.starts_with("resctrl "))
            });
        if !mounted {
            bail!("linux.intelRdt: not supported on this host (no resctrl filesystem is mounted at /sys/fs/resctrl)");
        }
        bail!("linux.intelRdt: not implemented by husk yet");
    }
    Ok(())
}

fn write_pid_file(p: &Path, pid: i32) -> Result<()> {
    let p = std::path::absolute(p)?;
    let tmp = p.with_file_name(format!(
        ".{}.tmp",
        p.file_name().and_then(|n| n.to_str()).unwrap_or("pid")
    ));
    std::fs::write(&tmp, pid.to_string())
        .with_context(|| format!("write pid file {}", tmp.display()))?;
    std::fs::rename(&tmp, &p).with_context(|| format!("rename pid file to {}", p.display()))
}

pub fn start(g: &Global, id: &str) -> Result<()> {
    let store = g.store();
    let st = store.load(id)?;
    let _lock = store.lock(id)?;
    match st.status(&store) {
        Status::Created => {}
        Status::Stopped => bail!("cannot start a container that has stopped"),
        s => bail!("cannot start an already {} container", s.as_str()),
    }
    let fifo = store.dir(id).join(FIFO);
    let c = crate::sys::cstr(&fifo)?;
    // SAFETY: valid C string; O_NONBLOCK: ENXIO instead of hanging when nobody waits.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENXIO) {
            bail!("cannot start container {id}: its process is gone");
        }
        return Err(e).with_context(|| format!("open {}", fifo.display()));
    }
    // SAFETY: fd is ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::unistd::write(&fd, b"0").context("write to the exec fifo")?;
    std::fs::remove_file(&fifo).with_context(|| format!("remove {}", fifo.display()))?;
    wait_exec(&fd)?;
    drop(fd);
    let err_path = store.dir(id).join(START_ERR);
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    if !err.is_empty() {
        bail!("{err}");
    }
    // Lifecycle step 9: after the user's program was executed, before start returns.
    hooks::run_warn(
        hooks::Kind::Poststart,
        st.hooks.as_ref(),
        &st.hook_state(Status::Running),
    );
    Ok(())
}

/// The container's process holds the fifo's only read end, close-on-exec: once it has
/// exec'd the user's program (or died) the write end sees POLLERR.
fn wait_exec(fd: &OwnedFd) -> Result<()> {
    loop {
        let rev = crate::sys::poll1(fd.as_raw_fd(), 0)
            .context("wait for the container process to exec")?;
        if rev & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            return Ok(());
        }
    }
}

pub fn state_json(g: &Global, id: &str) -> Result<String> {
    let store = g.store();
    let st = store.load(id)?;
    let status = st.status(&store);
    Ok(serde_json::to_string_pretty(&st.report(status))?)
}

pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal number {n}");
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    if let Some(rt) = name.strip_prefix("SIGRTMIN") {
        let off: i32 = if rt.is_empty() {
            0
        } else {
            rt.trim_start_matches('+')
                .parse()
                .map_err(|_| anyhow!("unknown signal {s:?}"))?
        };
        return Ok(libc::SIGRTMIN() + off);
    }
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| anyhow!("unknown signal {s:?}"))
}

/// Every process of the container: from its cgroups, else from its pid namespace.
pub fn container_pids(st: &State) -> Vec<i32> {
    let mut pids = crate::cgroups::pids(&st.cgroup_paths);
    if pids.is_empty() && st.own_pidns {
        if let Ok(ns) = std::fs::read_link(format!("/proc/{}/ns/pid", st.pid)) {
            for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                if let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
                    if std::fs::read_link(format!("/proc/{p}/ns/pid"))
                        .ok()
                        .as_ref()
                        == Some(&ns)
                    {
                        pids.push(p);
                    }
                }
            }
        }
    }
    if pids.is_empty() {
        pids.push(st.pid);
    }
    pids
}

pub fn kill(g: &Global, id: &str, sig: i32, all: bool) -> Result<()> {
    let store = g.store();
    let st = store.load(id)?;
    if st.status(&store) == Status::Stopped {
        bail!("container {id} is not running");
    }
    let targets = if all {
        container_pids(&st)
    } else {
        vec![st.pid]
    };
    for p in targets {
        // SAFETY: plain syscall.
        if unsafe { libc::kill(p, sig) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(e).with_context(|| format!("send signal {sig} to pid {p}"));
            }
        }
    }
    Ok(())
}

/// Wait (polling /proc) until the container's first process is gone or a zombie.
fn wait_gone(st: &State, timeout: std::time::Duration) -> bool {
    let t0 = std::time::Instant::now();
    let mut d = std::time::Duration::from_micros(200);
    while st.alive() {
        if t0.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(d);
        d = (d * 2).min(std::time::Duration::from_millis(20));
    }
    true
}

pub fn delete(g: &Global, id: &str, force: bool) -> Result<()> {
    let store = g.store();
    crate::state::valid_id(id)?;
    let st = match store.load(id) {
        Ok(st) => st,
        Err(e) => {
            // A directory without state.json is what an interrupted create leaves.
            let dir = store.dir(id);
            if dir.is_dir() && !dir.join("state.json").exists() {
                let _ = std::fs::remove_dir_all(&dir);
                return Ok(());
            }
            if force {
                return Ok(());
            }
            return Err(e);
        }
    };
    let _lock = store.lock(id)?;
    match st.status(&store) {
        Status::Stopped => {}
        // The spec: deleting a container that is not stopped is an error (runc kills a
        // created one instead; see the README).
        Status::Created if force => kill_all_and_wait(&st)?,
        s if force => {
            let _ = s;
            kill_all_and_wait(&st)?;
        }
        s => bail!(
            "cannot delete container {id} that is not stopped: {}",
            s.as_str()
        ),
    }
    crate::cgroups::remove(&st.cgroup_owned)?;
    if st.shares_our_mntns {
        unmount_under(&st.rootfs);
    }
    std::fs::remove_dir_all(store.dir(id))
        .with_context(|| format!("remove {}", store.dir(id).display()))?;
    // Lifecycle step 13: after the container is deleted, before delete returns.
    hooks::run_warn(
        hooks::Kind::Poststop,
        st.hooks.as_ref(),
        &st.hook_state(Status::Stopped),
    );
    Ok(())
}

/// Detach every mount at or below `dir` (deepest first): what a container without a mount
/// namespace of its own left in ours.
fn unmount_under(dir: &Path) {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut mps: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(dir))
        .collect();
    mps.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for m in mps {
        if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
            crate::debug!("unmount {}: {e}", m.display());
        }
    }
}

fn kill_all_and_wait(st: &State) -> Result<()> {
    for p in container_pids(st) {
        // SAFETY: plain syscall.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    if !wait_gone(st, std::time::Duration::from_secs(10)) {
        bail!(
            "container {} (pid {}) did not die after SIGKILL",
            st.id,
            st.pid
        );
    }
    Ok(())
}

/// `run`: create + start, then (unless detached) wait, forward signals, delete, and return
/// the process's exit status.
pub fn run(g: &Global, o: &CreateOpts, detach: bool) -> Result<i32> {
    if !detach {
        // The slow path forks the container's first process from an intermediate child;
        // as subreaper we can still wait for it.
        nix::sys::prctl::set_child_subreaper(true).ok();
    }
    let Created {
        state: st,
        spawned,
        console,
    } = create(g, o)?;
    let master = match &console {
        Some(sock) => match crate::tty::recv_master(sock) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = delete(g, &o.id, true);
                return Err(e);
            }
        },
        None => None,
    };
    drop(console);
    // Signals that arrive from here on are forwarded to the container.
    let set = forwarded_signals();
    if !detach {
        set.thread_block().ok();
    }
    if let Err(e) = start(g, &o.id) {
        let _ = delete(g, &o.id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let code = match master {
        Some(m) => wait_with_pty(&set, spawned.pid, m),
        None => wait_forwarding(&set, spawned.pid),
    };
    let _ = delete(g, &st.id, true);
    Ok(code)
}

/// Reap what has exited; Some(status) once `pid` has.
fn reap(pid: i32) -> Option<i32> {
    loop {
        let mut status = 0;
        // SAFETY: plain syscall.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r == pid {
            if libc::WIFEXITED(status) {
                return Some(libc::WEXITSTATUS(status));
            }
            if libc::WIFSIGNALED(status) {
                return Some(128 + libc::WTERMSIG(status));
            }
        }
        if r <= 0 {
            return None;
        }
    }
}

/// `run` with a terminal: copy our stdin to the container's pty and its output to our
/// stdout (our terminal in raw mode), pass our window size on (now and on SIGWINCH), forward
/// other signals, and return the exit status.
fn wait_with_pty(set: &nix::sys::signal::SigSet, pid: i32, master: OwnedFd) -> i32 {
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let Ok(sfd) = SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) else {
        return wait_forwarding(set, pid);
    };
    crate::tty::copy_winsize(&master);
    let _raw = crate::tty::RawMode::enter();
    let m = master.as_raw_fd();
    let mut stdin_open = true;
    let mut master_open = true;
    let mut exited: Option<i32> = reap(pid);
    loop {
        if let Some(code) = exited {
            // the program is gone: what is left in the pty is its last output
            // SAFETY: switching our own fd to non-blocking.
            unsafe { libc::fcntl(m, libc::F_SETFL, libc::O_NONBLOCK) };
            while master_open && crate::tty::pump(m, 1) {
                let mut p = libc::pollfd {
                    fd: m,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one pollfd, no wait.
                if unsafe { libc::poll(&mut p, 1, 0) } <= 0 {
                    break;
                }
            }
            return code;
        }
        let mut fds = vec![libc::pollfd {
            fd: sfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if master_open {
            fds.push(libc::pollfd {
                fd: m,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if stdin_open {
            fds.push(libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: a valid array of pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if r < 0 {
            continue;
        }
        for p in &fds {
            if p.revents == 0 {
                continue;
            }
            if p.fd == m {
                master_open = crate::tty::pump(m, 1);
            } else if p.fd == 0 {
                stdin_open = crate::tty::pump(0, m);
            } else {
                while let Ok(Some(si)) = sfd.read_signal() {
                    match si.ssi_signo as i32 {
                        libc::SIGCHLD => exited = exited.or_else(|| reap(pid)),
                        libc::SIGWINCH => crate::tty::copy_winsize(&master),
                        sig => {
                            // SAFETY: plain syscall.
                            unsafe { libc::kill(pid, sig) };
                        }
                    }
                }
            }
        }
    }
}

/// Every signal but SIGKILL and SIGSTOP: blocked while husk waits in the foreground, and
/// passed on to the container's process by wait_forwarding.
fn forwarded_signals() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::all();
    for s in [nix::sys::signal::SIGKILL, nix::sys::signal::SIGSTOP] {
        set.remove(s);
    }
    set
}

/// Reap `pid` (and any orphan handed to us), passing on every signal in `set` (which the
/// caller has blocked) to it. Returns its exit status, 128+signal if killed, as runc does.
fn wait_forwarding(set: &nix::sys::signal::SigSet, pid: i32) -> i32 {
    loop {
        // Reap whatever has exited: the container's process, or orphans reparented to us.
        loop {
            let mut status = 0;
            // SAFETY: plain syscall.
            let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if r == pid {
                if libc::WIFEXITED(status) {
                    return libc::WEXITSTATUS(status);
                }
                if libc::WIFSIGNALED(status) {
                    return 128 + libc::WTERMSIG(status);
                }
            }
            if r <= 0 {
                break;
            }
        }
        match set.wait() {
            Ok(nix::sys::signal::SIGCHLD) => continue,
            Ok(sig) => {
                // SAFETY: plain syscall.
                unsafe { libc::kill(pid, sig as i32) };
            }
            Err(_) => continue,
        }
    }
}

pub fn pause(g: &Global, id: &str) -> Result<()> {
    let store = g.store();
    let st = store.load(id)?;
    let _lock = store.lock(id)?;
    match st.status(&store) {
        Status::Running => crate::cgroups::freeze(&st.cgroup_paths, true),
        s => bail!("cannot pause container {id}: it is {}", s.as_str()),
    }
}

pub fn resume(g: &Global, id: &str) -> Result<()> {
    let store = g.store();
    let st = store.load(id)?;
    let _lock = store.lock(id)?;
    match st.status(&store) {
        Status::Paused => crate::cgroups::freeze(&st.cgroup_paths, false),
        s => bail!(
            "cannot resume container {id}: it is {}, not paused",
            s.as_str()
        ),
    }
}

/// A running (or paused/created) container's stored state; stopped ones are an error.
pub fn live_state(g: &Global, id: &str) -> Result<(State, Status)> {
    let store = g.store();
    let st = store.load(id)?;
    let s = st.status(&store);
    if s == Status::Stopped {
        bail!("container {id} is not running");
    }
    Ok((st, s))
}

pub struct ExecOpts {
    /// The process to run: from --process, or the container's process with the CLI's changes.
    pub process: oci_spec::runtime::Process,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    pub console_socket: Option<PathBuf>,
}

/// `exec`: run another process in a created or running container. In the foreground,
/// wait for it forwarding signals and return its exit status; with `detach`, return 0 as
/// soon as it runs.
pub fn exec(
    g: &Global,
    st: &State,
    linux: Option<&oci_spec::runtime::Linux>,
    o: &ExecOpts,
) -> Result<i32> {
    let store = g.store();
    match st.status(&store) {
        Status::Stopped => bail!("cannot exec in a stopped container {}", st.id),
        Status::Paused => bail!(
            "cannot exec in a paused container {}: resume it first",
            st.id
        ),
        _ => {}
    }
    spawn::process::lsm_labels(&o.process, linux)?;
    let set = forwarded_signals();
    let old_mask = nix::sys::signal::SigSet::thread_get_mask().context("read the signal mask")?;
    if !o.detach {
        // From here on signals wait for wait_forwarding, which passes them on.
        set.thread_block().ok();
    }
    let pid = spawn::exec::spawn(&spawn::exec::ExecOptions {
        init_pid: st.pid,
        init_start: st.pid_start,
        process: &o.process,
        linux,
        cgroup_paths: &st.cgroup_paths,
        preserve_fds: o.preserve_fds,
        sigmask: old_mask,
        console: match &o.console_socket {
            Some(p) => Some(crate::tty::connect(p)?),
            None => None,
        },
        inherit_tty: o.process.terminal().unwrap_or(false) && o.console_socket.is_none(),
        seccomp: match linux.and_then(|l| l.seccomp().as_ref()) {
            Some(s) => Some(spawn::seccomp::compile(
                s,
                Some(&store.root.join(SECCOMP_CACHE)),
            )?),
            None => None,
        },
        state: serde_json::to_value(st.hook_state(st.status(&store)))?,
    })?;
    if let Some(p) = &o.pid_file {
        if let Err(e) = write_pid_file(p, pid) {
            // SAFETY: killing and reaping the process we just started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            return Err(e);
        }
    }
    if o.detach {
        return Ok(0);
    }
    Ok(wait_forwarding(&set, pid))
}
