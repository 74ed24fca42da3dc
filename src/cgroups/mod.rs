//! cgroups on v1, v2 and hybrid hosts: where the container's cgroup is in every mounted
//! hierarchy, creating it, applying `linux.resources`, joining, freezing, removing.
//!
//! A hybrid host (v1 controllers plus a cgroup2 mount) is handled as what it is: each
//! controller is driven in the hierarchy that has it, v1 first; the cgroup2 directory gets
//! what only it has (e.g. hugetlb here) and the container's membership.

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
                        ) && !nix::unistd::geteuid().is_root() =>
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
        for (h, dir) in &self.dirs {
            if h.v2 {
                let avail =
                    std::fs::read_to_string(dir.parent().unwrap_or(dir).join("cgroup.controllers"))
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

    pub fn mount_map(&self) -> Vec<(PathBuf, PathBuf)> {
        self.dirs
            .iter()
            .map(|(h, d)| (h.mountpoint.clone(), d.clone()))
            .collect()
    }

    pub fn remove(&self) -> Result<()> {
        remove(&self.created)
    }
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
        if out.iter().any(|h| {
            h.mountpoint == mp || (!h.v2 && h.controllers == controllers && fstype == "cgroup")
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
}
