//! Rootless specifics: the `spec --rootless` config, and what an unprivileged caller may
//! expect from cgroups.

use anyhow::{bail, Result};
use oci_spec::runtime::Spec;
use serde_json::{json, Value};
use std::path::PathBuf;

/// The capabilities podman grants a container by default: enough for programs that
/// switch users (apt, su) and bind low ports, nothing that reaches the host.
pub const PODMAN_CAPS: [&str; 11] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// Parse /etc/subuid or /etc/subgid: the ranges granted to `name` or `id`.
pub fn sub_ranges(text: &str, name: &str, id: u32) -> Vec<(u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            if f.len() != 3 || (f[0] != name && f[0] != id.to_string()) {
                return None;
            }
            Some((f[1].parse().ok()?, f[2].parse().ok()?))
        })
        .collect()
}

/// Maps: container 0 -> our id, container 1.. -> every subordinate range, in order.
pub fn maps(own: u32, ranges: &[(u32, u32)]) -> Value {
    let mut v = vec![json!({"containerID": 0, "hostID": own, "size": 1})];
    let mut next = 1u64;
    for &(start, size) in ranges {
        v.push(json!({"containerID": next, "hostID": start, "size": size}));
        next += size as u64;
    }
    Value::Array(v)
}

pub fn apply(spec: &mut Value) -> Result<()> {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let name = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    let subuid = sub_ranges(
        &std::fs::read_to_string("/etc/subuid").unwrap_or_default(),
        &name,
        uid,
    );
    let subgid = sub_ranges(
        &std::fs::read_to_string("/etc/subgid").unwrap_or_default(),
        &name,
        uid,
    );
    if subuid.is_empty() || subgid.is_empty() {
        crate::warn!("no ranges for {name} in /etc/subuid or /etc/subgid: the container maps only uid {uid} and gid {gid}");
    }
    let caps = json!(PODMAN_CAPS);
    let Some(obj) = spec.as_object_mut() else {
        bail!("spec is not an object")
    };
    let p = &mut obj["process"];
    p["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    let linux = &mut obj["linux"];
    linux["uidMappings"] = maps(uid, &subuid);
    linux["gidMappings"] = maps(gid, &subgid);
    linux["namespaces"] = json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}, {"type": "user"}]);
    if let Some(r) = linux.as_object_mut() {
        r.remove("resources");
    }
    // Without a network namespace of our own, sysfs cannot be mounted: bind it.
    if let Some(mounts) = obj["mounts"].as_array_mut() {
        for m in mounts.iter_mut() {
            match m["destination"].as_str() {
                Some("/sys") => {
                    *m = json!({"destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
                }
                Some("/sys/fs/cgroup") => {
                    *m = json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})
                }
                Some("/dev/pts") => {
                    if let Some(o) = m["options"].as_array_mut() {
                        o.retain(|x| x.as_str() != Some("gid=5"));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The first of the caller's own cgroup directories that it cannot write to: cgroups are
/// delegated to an unprivileged user only when all of them are writable.
fn undelegated_cgroup() -> Option<PathBuf> {
    for h in crate::cgroups::hierarchies() {
        if h.controllers.starts_with("name=") {
            continue;
        }
        let own = crate::cgroups::own_path(&h).unwrap_or_else(|| "/".into());
        let rel = own
            .strip_prefix(h.root.as_str())
            .unwrap_or(&own)
            .trim_start_matches('/')
            .to_string();
        let dir = if rel.is_empty() {
            h.mountpoint.clone()
        } else {
            h.mountpoint.join(rel)
        };
        if nix::unistd::access(&dir, nix::unistd::AccessFlags::W_OK).is_err() {
            return Some(dir);
        }
    }
    None
}

/// The `linux.resources` sections that ask for a limit (devices are not one: a rootless
/// container only sees the devices that are bind-mounted into it).
pub fn requested_limits(spec: &Spec) -> Vec<String> {
    let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) else {
        return vec![];
    };
    let Ok(Value::Object(m)) = serde_json::to_value(r) else {
        return vec![];
    };
    fn empty(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.values().all(empty),
            _ => false,
        }
    }
    m.iter()
        .filter(|(k, v)| k.as_str() != "devices" && !empty(v))
        .map(|(k, _)| k.clone())
        .collect()
}

/// For an unprivileged caller: without delegated cgroups the container runs in the
/// caller's cgroup (said in the debug log); limits it cannot apply are refused, not ignored.
pub fn check_cgroups(spec: &Spec) -> Result<()> {
    let uid = nix::unistd::geteuid();
    let Some(dir) = undelegated_cgroup() else {
        crate::debug!("cgroups: the caller's cgroups are writable by uid {uid}");
        return Ok(());
    };
    crate::debug!(
        "cgroups: {} is not writable by uid {uid} (not delegated): skipping cgroups, the container stays in the caller's cgroup",
        dir.display()
    );
    if let Some(field) = requested_limits(spec).first() {
        bail!(
            "linux.resources.{field}: cannot apply limits: cgroups are not delegated to uid {uid} (no write access to {})",
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn subid_ranges_and_maps() {
        let t = "root:100000:65536\nalice:200000:65536\n1001:300000:1000\nalice:400000:10\n";
        assert_eq!(
            sub_ranges(t, "alice", 1000),
            vec![(200000, 65536), (400000, 10)]
        );
        assert_eq!(sub_ranges(t, "bob", 1001), vec![(300000, 1000)]);
        let m = maps(1000, &[(200000, 65536), (400000, 10)]);
        assert_eq!(m[1]["containerID"], 1);
        assert_eq!(m[2]["containerID"], 65537);
        assert_eq!(m[2]["hostID"], 400000);
    }
    #[test]
    fn limits_requested() {
        let spec = |res: &str| -> Spec {
            serde_json::from_str(&format!(
                r#"{{"ociVersion":"1.0.2","linux":{{"resources":{res}}}}}"#
            ))
            .unwrap()
        };
        let none: Vec<String> = vec![];
        assert_eq!(requested_limits(&spec("{}")), none);
        assert_eq!(
            requested_limits(&spec(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#)),
            none
        );
        assert_eq!(requested_limits(&spec(r#"{"memory":{}}"#)), none);
        assert_eq!(
            requested_limits(&spec(r#"{"pids":{"limit":10}}"#)),
            vec!["pids".to_string()]
        );
    }
}
