//! The container process's own state, in the order the kernel needs it: rlimits, user and
//! groups (keeping capabilities across setuid), capabilities, no_new_privs, cwd, and the
//! lookup of the program, which happens here so that "executable file not found" is an
//! error of `create`, not of a process that already reported success.

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{Capability, LinuxCapabilities, PosixRlimitType, Process};
use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What execve needs, prepared before the process waits for `start`.
pub struct Exec {
    pub path: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

impl Exec {
    pub fn exec(&self) -> anyhow::Error {
        let argv: Vec<*const libc::c_char> = self
            .argv
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let envp: Vec<*const libc::c_char> = self
            .envp
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        // An ignored signal stays ignored across execve: Rust's runtime ignores SIGPIPE, and
        // whoever started husk may have ignored others. The program starts clean.
        // The raw syscall: glibc's sigaction refuses its internal signals 32 and 33.
        #[repr(C)]
        struct KSigaction {
            handler: usize,
            flags: u64,
            restorer: usize,
            mask: u64,
        }
        for sig in 1..=64 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut old = KSigaction {
                handler: 0,
                flags: 0,
                restorer: 0,
                mask: 0,
            };
            let dfl = KSigaction {
                handler: 0,
                flags: 0,
                restorer: 0,
                mask: 0,
            };
            // SAFETY: rt_sigaction with the kernel's struct layout and an 8-byte sigset.
            unsafe {
                if libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    std::ptr::null::<KSigaction>(),
                    &mut old as *mut KSigaction,
                    8,
                ) == 0
                    && old.handler == libc::SIG_IGN
                {
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        sig,
                        &dfl as *const KSigaction,
                        std::ptr::null_mut::<KSigaction>(),
                        8,
                    );
                }
            }
        }
        // SAFETY: NULL-terminated arrays of valid C strings that outlive the call.
        unsafe { libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        anyhow!("exec {:?}: {}", self.path, std::io::Error::last_os_error())
    }
}

pub fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub fn set_rlimits(p: &Process) -> Result<()> {
    for r in p.rlimits().iter().flatten() {
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: valid resource id and rlimit struct.
        if unsafe { libc::setrlimit(rlimit_resource(r.typ()), &lim) } < 0 {
            let e = std::io::Error::last_os_error();
            bail!(
                "process.rlimits {:?} soft {} hard {}: {}",
                r.typ(),
                r.soft(),
                r.hard(),
                e
            );
        }
    }
    Ok(())
}

fn to_caps(set: &Option<HashSet<Capability>>) -> Result<caps::CapsHashSet> {
    let mut out = caps::CapsHashSet::new();
    for c in set.iter().flatten() {
        let name = format!("CAP_{c}");
        match name.parse::<caps::Capability>() {
            Ok(cap) => {
                // Capabilities newer than this kernel are ignored, as runc does.
                if caps::runtime::thread_all_supported().contains(&cap) {
                    out.insert(cap);
                } else {
                    crate::debug!("capability {name} is not known to this kernel; ignored");
                }
            }
            Err(_) => bail!("unknown capability {name}"),
        }
    }
    Ok(out)
}

pub struct CapPlan {
    bounding: caps::CapsHashSet,
    effective: caps::CapsHashSet,
    permitted: caps::CapsHashSet,
    inheritable: caps::CapsHashSet,
    ambient: caps::CapsHashSet,
}

pub fn cap_plan(c: Option<&LinuxCapabilities>) -> Result<CapPlan> {
    let empty = LinuxCapabilities::default();
    let (bounding, effective, permitted, inheritable, ambient) = match c {
        Some(c) => (
            to_caps(c.bounding())?,
            to_caps(c.effective())?,
            to_caps(c.permitted())?,
            to_caps(c.inheritable())?,
            to_caps(c.ambient())?,
        ),
        None => {
            let _ = empty;
            Default::default()
        }
    };
    Ok(CapPlan {
        bounding,
        effective,
        permitted,
        inheritable,
        ambient,
    })
}

impl CapPlan {
    pub fn effective_has(&self, c: caps::Capability) -> bool {
        self.effective.contains(&c)
    }
}

/// Drop the bounding set (needs CAP_SETPCAP, so before setuid), switch user keeping the
/// permitted set, then set effective/permitted/inheritable and raise ambient.
///
/// With `keep_admin`, CAP_SYS_ADMIN stays effective and permitted and ambient is left
/// alone: a seccomp filter loaded without no_new_privs needs it. [`finish_caps`] then sets
/// the final sets right before execve.
pub fn switch_user_and_caps(p: &Process, plan: &CapPlan, keep_admin: bool) -> Result<()> {
    for cap in caps::runtime::thread_all_supported() {
        if !plan.bounding.contains(&cap) {
            caps::drop(None, caps::CapSet::Bounding, cap)
                .with_context(|| format!("drop {cap} from the bounding set"))?;
        }
    }
    nix::sys::prctl::set_keepcaps(true).context("prctl(PR_SET_KEEPCAPS)")?;
    let u = p.user();
    let mut groups: Vec<libc::gid_t> = u.additional_gids().clone().unwrap_or_default();
    if groups.is_empty() || u.gid() != 0 {
        groups.retain(|g| *g != u.gid());
        groups.insert(0, u.gid());
    }
    // SAFETY: valid pointer/length pair.
    if unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } < 0 {
        let e = std::io::Error::last_os_error();
        // setgroups is denied in a user namespace whose gid_map was written without privilege.
        if e.raw_os_error() != Some(libc::EPERM)
            || u.additional_gids().as_ref().is_some_and(|g| !g.is_empty())
        {
            bail!(
                "setgroups {:?} (process.user.additionalGids): {}",
                groups,
                e
            );
        }
        crate::debug!("setgroups not permitted here; keeping the current groups");
    }
    // SAFETY: plain syscalls.
    if unsafe { libc::setresgid(u.gid(), u.gid(), u.gid()) } < 0 {
        bail!(
            "setgid {} (process.user.gid): {}",
            u.gid(),
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: plain syscall.
    if unsafe { libc::setresuid(u.uid(), u.uid(), u.uid()) } < 0 {
        bail!(
            "setuid {} (process.user.uid): {}",
            u.uid(),
            std::io::Error::last_os_error()
        );
    }
    nix::sys::prctl::set_keepcaps(false).context("prctl(PR_SET_KEEPCAPS, 0)")?;
    if keep_admin {
        let mut eff = plan.effective.clone();
        let mut perm = plan.permitted.clone();
        eff.insert(caps::Capability::CAP_SYS_ADMIN);
        perm.insert(caps::Capability::CAP_SYS_ADMIN);
        return capset(&eff, &perm, &plan.inheritable)
            .context("keep CAP_SYS_ADMIN until the seccomp filter is loaded");
    }
    finish_caps(plan)
}

/// The final effective/permitted/inheritable sets, and ambient raised.
pub fn finish_caps(plan: &CapPlan) -> Result<()> {
    capset(&plan.effective, &plan.permitted, &plan.inheritable)?;
    caps::clear(None, caps::CapSet::Ambient).ok();
    for cap in &plan.ambient {
        // As runc: an ambient capability that is not also permitted and inheritable is
        // skipped (the kernel refuses it), not an error.
        if let Err(e) = caps::raise(None, caps::CapSet::Ambient, *cap) {
            crate::debug!("ambient {cap} not raised ({e}): it must be permitted and inheritable");
        }
    }
    Ok(())
}

fn mask(set: &caps::CapsHashSet) -> u64 {
    set.iter().fold(0u64, |m, c| m | c.bitmask())
}

/// One capset(2) for all three sets: changed one by one, an intermediate state (effective
/// not a subset of permitted) would be refused.
fn capset(
    eff: &caps::CapsHashSet,
    perm: &caps::CapsHashSet,
    inh: &caps::CapsHashSet,
) -> Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let (e, p, i) = (mask(eff), mask(perm), mask(inh));
    let hdr = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [
        Data {
            effective: e as u32,
            permitted: p as u32,
            inheritable: i as u32,
        },
        Data {
            effective: (e >> 32) as u32,
            permitted: (p >> 32) as u32,
            inheritable: (i >> 32) as u32,
        },
    ];
    // SAFETY: header and two data structs in the v3 layout the kernel expects.
    if unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) } < 0 {
        bail!(
            "set capabilities (effective {e:#x}, permitted {p:#x}, inheritable {i:#x}): {} (effective must be within permitted, permitted within the bounding set)",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// What is left once the process is prepared: the program to exec, and (when a seccomp
/// filter must still be loaded without no_new_privs) the capabilities to finish after it.
pub struct Prepared {
    pub exec: Exec,
    pub caps: CapPlan,
    pub keep_admin: bool,
}

/// The process's own state, in the order the kernel needs it: rlimits (before capabilities
/// are dropped), scheduler, I/O priority, user and capabilities, cwd (after the user
/// switch, as runc: it may only be reachable as that user), umask, no_new_privs,
/// personality, then the program lookup.
pub fn prepare(
    p: &Process,
    linux: Option<&oci_spec::runtime::Linux>,
    filter: bool,
) -> Result<Prepared> {
    set_rlimits(p)?;
    set_scheduler(p)?;
    set_io_priority(p)?;
    let caps = cap_plan(p.capabilities().as_ref())?;
    let nnp = p.no_new_privileges().unwrap_or(false);
    // Without no_new_privs the kernel loads a filter only with CAP_SYS_ADMIN.
    let keep_admin = filter && !nnp && !caps.effective_has(caps::Capability::CAP_SYS_ADMIN);
    switch_user_and_caps(p, &caps, keep_admin)?;
    let cwd = p.cwd();
    nix::unistd::chdir(cwd).with_context(|| format!("chdir to process.cwd {}", cwd.display()))?;
    let umask = p.user().umask().unwrap_or(0o022);
    // SAFETY: plain syscall.
    unsafe { libc::umask(umask as libc::mode_t) };
    if nnp {
        no_new_privs()?;
    }
    set_personality(linux)?;
    let exec = prepare_exec(p)?;
    Ok(Prepared {
        exec,
        caps,
        keep_admin,
    })
}

pub fn no_new_privs() -> Result<()> {
    nix::sys::prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")
}

/// Build argv/envp and find the program the way execvp would, inside the container.
pub fn prepare_exec(p: &Process) -> Result<Exec> {
    let args = p.args().clone().unwrap_or_default();
    let mut env: Vec<String> = p.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(p.user().uid())));
    }
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let prog = &args[0];
    let path = lookup(prog, path_var)?;
    Ok(Exec {
        path: CString::new(path.as_os_str().as_bytes())?,
        argv: args
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<std::result::Result<_, _>>()
            .context("process.args contains a NUL byte")?,
        envp: env
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<std::result::Result<_, _>>()
            .context("process.env contains a NUL byte")?,
    })
}

fn executable(p: &Path) -> std::io::Result<()> {
    let c = CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let md = std::fs::metadata(p)?;
    if md.is_dir() {
        return Err(std::io::Error::from_raw_os_error(libc::EACCES));
    }
    // SAFETY: valid C string.
    if unsafe { libc::access(c.as_ptr(), libc::X_OK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Messages follow runc's, which podman maps to exit code 127.
pub fn lookup(prog: &str, path_var: &str) -> Result<PathBuf> {
    if prog.contains('/') {
        let p = PathBuf::from(prog);
        return match executable(&p) {
            Ok(()) => Ok(p),
            Err(e) => Err(anyhow!("exec: {prog:?}: stat {prog}: {}", io_msg(&e))),
        };
    }
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(prog);
        if executable(&cand).is_ok() {
            return Ok(cand);
        }
    }
    Err(anyhow!(
        "exec: {prog:?}: executable file not found in $PATH"
    ))
}

fn io_msg(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) => "no such file or directory".into(),
        Some(libc::EACCES) => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn home_of(uid: u32) -> String {
    if let Ok(text) = std::fs::read_to_string("/etc/passwd") {
        for line in text.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid) {
                return f[5].to_string();
            }
        }
    }
    "/".into()
}

/// process.scheduler through sched_setattr(2), before capabilities are dropped (real-time
/// policies and negative nice values need CAP_SYS_NICE).
pub fn set_scheduler(p: &Process) -> Result<()> {
    use oci_spec::runtime::{LinuxSchedulerFlag as F, LinuxSchedulerPolicy as P};
    let Some(s) = p.scheduler() else {
        return Ok(());
    };
    // The kernel's struct sched_attr, version 0 (48 bytes).
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
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => 4,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        };
    }
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        bail!("process.scheduler.nice {nice}: must be between -20 and 19");
    }
    let priority = s.priority().unwrap_or(0);
    let priority = u32::try_from(priority)
        .map_err(|_| anyhow!("process.scheduler.priority {priority}: must not be negative"))?;
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice,
        priority,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    };
    // SAFETY: a sched_attr of the kernel's version-0 layout, for ourselves (pid 0).
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } < 0 {
        bail!(
            "process.scheduler (policy {}, nice {nice}, priority {priority}): sched_setattr: {}",
            s.policy(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// process.ioPriority through ioprio_set(2) for ourselves.
pub fn set_io_priority(p: &Process) -> Result<()> {
    use oci_spec::runtime::IOPriorityClass as C;
    let Some(io) = p.io_priority() else {
        return Ok(());
    };
    let class: i64 = match io.class() {
        C::IoprioClassRt => 1,
        C::IoprioClassBe => 2,
        C::IoprioClassIdle => 3,
    };
    let prio = io.priority();
    if !(0..=7).contains(&prio) {
        bail!("process.ioPriority.priority {prio}: must be between 0 and 7");
    }
    const IOPRIO_WHO_PROCESS: i64 = 1;
    // SAFETY: plain syscall on ourselves (who = 0).
    if unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            (class << 13) | prio,
        )
    } < 0
    {
        bail!(
            "process.ioPriority (class {}, priority {prio}): ioprio_set: {}",
            io.class(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// linux.personality: the execution domain (LINUX or LINUX32). No flags are defined.
pub fn set_personality(linux: Option<&oci_spec::runtime::Linux>) -> Result<()> {
    use oci_spec::runtime::LinuxPersonalityDomain as D;
    let Some(p) = linux.and_then(|l| l.personality().as_ref()) else {
        return Ok(());
    };
    if let Some(f) = p.flags().as_ref().and_then(|f| f.first()) {
        bail!("linux.personality.flags: {f:?} is not supported (the spec defines no flags)");
    }
    let persona: libc::c_ulong = match p.domain() {
        D::PerLinux => 0x0000,
        D::PerLinux32 => 0x0008,
    };
    // SAFETY: plain syscall; only changes our execution domain.
    if unsafe { libc::personality(persona) } < 0 {
        bail!(
            "linux.personality {}: {}",
            p.domain(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// process.oomScoreAdj (lowering it needs CAP_SYS_RESOURCE).
pub fn set_oom_score_adj(p: &Process) -> Result<()> {
    if let Some(adj) = p.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .with_context(|| format!("process.oomScoreAdj {adj}"))?;
    }
    Ok(())
}

/// process.apparmorProfile, process.selinuxLabel and linux.mountLabel. husk does not
/// implement either LSM: where the LSM is disabled the labels are ignored (as runc does),
/// where it is enabled asking for a label is an error rather than a silent downgrade.
/// Runs in husk itself, before any process is created (it reads the host's /sys).
pub fn lsm_labels(p: &Process, linux: Option<&oci_spec::runtime::Linux>) -> Result<()> {
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'));
    let selinux = Path::new("/sys/fs/selinux/enforce").exists();
    let labels = [
        (
            "process.apparmorProfile",
            p.apparmor_profile().as_deref(),
            apparmor,
            "AppArmor",
        ),
        (
            "process.selinuxLabel",
            p.selinux_label().as_deref(),
            selinux,
            "SELinux",
        ),
        (
            "linux.mountLabel",
            linux.and_then(|l| l.mount_label().as_deref()),
            selinux,
            "SELinux",
        ),
    ];
    for (field, value, enabled, lsm) in labels {
        let Some(v) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        if enabled {
            bail!("{field} {v:?}: {lsm} is enabled on this host but husk does not support {lsm} labels yet");
        }
        crate::debug!("{field} {v:?} ignored: {lsm} is not enabled on this host");
    }
    Ok(())
}
