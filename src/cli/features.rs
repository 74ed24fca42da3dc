//! `husk features`: the runtime-spec "features" document, built from the tables the code
//! itself uses (namespace flags, mount option tables, capability list, hook kinds, seccomp
//! actions/operators/flags, the architectures this libseccomp knows).

use crate::config::{ns_name, OCI_VERSION};
use crate::spawn::{rootfs, seccomp};
use anyhow::Result;
use oci_spec::runtime::LinuxNamespaceType;
use serde_json::{json, Value};

fn names<T: serde::Serialize>(v: &[T]) -> Vec<Value> {
    v.iter()
        .filter_map(|x| serde_json::to_value(x).ok())
        .collect()
}

pub fn document() -> Value {
    use LinuxNamespaceType::*;
    let namespaces: Vec<&str> = [Cgroup, Ipc, Mount, Network, Pid, User, Uts, Time]
        .into_iter()
        .filter(|t| *t != Time || std::path::Path::new("/proc/self/ns/time").exists())
        .map(ns_name)
        .collect();
    let mut caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    caps.sort();
    let mut mount_options: Vec<&str> = rootfs::FLAG_OPTIONS.iter().map(|o| o.0).collect();
    mount_options.extend(rootfs::PROPAGATION_OPTIONS.iter().map(|o| o.0));
    mount_options.extend(rootfs::RECURSIVE_OPTIONS.iter().map(|o| o.0));
    mount_options.extend(rootfs::OTHER_OPTIONS);
    let hooks: Vec<&str> = crate::hooks::Kind::ALL.iter().map(|k| k.name()).collect();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": hooks,
        "mountOptions": mount_options,
        "linux": {
            "namespaces": namespaces,
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": true},
            "seccomp": {
                "enabled": true,
                "actions": names(seccomp::ACTIONS),
                "operators": names(seccomp::OPERATORS),
                "archs": seccomp::supported_archs(),
                "knownFlags": names(seccomp::FLAGS),
                "supportedFlags": names(seccomp::FLAGS),
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": true}},
        },
        "annotations": {"org.opencontainers.runtime-spec.features.husk.version": env!("CARGO_PKG_VERSION")},
    })
}

pub fn run() -> Result<()> {
    crate::out!("{}", serde_json::to_string_pretty(&document())?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn document_lists_what_the_code_handles() {
        let d = super::document();
        assert!(d["mountOptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "rro"));
        assert!(d["linux"]["seccomp"]["operators"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "SCMP_CMP_MASKED_EQ"));
        assert!(d["linux"]["seccomp"]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "SCMP_ACT_NOTIFY"));
        assert_eq!(d["hooks"].as_array().unwrap().len(), 6);
        assert!(d["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "CAP_SYS_ADMIN"));
        // every mount option listed is one parse_options recognises (not passed on as fs data)
        for o in d["mountOptions"].as_array().unwrap() {
            let p = crate::spawn::rootfs::parse_options(&[o.as_str().unwrap().to_string()]);
            assert!(p.data.is_empty(), "{o} would go to the filesystem as data");
        }
    }
}
