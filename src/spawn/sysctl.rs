//! linux.sysctl: only keys that belong to a namespace the container has of its own may be
//! set (a host-wide key would change the host). Checked when the config is loaded, written
//! to /proc/sys by the container's first process after /proc is mounted and before
//! /proc/sys is made read-only.

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::LinuxNamespaceType;
use std::path::{Path, PathBuf};

/// IPC namespace keys (besides everything under fs.mqueue).
const IPC_KEYS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Which namespace a key belongs to, or None for a host-wide key.
fn namespace_of(key: &str) -> Option<LinuxNamespaceType> {
    if IPC_KEYS.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else {
        None
    }
}

/// The file under /proc/sys for a key. In sysctl names '.' separates levels and '/' stands
/// for a '.' inside one level (net.ipv4.conf.eth0/100.forwarding).
pub fn path_of(key: &str) -> Result<PathBuf> {
    let mut p = PathBuf::new();
    for part in key.split('.') {
        let part = part.replace('/', ".");
        if part.is_empty() || part == "." || part == ".." {
            bail!("linux.sysctl {key:?}: not a sysctl name");
        }
        p.push(part);
    }
    Ok(p)
}

/// Refuse keys that are not namespaced, or whose namespace the container does not have.
pub fn check(
    sysctl: &std::collections::HashMap<String, String>,
    has: impl Fn(LinuxNamespaceType) -> bool,
) -> Result<()> {
    let mut keys: Vec<&String> = sysctl.keys().collect();
    keys.sort();
    for key in keys {
        path_of(key)?;
        let Some(ns) = namespace_of(key) else {
            bail!(
                "linux.sysctl {key:?}: not a namespaced sysctl: setting it would change the host"
            );
        };
        if !has(ns) {
            bail!(
                "linux.sysctl {key:?}: needs the container to have a {} namespace",
                crate::config::ns_name(ns)
            );
        }
    }
    Ok(())
}

/// Write every key (in sorted order) below /proc/sys of the container.
pub fn apply(sysctl: Option<&std::collections::HashMap<String, String>>) -> Result<()> {
    let Some(sysctl) = sysctl.filter(|s| !s.is_empty()) else {
        return Ok(());
    };
    let dir = crate::sys::openat2(
        libc::AT_FDCWD,
        Path::new("/proc/sys"),
        (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        0,
        0,
    )
    .map_err(|e| anyhow!("linux.sysctl: open /proc/sys: {e} (is /proc mounted?)"))?;
    let mut keys: Vec<(&String, &String)> = sysctl.iter().collect();
    keys.sort();
    for (key, value) in keys {
        let rel = path_of(key)?;
        let fd = crate::sys::openat2(
            std::os::fd::AsRawFd::as_raw_fd(&dir),
            &rel,
            (libc::O_WRONLY | libc::O_CLOEXEC) as u64,
            0,
            crate::sys::RESOLVE_IN_ROOT
                | crate::sys::RESOLVE_NO_SYMLINKS
                | crate::sys::RESOLVE_NO_XDEV,
        )
        .with_context(|| format!("linux.sysctl {key:?}: open /proc/sys/{}", rel.display()))?;
        nix::unistd::write(&fd, value.as_bytes())
            .with_context(|| format!("linux.sysctl {key:?} = {value:?}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn one(k: &str) -> HashMap<String, String> {
        HashMap::from([(k.to_string(), "1".to_string())])
    }

    #[test]
    fn namespaced_keys_need_their_namespace() {
        let all = |_| true;
        for k in [
            "kernel.shmmax",
            "kernel.sem",
            "fs.mqueue.msg_max",
            "net.ipv4.ip_forward",
            "net.ipv4.conf.eth0/100.forwarding",
            "kernel.domainname",
        ] {
            check(&one(k), all).unwrap();
        }
        let e = check(&one("net.ipv4.ip_forward"), |t| {
            t != LinuxNamespaceType::Network
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("net.ipv4.ip_forward") && e.contains("network namespace"),
            "{e}"
        );
        let e = check(&one("kernel.shmmax"), |t| t != LinuxNamespaceType::Ipc).unwrap_err();
        assert!(e.to_string().contains("ipc namespace"), "{e}");
    }

    #[test]
    fn host_wide_keys_are_refused() {
        for k in [
            "vm.swappiness",
            "kernel.pid_max",
            "fs.file-max",
            "kernel.shmmaxx",
        ] {
            let e = check(&one(k), |_| true).unwrap_err().to_string();
            assert!(e.contains(k) && e.contains("not a namespaced"), "{e}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(
            path_of("net.ipv4.conf.eth0/100.forwarding").unwrap(),
            Path::new("net/ipv4/conf/eth0.100/forwarding")
        );
        for bad in ["net..x", "net.ipv4./", "net.//.x", ".net", "net."] {
            assert!(path_of(bad).is_err(), "{bad}");
        }
    }
}
