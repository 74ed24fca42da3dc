//! cgroups: discovery of the host's hierarchies (v1, v2 or hybrid) and what other parts of
//! husk need from them.

use std::path::{Path, PathBuf};

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
