//! cgroups on v1, v2 and hybrid hosts: where the container's cgroup is in every mounted
//! hierarchy, creating it, applying `linux.resources`, joining, freezing, removing.
//!
//! A hybrid host (v1 controllers plus a cgroup2 mount) is handled as what it is: each
//! controller is driven in the hierarchy that has it, v1 first; the cgroup2 directory gets
//! what only it has (e.g. hugetlb here) and the container's membership.

pub mod bpf;
pub mod v1;
pub mod v2;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxRdma, LinuxResources, Spec};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let p = dir.join(file);
    std::fs::write(&p, value).with_context(|| format!("write {value:?} to {}", p.display()))
}

/// Write a file the running kernel may not have (kmem, burst...): missing is a debug line.
pub fn write_if_exists(dir: &Path, file: &str, value: &str) -> Result<()> {
    let p = dir.join(file);
    if !p.exists() {
        crate::debug!(
            "{} does not exist on this kernel; {value:?} not applied",
            p.display()
        );
        return Ok(());
    }
    write(dir, file, value)
}

pub fn rdma_line(dev: &str, l: &LinuxRdma) -> String {
    let mut s = dev.to_string();
    if let Some(h) = l.hca_handles() {
        s += &format!(" hca_handle={h}");
    }
    if let Some(o) = l.hca_objects() {
        s += &format!(" hca_object={o}");
    }
    s
}

/// The container's cgroup: one directory per hierarchy.
#[derive(Debug, Clone)]
pub struct Cgroup {
    pub dirs: Vec<(Hierarchy, PathBuf)>,
    /// Directories this container created (and so removes on delete).
    pub created: Vec<PathBuf>,
}

/// linux.cgroupsPath → a path inside every hierarchy: absolute as given, relative under
/// /husk, empty → /husk/<id>.
pub fn resolve_path(cgroups_path: Option<&Path>, id: &str) -> PathBuf {
    match cgroups_path {
        Some(p) if p.as_os_str().is_empty() => PathBuf::from("/husk").join(id),
        Some(p) if p.is_absolute() => p.to_path_buf(),
        Some(p) => PathBuf::from("/husk").join(p),
        None => PathBuf::from("/husk").join(id),
    }
}

impl Cgroup {
    /// Where the container's cgroup goes; nothing is touched yet.
    pub fn plan(spec: &Spec, id: &str, systemd: bool) -> Result<Cgroup> {
        let cp = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
        if systemd {
            let p = cp
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !p.is_empty() && p.split(':').count() != 3 {
                bail!(
                    "linux.cgroupsPath {p:?}: with --systemd-cgroup it must be slice:prefix:name"
                );
            }
            if !Path::new("/run/systemd/system").exists() {
                bail!("--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); use the default cgroupfs driver");
            }
            bail!("--systemd-cgroup: the systemd cgroup driver is not supported by husk yet");
        }
        if let Some(p) = &cp {
            if p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                bail!("linux.cgroupsPath {:?} must not contain '..'", p);
            }
        }
        let path = resolve_path(cp.as_deref(), id);
        let rel = path.strip_prefix("/").unwrap_or(&path).to_path_buf();
        let mut dirs = vec![];
        for h in hierarchies() {
            let base = h.mountpoint.clone();
            dirs.push((h, base.join(&rel)));
        }
        Ok(Cgroup {
            dirs,
            created: vec![],
        })
    }

    /// Make the directories. Returns None when we may not (rootless without delegation).
    pub fn create(mut self, resources: Option<&LinuxResources>) -> Result<Option<Cgroup>> {
        for (h, dir) in &self.dirs {
            let mut missing = vec![];
            let mut d = dir.as_path();
            while !d.exists() && d.starts_with(&h.mountpoint) && d != h.mountpoint {
                missing.push(d.to_path_buf());
                d = match d.parent() {
                    Some(p) => p,
                    None => break,
                };
            }
            for m in missing.iter().rev() {
                match std::fs::create_dir(m) {
                    // Shared parents (/husk) stay: another container may be using them.
                    Ok(()) if m == dir => self.created.push(m.clone()),
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS)
                        ) && crate::sys::rootless() =>
                    {
                        crate::debug!("cgroup {} not created ({e}): no delegated cgroup for this user; running without cgroups", m.display());
                        if resources.is_some_and(has_limits) {
                            crate::warn!(
                                "linux.resources ignored: no delegated cgroup for this user"
                            );
                        }
                        let _ = self.remove();
                        return Ok(None);
                    }
                    Err(e) => {
                        let _ = self.remove();
                        return Err(e).with_context(|| format!("create cgroup {}", m.display()));
                    }
                }
            }
            if !h.v2 && h.controllers.split(',').any(|c| c == "cpuset") {
                if let Err(e) = v1::init_cpuset(&h.mountpoint, dir) {
                    let _ = self.remove();
                    return Err(e);
                }
            }
        }
        Ok(Some(self))
    }

    /// Controllers the v1 side has: on a hybrid host those are not driven through v2.
    fn v1_controllers(&self) -> Vec<String> {
        self.dirs
            .iter()
            .filter(|(h, _)| !h.v2)
            .flat_map(|(h, _)| {
                h.controllers
                    .split(',')
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        let v1c = self.v1_controllers();
        // A limit asked for must be applied or refused: never dropped because the host lacks
        // its controller.
        let v2avail: Vec<String> = self
            .dirs
            .iter()
            .filter(|(h, _)| h.v2)
            .flat_map(|(h, _)| {
                std::fs::read_to_string(h.mountpoint.join("cgroup.controllers"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect();
        let has = |v1: &str, v2: &str| {
            v1c.iter().any(|c| c == v1) || (!v2.is_empty() && v2avail.iter().any(|c| c == v2))
        };
        for (field, v1, v2) in [
            ("memory", "memory", "memory"),
            ("cpu", "cpu", "cpu"),
            ("pids", "pids", "pids"),
            ("blockIO", "blkio", "io"),
            ("hugepageLimits", "hugetlb", "hugetlb"),
            ("rdma", "rdma", "rdma"),
            ("network.classID", "net_cls", ""),
            ("network.priorities", "net_prio", ""),
        ] {
            let asked = match field {
                "network.classID" => r.network().as_ref().is_some_and(|n| n.class_id().is_some()),
                "network.priorities" => r
                    .network()
                    .as_ref()
                    .is_some_and(|n| n.priorities().as_ref().is_some_and(|p| !p.is_empty())),
                "blockIO" => needs(r, "io"),
                "hugepageLimits" => needs(r, "hugetlb"),
                f => needs(r, f),
            };
            if asked && !has(v1, v2) {
                bail!("linux.resources.{field}: the {v1} controller is not available on this host");
            }
        }
        for (h, dir) in &self.dirs {
            if h.v2 {
                let avail = std::fs::read_to_string(h.mountpoint.join("cgroup.controllers"))
                    .unwrap_or_default();
                let avail: Vec<String> = avail.split_whitespace().map(String::from).collect();
                let wanted: Vec<&str> =
                    ["memory", "cpu", "cpuset", "pids", "io", "hugetlb", "rdma"]
                        .into_iter()
                        .filter(|c| {
                            !v1c.iter().any(|x| x == c || (*c == "io" && x == "blkio"))
                                && avail.iter().any(|a| a == c)
                                && needs(r, c)
                        })
                        .collect();
                crate::debug!(
                    "cgroup v2 {}: controllers {wanted:?} (available {avail:?}, v1 has {v1c:?})",
                    dir.display()
                );
                let devs = r.devices().as_deref().unwrap_or(&[]);
                if !devs.is_empty() && (!v1c.iter().any(|c| c == "devices") || force_v2_devices()) {
                    match bpf::apply(dir, devs) {
                        // A rootless user may not load BPF programs; its container only
                        // sees the device nodes bound into it.
                        Err(e) if crate::sys::rootless() && is_eperm(&e) => crate::debug!(
                            "linux.resources.devices not applied on cgroup v2 (rootless): {e:#}"
                        ),
                        r => r.context("linux.resources.devices (cgroup v2 device program)")?,
                    }
                }
                if wanted.is_empty() && r.unified().as_ref().is_none_or(|u| u.is_empty()) {
                    continue;
                }
                enable_controllers(&h.mountpoint, dir, &wanted)?;
                v2::apply(dir, r, &|c| wanted.contains(&c))?;
            } else {
                for c in h.controllers.split(',') {
                    v1::apply(c, dir, r).with_context(|| format!("linux.resources ({c})"))?;
                }
            }
        }
        if r.unified().as_ref().is_some_and(|u| !u.is_empty())
            && !self.dirs.iter().any(|(h, _)| h.v2)
        {
            bail!("linux.resources.unified needs cgroup v2, and this host has no cgroup2 mount");
        }
        Ok(())
    }

    /// The cgroup2 directory, opened for clone3(CLONE_INTO_CGROUP).
    pub fn v2_fd(&self) -> Option<OwnedFd> {
        let (_, dir) = self.dirs.iter().find(|(h, _)| h.v2)?;
        std::fs::File::open(dir).ok().map(OwnedFd::from)
    }

    /// Put `pid` in every hierarchy (except the v2 one when clone3 already did).
    pub fn attach(&self, pid: i32, skip_v2: bool) -> Result<()> {
        for (h, dir) in &self.dirs {
            if h.v2 && skip_v2 {
                continue;
            }
            write(dir, "cgroup.procs", &pid.to_string()).context("join the container's cgroup")?;
        }
        Ok(())
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|(_, d)| d.clone()).collect()
    }

    pub fn remove(&self) -> Result<()> {
        remove(&self.created)
    }
}

/// Test hook: HUSK_CGROUP2_DEVICES=1 makes apply attach the device program to the cgroup2
/// directory even when a v1 devices hierarchy enforces the rules (as on this project's
/// hybrid test hosts), so that the v2 path runs for real there. Read only when the config
/// has device rules.
fn force_v2_devices() -> bool {
    std::env::var_os("HUSK_CGROUP2_DEVICES").is_some_and(|v| v == "1")
}

fn is_eperm(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.raw_os_error() == Some(libc::EPERM))
    })
}

fn has_limits(r: &LinuxResources) -> bool {
    r.memory().is_some()
        || r.cpu().is_some()
        || r.pids().is_some()
        || r.block_io().is_some()
        || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
        || r.network().is_some()
        || r.rdma().is_some()
        || r.unified().as_ref().is_some_and(|u| !u.is_empty())
}

fn needs(r: &LinuxResources, c: &str) -> bool {
    match c {
        "memory" => r.memory().is_some(),
        "cpu" => r.cpu().as_ref().is_some_and(|c| {
            c.shares().is_some()
                || c.quota().is_some()
                || c.period().is_some()
                || c.burst().is_some()
                || c.idle().is_some()
        }),
        "cpuset" => r
            .cpu()
            .as_ref()
            .is_some_and(|c| c.cpus().is_some() || c.mems().is_some()),
        "pids" => r.pids().is_some(),
        "io" => r.block_io().is_some(),
        "hugetlb" => r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()),
        "rdma" => r.rdma().is_some(),
        _ => false,
    }
}

/// v2: controllers must be enabled in every ancestor's cgroup.subtree_control.
fn enable_controllers(mountpoint: &Path, dir: &Path, wanted: &[&str]) -> Result<()> {
    if wanted.is_empty() {
        return Ok(());
    }
    let rel = dir.strip_prefix(mountpoint).unwrap_or(Path::new(""));
    let mut cur = mountpoint.to_path_buf();
    let line = wanted
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    for c in rel.components() {
        write(&cur, "cgroup.subtree_control", &line)?;
        cur.push(c);
    }
    Ok(())
}

/// One mounted cgroup hierarchy of the host.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    /// Where the host mounts it, e.g. /sys/fs/cgroup/memory or /sys/fs/cgroup/unified.
    pub mountpoint: PathBuf,
    /// true for cgroup2.
    pub v2: bool,
    /// v1: the controllers (and name=) of the hierarchy, comma-joined, as mount data.
    pub controllers: String,
    /// The root of this mount inside the hierarchy (usually "/").
    pub root: String,
}

/// Every cgroup mount of the calling process's mount namespace, one per hierarchy.
pub fn hierarchies() -> Vec<Hierarchy> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return vec![];
    };
    parse_mountinfo(&text)
}

pub fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let fstype = post[0];
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let controllers = if fstype == "cgroup" {
            post[2]
                .split(',')
                .filter(|o| {
                    !matches!(
                        *o,
                        "rw" | "ro"
                            | "nosuid"
                            | "nodev"
                            | "noexec"
                            | "relatime"
                            | "noatime"
                            | "xattr"
                            | "clone_children"
                    ) && !o.starts_with("release_agent=")
                })
                .collect::<Vec<_>>()
                .join(",")
        } else {
            String::new()
        };
        let mp = PathBuf::from(unescape(pre[4]));
        // The same hierarchy can be mounted more than once (a container's rootfs that binds
        // the host's /sys, for one): the first mount of it is the one to use.
        if out.iter().any(|h| {
            h.mountpoint == mp
                || (h.v2 && fstype == "cgroup2")
                || (!h.v2 && h.controllers == controllers && fstype == "cgroup")
        }) {
            continue;
        }
        out.push(Hierarchy {
            mountpoint: mp,
            v2: fstype == "cgroup2",
            controllers,
            root: unescape(pre[3]),
        });
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The calling process's cgroup path in the hierarchy `h` (from /proc/self/cgroup).
pub fn own_path(h: &Hierarchy) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        let matches = if h.v2 {
            ctrls.is_empty()
        } else {
            !ctrls.is_empty() && same_set(ctrls, &h.controllers)
        };
        if matches {
            return Some(path.to_string());
        }
    }
    None
}

fn same_set(a: &str, b: &str) -> bool {
    let mut x: Vec<&str> = a.split(',').collect();
    let mut y: Vec<&str> = b.split(',').collect();
    x.sort();
    y.sort();
    x == y
}

/// Is the container frozen (paused)? Looks at the freezer (v1) or cgroup.freeze (v2)
/// file in the container's cgroup directories.
pub fn is_frozen(paths: &[PathBuf]) -> bool {
    for p in paths {
        if let Ok(s) = std::fs::read_to_string(p.join("freezer.state")) {
            return s.trim() == "FROZEN";
        }
        if let Ok(s) = std::fs::read_to_string(p.join("cgroup.freeze")) {
            if s.trim() == "1" {
                return true;
            }
        }
    }
    false
}

/// Pids listed in the container's cgroups (the first hierarchy that lists any).
pub fn pids(paths: &[PathBuf]) -> Vec<i32> {
    for p in paths {
        if let Ok(s) = std::fs::read_to_string(p.join("cgroup.procs")) {
            let v: Vec<i32> = s.lines().filter_map(|l| l.trim().parse().ok()).collect();
            if !v.is_empty() {
                return v;
            }
        }
    }
    vec![]
}

/// Remove the container's cgroup directories (deepest first), tolerating ones already gone.
/// A cgroup that is still busy (a zombie not yet reaped) is retried for a short while.
pub fn remove(paths: &[PathBuf]) -> anyhow::Result<()> {
    for p in paths {
        remove_one(p)?;
    }
    Ok(())
}

fn remove_one(p: &Path) -> anyhow::Result<()> {
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_one(&e.path())?;
            }
        }
    }
    let mut delay = std::time::Duration::from_millis(1);
    for _ in 0..200 {
        match std::fs::remove_dir(p) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(anyhow::anyhow!("remove cgroup {}: {e}", p.display())),
        }
    }
    Err(anyhow::anyhow!(
        "remove cgroup {}: still busy after 10s",
        p.display()
    ))
}

impl Cgroup {
    /// The cgroup of a stored container, from the directories recorded in its state.
    pub fn from_paths(paths: &[PathBuf]) -> Cgroup {
        let hs = hierarchies();
        let dirs = paths
            .iter()
            .filter_map(|p| {
                hs.iter()
                    .find(|h| p.starts_with(&h.mountpoint))
                    .map(|h| (h.clone(), p.clone()))
            })
            .collect();
        Cgroup {
            dirs,
            created: vec![],
        }
    }
}

/// Freeze (pause) or thaw (resume) the container: freezer.state on v1, cgroup.freeze on v2.
pub fn freeze(paths: &[PathBuf], frozen: bool) -> Result<()> {
    if let Some(dir) = paths.iter().find(|p| p.join("freezer.state").exists()) {
        let want = if frozen { "FROZEN" } else { "THAWED" };
        for _ in 0..1000 {
            write(dir, "freezer.state", want)?;
            let now = std::fs::read_to_string(dir.join("freezer.state")).unwrap_or_default();
            if now.trim() == want {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        bail!(
            "{}: still not {want} after 1s",
            dir.join("freezer.state").display()
        );
    }
    if let Some(dir) = paths.iter().find(|p| p.join("cgroup.freeze").exists()) {
        write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        for _ in 0..1000 {
            if std::fs::read_to_string(dir.join("cgroup.events"))
                .unwrap_or_default()
                .lines()
                .any(|l| l == want)
            {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        bail!(
            "{}: not {want} after 1s",
            dir.join("cgroup.events").display()
        );
    }
    bail!("the container has no freezer cgroup (rootless without delegation?)")
}

fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    let s = std::fs::read_to_string(dir.join(file)).ok()?;
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

fn read_kv(dir: &Path, file: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    for l in std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
    {
        let mut it = l.split_whitespace();
        if let (Some(k), Some(v)) = (it.next(), it.next()) {
            if let Ok(n) = v.parse::<u64>() {
                m.insert(k.to_string(), n.into());
            }
        }
    }
    m
}

fn blkio_entries(dir: &Path, file: &str) -> serde_json::Value {
    let mut v = vec![];
    for l in std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
    {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() == 3 {
            if let (Some((maj, min)), Ok(val)) = (f[0].split_once(':'), f[2].parse::<u64>()) {
                v.push(serde_json::json!({"major": maj.parse::<u64>().unwrap_or(0), "minor": min.parse::<u64>().unwrap_or(0), "op": f[1], "value": val}));
            }
        }
    }
    serde_json::Value::Array(v)
}

/// runc's `events --stats` data object, read from whichever hierarchy has each controller.
pub fn stats(paths: &[PathBuf]) -> serde_json::Value {
    use serde_json::json;
    let cg = Cgroup::from_paths(paths);
    let find = |file: &str| {
        cg.dirs
            .iter()
            .map(|(_, d)| d.clone())
            .find(|d| d.join(file).exists())
    };
    let mut data = serde_json::Map::new();
    if let Some(d) = find("cpuacct.usage") {
        let percpu: Vec<u64> = std::fs::read_to_string(d.join("cpuacct.usage_percpu"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let st = read_kv(&d, "cpuacct.stat");
        let tick = 1_000_000_000u64 / 100;
        let thr = find("cpu.cfs_period_us")
            .map(|c| read_kv(&c, "cpu.stat"))
            .unwrap_or_default();
        data.insert(
            "cpu".into(),
            json!({"usage": {"total": read_u64(&d, "cpuacct.usage").unwrap_or(0), "percpu": percpu,
                             "kernel": st.get("system").and_then(|v| v.as_u64()).unwrap_or(0) * tick,
                             "user": st.get("user").and_then(|v| v.as_u64()).unwrap_or(0) * tick},
                   "throttling": {"periods": thr.get("nr_periods").cloned().unwrap_or(0.into()), "throttledPeriods": thr.get("nr_throttled").cloned().unwrap_or(0.into()),
                                  "throttledTime": thr.get("throttled_time").cloned().unwrap_or(0.into())}}),
        );
    } else if let Some(d) = find("cpu.stat").filter(|d| d.join("cgroup.controllers").exists()) {
        let st = read_kv(&d, "cpu.stat");
        let g = |k: &str| st.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        data.insert(
            "cpu".into(),
            json!({"usage": {"total": g("usage_usec") * 1000, "kernel": g("system_usec") * 1000, "user": g("user_usec") * 1000},
                   "throttling": {"periods": g("nr_periods"), "throttledPeriods": g("nr_throttled"), "throttledTime": g("throttled_usec") * 1000}}),
        );
    }
    if let Some(d) = find("memory.usage_in_bytes") {
        let e = |p: &str| {
            json!({"limit": read_u64(&d, &format!("{p}.limit_in_bytes")).unwrap_or(0), "usage": read_u64(&d, &format!("{p}.usage_in_bytes")).unwrap_or(0),
                                 "max": read_u64(&d, &format!("{p}.max_usage_in_bytes")).unwrap_or(0), "failcnt": read_u64(&d, &format!("{p}.failcnt")).unwrap_or(0)})
        };
        data.insert("memory".into(), json!({"usage": e("memory"), "swap": e("memory.memsw"), "kernel": e("memory.kmem"), "kernelTCP": e("memory.kmem.tcp"), "raw": read_kv(&d, "memory.stat")}));
    } else if let Some(d) = find("memory.current") {
        data.insert(
            "memory".into(),
            json!({"usage": {"usage": read_u64(&d, "memory.current").unwrap_or(0), "limit": read_u64(&d, "memory.max").unwrap_or(0), "max": read_u64(&d, "memory.peak").unwrap_or(0), "failcnt": 0},
                   "swap": {"usage": read_u64(&d, "memory.swap.current").unwrap_or(0), "limit": read_u64(&d, "memory.swap.max").unwrap_or(0)},
                   "raw": read_kv(&d, "memory.stat")}),
        );
    }
    if let Some(d) = find("pids.current") {
        let limit = read_u64(&d, "pids.max")
            .map(|v| if v == u64::MAX { 0 } else { v })
            .unwrap_or(0);
        data.insert(
            "pids".into(),
            json!({"current": read_u64(&d, "pids.current").unwrap_or(0), "limit": limit}),
        );
    }
    if let Some(d) = find("blkio.throttle.io_service_bytes") {
        data.insert(
            "blkio".into(),
            json!({"ioServiceBytesRecursive": blkio_entries(&d, "blkio.throttle.io_service_bytes"), "ioServicedRecursive": blkio_entries(&d, "blkio.throttle.io_serviced")}),
        );
    }
    let mut huge = serde_json::Map::new();
    for (h, d) in &cg.dirs {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let size = if h.v2 {
                n.strip_prefix("hugetlb.")
                    .and_then(|x| x.strip_suffix(".current"))
            } else {
                n.strip_prefix("hugetlb.")
                    .and_then(|x| x.strip_suffix(".usage_in_bytes"))
            };
            if let Some(size) = size {
                let (max, fail) = if h.v2 {
                    (
                        format!("hugetlb.{size}.max"),
                        format!("hugetlb.{size}.events"),
                    )
                } else {
                    (
                        format!("hugetlb.{size}.max_usage_in_bytes"),
                        format!("hugetlb.{size}.failcnt"),
                    )
                };
                let failcnt = if h.v2 {
                    read_kv(d, &fail)
                        .get("max")
                        .and_then(|v| v.as_u64())
                        .unwrap_or(0)
                } else {
                    read_u64(d, &fail).unwrap_or(0)
                };
                huge.insert(size.to_string(), json!({"usage": read_u64(d, &n).unwrap_or(0), "max": read_u64(d, &max).map(|v| if v == u64::MAX { 0 } else { v }).unwrap_or(0), "failcnt": failcnt}));
            }
        }
    }
    if !huge.is_empty() {
        data.insert("hugetlb".into(), huge.into());
    }
    serde_json::Value::Object(data)
}

/// How many times the kernel's OOM killer has killed in the container's memory cgroup.
pub fn oom_kills(paths: &[PathBuf]) -> u64 {
    for p in paths {
        for f in ["memory.oom_control", "memory.events"] {
            if let Some(v) = read_kv(p, f).get("oom_kill").and_then(|v| v.as_u64()) {
                return v;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn hybrid_mountinfo() {
        let t = "30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                 31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n\
                 32 30 0:28 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu\n\
                 33 30 0:29 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n\
                 34 30 0:30 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio\n";
        let h = parse_mountinfo(t);
        assert_eq!(h.len(), 4);
        assert!(h[0].v2);
        assert_eq!(h[1].controllers, "cpu");
        assert_eq!(h[2].controllers, "name=systemd");
        assert_eq!(h[3].controllers, "net_cls,net_prio");
    }
    #[test]
    fn hierarchies_mounted_twice_count_once() {
        let t = "31 24 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                 32 24 0:28 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu\n\
                 90 80 0:27 / /b/rootfs/sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                 91 80 0:28 / /b/rootfs/sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        let h = parse_mountinfo(t);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].mountpoint, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(h[1].mountpoint, PathBuf::from("/sys/fs/cgroup/cpu"));
    }
}
