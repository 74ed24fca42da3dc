//! Load config.json (oci-spec types), validate it, resolve paths against the bundle.

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The runtime-spec version husk implements and writes in `husk spec`.
pub const OCI_VERSION: &str = "1.2.1";

pub struct Config {
    pub spec: Spec,
    /// Absolute bundle directory.
    pub bundle: PathBuf,
    /// Absolute root filesystem path.
    pub rootfs: PathBuf,
}

/// Parse config.json text, naming the JSON path of any error.
pub fn parse(text: &[u8]) -> Result<Spec> {
    parse_as(text)
}

/// Parse any spec type, naming the JSON path of any error.
pub fn parse_as<T: serde::de::DeserializeOwned>(text: &[u8]) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_slice(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            anyhow!("{inner}")
        } else {
            anyhow!("{path}: {inner}")
        }
    })
}

pub fn load(bundle: &Path) -> Result<Config> {
    let bundle =
        std::path::absolute(bundle).with_context(|| format!("bundle {}", bundle.display()))?;
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    let spec = parse(&text).with_context(|| format!("parse {}", path.display()))?;
    let rootfs = validate(&spec, &bundle).with_context(|| format!("invalid {}", path.display()))?;
    Ok(Config {
        spec,
        bundle,
        rootfs,
    })
}

pub fn check_version(v: &str) -> Result<()> {
    if v.is_empty() {
        bail!("ociVersion is missing");
    }
    let major = v.split('.').next().unwrap_or("");
    match major.parse::<u64>() {
        Ok(1) => Ok(()),
        Ok(n) => bail!("ociVersion {v:?}: major version {n} is not supported (husk implements 1.x, up to {OCI_VERSION})"),
        Err(_) => bail!("ociVersion {v:?} is not a semantic version"),
    }
}

/// Check what the kernel would otherwise reject halfway through create; return the rootfs path.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    check_version(spec.version())?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| anyhow!("root: missing (root.path is required)"))?;
    if root.path().as_os_str().is_empty() {
        bail!("root.path is empty");
    }
    let rootfs = bundle.join(root.path());
    match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("root.path {}: not a directory", rootfs.display()),
        Err(e) => bail!("root.path {}: {}", rootfs.display(), e),
    }
    // The spec makes `process` required only when `start` is called: a container without
    // one can be created (and its start fails).
    if let Some(process) = spec.process() {
        match process.args() {
            Some(a) if !a.is_empty() && !a[0].is_empty() => {}
            _ => bail!("process.args must name the program to run"),
        }
        if !process.cwd().is_absolute() {
            bail!("process.cwd {:?} must be an absolute path", process.cwd());
        }
    }
    let linux = spec.linux().as_ref();
    if let Some(s) = linux.and_then(|l| l.seccomp().as_ref()) {
        crate::spawn::seccomp::validate(s)?;
    }
    if let Some(h) = spec.hooks() {
        crate::hooks::validate(h)?;
    }
    let mut seen = HashSet::new();
    let namespaces = linux
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for ns in &namespaces {
        if !seen.insert(ns.typ()) {
            bail!("linux.namespaces: {} listed twice", ns_name(ns.typ()));
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                bail!(
                    "linux.namespaces: {} path {:?} must be absolute",
                    ns_name(ns.typ()),
                    p
                );
            }
        }
    }
    let has = |t: LinuxNamespaceType| seen.contains(&t);
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        bail!("hostname: cannot set the hostname without a uts namespace");
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts)
    {
        bail!("domainname: cannot set the domainname without a uts namespace");
    }
    // Without a mount namespace the container shares ours (the spec: inherit what is not
    // listed); mounts land in it, but nothing may remount the host's own paths.
    if !has(LinuxNamespaceType::Mount) {
        let l = linux;
        if l.and_then(|l| l.masked_paths().as_ref())
            .is_some_and(|m| !m.is_empty())
            || l.and_then(|l| l.readonly_paths().as_ref())
                .is_some_and(|m| !m.is_empty())
        {
            bail!("linux.maskedPaths/readonlyPaths need a mount namespace in linux.namespaces");
        }
        if spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false)
        {
            bail!("root.readonly needs a mount namespace in linux.namespaces");
        }
    }
    if let Some(l) = linux {
        let maps = l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        let new_user = namespaces
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
        if maps && !has(LinuxNamespaceType::User) {
            bail!("linux.uidMappings/gidMappings need a user namespace in linux.namespaces");
        }
        if new_user && !maps {
            bail!("linux.namespaces: a new user namespace needs linux.uidMappings and linux.gidMappings");
        }
        if namespaces
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Time && n.path().is_some())
            && l.time_offsets().as_ref().is_some_and(|t| !t.is_empty())
        {
            bail!("linux.timeOffsets cannot be applied to a time namespace joined by path");
        }
        if let Some(offsets) = l.time_offsets().as_ref().filter(|t| !t.is_empty()) {
            if !has(LinuxNamespaceType::Time) {
                bail!("linux.timeOffsets needs a time namespace in linux.namespaces");
            }
            for (clock, o) in offsets {
                if clock != "boottime" && clock != "monotonic" {
                    bail!("linux.timeOffsets {clock:?}: only \"boottime\" and \"monotonic\" can be offset");
                }
                if o.nanosecs().unwrap_or(0) >= 1_000_000_000 {
                    bail!("linux.timeOffsets {clock:?}: nanosecs must be below 1000000000");
                }
            }
        }
        if let Some(sysctl) = l.sysctl() {
            crate::spawn::sysctl::check(sysctl, has)?;
        }
        if let Some(f) = l
            .personality()
            .as_ref()
            .and_then(|p| p.flags().as_ref())
            .and_then(|f| f.first())
        {
            bail!("linux.personality.flags: {f:?} is not supported (the spec defines no flags)");
        }
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if m.destination().as_os_str().is_empty() {
            bail!("mounts[{i}].destination is empty");
        }
        if crate::spawn::idmapped::wanted(m) {
            let bind = m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind");
            if !bind {
                bail!(
                    "mounts[{i}] ({}): id-mapped mounts are supported for bind mounts only",
                    m.destination().display()
                );
            }
            crate::spawn::idmapped::mappings(spec, m)
                .with_context(|| format!("mounts[{i}] ({})", m.destination().display()))?;
        }
    }
    Ok(rootfs)
}

pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

pub fn ns_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(extra: &str) -> String {
        format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"process":{{"cwd":"/","args":["sh"],"user":{{"uid":0,"gid":0}}}},
               "linux":{{"namespaces":[{{"type":"mount"}}]}}{extra}}}"#
        )
    }

    #[test]
    fn every_1x_version_parses() {
        for v in [
            "1.0.0",
            "1.0.1",
            "1.0.2",
            "1.0.2-dev",
            "1.1.0",
            "1.2.0",
            "1.2.1",
            "1.3.0",
        ] {
            let t = minimal("").replace("1.0.2", v);
            let s = parse(t.as_bytes()).unwrap();
            check_version(s.version()).unwrap();
        }
    }

    #[test]
    fn unknown_major_is_refused() {
        let e = check_version("2.0.0").unwrap_err().to_string();
        assert!(e.contains("major version 2"), "{e}");
        assert!(check_version("").is_err());
        assert!(check_version("x.y").is_err());
    }

    #[test]
    fn errors_name_the_json_path() {
        let t = minimal("").replace(
            r#"{"type":"mount"}"#,
            r#"{"type":"mount"},{"type":"bogus"}"#,
        );
        let e = parse(t.as_bytes()).unwrap_err().to_string();
        assert!(e.starts_with("linux.namespaces[1].type:"), "{e}");
        let t = minimal(r#","mounts":[{"type":"tmpfs","source":"x"}]"#);
        let e = parse(t.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("mounts[0]") && e.contains("destination"), "{e}");
        let t = minimal("").replace(
            r#""user""#,
            r#""capabilities":{"bounding":["CAP_NOPE"]},"user""#,
        );
        let e = parse(t.as_bytes()).unwrap_err().to_string();
        assert!(
            e.contains("process.capabilities.bounding") && e.contains("CAP_NOPE"),
            "{e}"
        );
    }
}
