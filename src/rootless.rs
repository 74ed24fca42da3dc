//! Rootless specifics: the `spec --rootless` config.

use anyhow::{bail, Result};
use serde_json::{json, Value};

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
    let caps = json!([
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
        "CAP_SYS_CHROOT"
    ]);
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
}
