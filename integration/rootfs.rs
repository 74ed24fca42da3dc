//! The container's filesystem view: mounts, /dev, masked and read-only paths, pivot_root,
//! and mount targets that try to escape the rootfs through symlinks.

mod common;
use common::*;
use serde_json::json;
use std::process::Command;

fn mountinfo_line<'a>(mi: &'a str, mountpoint: &str) -> &'a str {
    mi.lines()
        .rfind(|l| l.split(' ').nth(4) == Some(mountpoint))
        .unwrap_or_else(|| panic!("{mountpoint} not mounted:\n{mi}"))
}

#[test]
fn default_mounts_and_readonly_root() {
    let b = Bundle::new(&[
        "sh",
        "-c",
        "cat /proc/self/mountinfo; touch /newfile 2>&1; echo rc=$?",
    ]);
    let out = b.run("mnt");
    let out = ok(&out);
    let root = mountinfo_line(&out, "/");
    assert!(
        root.split(' ').nth(5).unwrap().starts_with("ro"),
        "root not read-only: {root}"
    );
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("rc=1"));
    for (mp, fstype) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
    ] {
        let l = mountinfo_line(&out, mp);
        assert!(l.contains(&format!(" - {fstype} ")), "{mp}: {l}");
    }
    let sys = mountinfo_line(&out, "/sys");
    assert!(sys.split(' ').nth(5).unwrap().starts_with("ro,"), "{sys}");
    // one directory per host hierarchy under /sys/fs/cgroup, read-only
    let hs: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|m| m.starts_with("/sys/fs/cgroup/"))
        })
        .collect();
    assert!(!hs.is_empty(), "{out}");
    assert!(
        hs.iter()
            .all(|l| l.split(' ').nth(5).unwrap().starts_with("ro")),
        "{hs:?}"
    );
    // nothing of the host's root is left visible
    assert!(
        !out.lines().any(|l| l.split(' ').nth(4) == Some("/run")),
        "{out}"
    );
}

#[test]
fn dev_has_the_default_devices_and_linux_devices() {
    let mut b = Bundle::new(&["sh", "-c", "ls -l /dev; echo x > /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c; ls -l /dev/mine"]);
    b.edit(|c| {
        c["linux"]["devices"] = json!([{"path": "/dev/mine", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 5, "gid": 6}]);
    });
    let out = ok(&b.run("dev"));
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let l = out
            .lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("no /dev/{name}: {out}"));
        assert!(l.starts_with("crw-rw-rw-"), "{l}");
    }
    for link in [
        "fd -> /proc/self/fd",
        "stdin -> /proc/self/fd/0",
        "stdout -> /proc/self/fd/1",
        "stderr -> /proc/self/fd/2",
        "ptmx -> pts/ptmx",
    ] {
        assert!(out.contains(link), "missing /dev/{link}: {out}");
    }
    assert!(out.contains("null-ok"));
    assert!(out.contains("\n4\n"), "{out}");
    let mine = out.lines().last().unwrap();
    assert!(
        mine.starts_with("crw-r-----")
            && mine.contains(" 5 ")
            && mine.contains(" 6 ")
            && mine.contains("1,   3"),
        "{mine}"
    );
}

#[test]
fn masked_and_readonly_paths() {
    let mut b = Bundle::new(&["sh", "-c", "wc -c < /proc/timer_list; ls /proc/acpi | wc -l; ls /masked | wc -l; (echo 1 > /ro/f) 2>&1; echo rc=$?; echo 1 > /rw/f && echo rw-ok"]);
    let host = b.tmp.path().join("host");
    for d in ["ro", "rw", "masked"] {
        std::fs::create_dir_all(host.join(d)).unwrap();
    }
    std::fs::write(host.join("masked/secret"), "s").unwrap();
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        for d in ["ro", "rw", "masked"] {
            m.push(json!({"destination": format!("/{d}"), "type": "bind", "source": host.join(d), "options": ["rbind"]}));
        }
        c["linux"]["maskedPaths"].as_array_mut().unwrap().push(json!("/masked"));
        c["linux"]["readonlyPaths"].as_array_mut().unwrap().push(json!("/ro"));
        c["linux"]["maskedPaths"].as_array_mut().unwrap().push(json!("/does/not/exist"));
    });
    let out = ok(&b.run("masks"));
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0].trim(), "0", "/proc/timer_list readable: {out}");
    assert_eq!(l[1].trim(), "0", "/proc/acpi listed: {out}");
    assert_eq!(l[2].trim(), "0", "masked dir listed: {out}");
    assert!(
        out.contains("Read-only file system") && out.contains("rc=1"),
        "{out}"
    );
    assert!(out.contains("rw-ok"), "{out}");
    assert!(!host.join("ro/f").exists());
    assert!(host.join("rw/f").exists());
}

#[test]
fn bind_mount_options_and_file_binds() {
    let mut b = Bundle::new(&["sh", "-c", "cat /etc/myfile; echo 2 > /etc/myfile 2>/dev/null || echo ro-file; grep ' /data ' /proc/self/mountinfo"]);
    let host = b.tmp.path().join("file");
    std::fs::write(&host, "from-host\n").unwrap();
    let d = b.tmp.path().join("data");
    std::fs::create_dir_all(&d).unwrap();
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/etc/myfile", "type": "bind", "source": host, "options": ["bind", "ro"]}));
        m.push(json!({"destination": "/data", "type": "none", "source": d, "options": ["rbind", "nosuid", "nodev", "noexec", "rprivate"]}));
    });
    let out = ok(&b.run("binds"));
    assert!(out.starts_with("from-host\nro-file\n"), "{out}");
    let data = out.lines().last().unwrap();
    let opts = data.split(' ').nth(5).unwrap();
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(opts.contains(o), "{data}");
    }
}

#[test]
fn symlinks_in_the_rootfs_cannot_redirect_mounts_to_the_host() {
    let mut b = Bundle::new(&["sh", "-c", "ls /escape/"]);
    let victim = b.tmp.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    // /escape -> <absolute host path>, and /up -> ../../../../.. : both must stay in the rootfs
    std::os::unix::fs::symlink(&victim, b.rootfs().join("escape")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../..", b.rootfs().join("up")).unwrap();
    let marker = b.tmp.path().join("marker");
    std::fs::create_dir_all(&marker).unwrap();
    std::fs::write(marker.join("m"), "").unwrap();
    let rel_victim = victim
        .strip_prefix("/")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/escape/tmpfs", "type": "tmpfs", "source": "tmpfs"}));
        m.push(json!({"destination": format!("/up/{rel_victim}/bind"), "type": "bind", "source": marker, "options": ["bind"]}));
    });
    let o = b.run("escape");
    ok(&o);
    // nothing was created or mounted in the host directory
    assert_eq!(
        std::fs::read_dir(&victim).unwrap().count(),
        0,
        "host dir touched"
    );
    assert!(host_mounts_mentioning(victim.to_str().unwrap()).is_empty());
    // the targets were made inside the rootfs instead
    assert!(b.rootfs().join(&rel_victim).join("tmpfs").is_dir());
    assert!(b.rootfs().join(&rel_victim).join("bind").is_dir());
}

#[test]
fn no_pivot_and_rootfs_propagation() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "ls /bin/busybox && grep -c . /proc/self/mountinfo",
    ]);
    b.edit(|c| c["linux"]["rootfsPropagation"] = json!("private"));
    let o = b
        .husk()
        .args(["run", "--no-pivot", "--bundle"])
        .arg(&b.dir)
        .arg("np")
        .output()
        .unwrap();
    let out = ok(&o);
    assert!(out.contains("/bin/busybox"));
    let b = Bundle::new(&["true"]);
    let mut b2 = b;
    b2.edit(|c| c["linux"]["rootfsPropagation"] = json!("bogus"));
    let o = b2.run("prop");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("rootfsPropagation"), "{}", stderr(&o));
}

#[test]
fn a_failing_mount_leaves_nothing_behind() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/x", "type": "nosuchfs", "source": "none"}));
    });
    let o = b.create("failmnt");
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("mounts[7] (/x)") && e.contains("nosuchfs"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(!b.state_root().join("failmnt").exists(), "state dir left");
    assert!(
        host_procs_mentioning(b.dir.to_str().unwrap()).is_empty(),
        "process left"
    );
    assert!(
        host_mounts_mentioning(b.rootfs().to_str().unwrap()).is_empty(),
        "mount left"
    );
}

#[test]
fn without_a_mount_namespace_the_container_shares_ours_and_delete_cleans_up() {
    let mut b = Bundle::new(&["sh", "-c", "ls /bin/busybox && readlink /proc/self/ns/mnt"]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "mount");
        c["linux"]["maskedPaths"] = json!([]);
        c["linux"]["readonlyPaths"] = json!([]);
        c["root"]["readonly"] = json!(false);
    });
    ok(&b.create("nomnt"));
    ok(&b.cmd(&["start", "nomnt"]));
    b.wait_status("nomnt", "stopped");
    // its /proc (and the rest) were mounted in our namespace, under the rootfs
    assert!(!host_mounts_mentioning(b.rootfs().to_str().unwrap()).is_empty());
    ok(&b.cmd(&["delete", "nomnt"]));
    assert!(
        host_mounts_mentioning(b.rootfs().to_str().unwrap()).is_empty(),
        "mounts left after delete"
    );
    let out = ok(&b.run("nomnt2"));
    assert_eq!(
        out.lines().nth(1).unwrap(),
        std::fs::read_link("/proc/self/ns/mnt")
            .unwrap()
            .to_str()
            .unwrap()
    );
    // paths that would remount the host's own files need a mount namespace
    b.edit(|c| c["linux"]["maskedPaths"] = json!(["/proc/kcore"]));
    let o = b.create("nomnt3");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("maskedPaths"), "{}", stderr(&o));
}

#[test]
fn every_rootfs_propagation_mode_works() {
    for mode in [
        "private",
        "rprivate",
        "slave",
        "rslave",
        "shared",
        "rshared",
        "unbindable",
        "runbindable",
    ] {
        let mut b = Bundle::new(&[
            "sh",
            "-c",
            "grep -E '^[0-9]+ [0-9]+ [0-9:]+ [^ ]+ / ' /proc/self/mountinfo",
        ]);
        b.edit(|c| c["linux"]["rootfsPropagation"] = json!(mode));
        let o = b.run(&format!("prop-{mode}"));
        let out = ok(&o);
        let want = match mode.trim_start_matches('r') {
            "shared" => "shared:",
            // a slave of a private host mount is private: only check it is not shared
            "slave" => "",
            "unbindable" => "unbindable",
            _ => "",
        };
        if want.is_empty() {
            assert!(
                !out.contains("shared:") && !out.contains("master:") && !out.contains("unbindable"),
                "{mode}: {out}"
            );
        } else {
            assert!(out.contains(want), "{mode}: {out}");
        }
    }
}

#[test]
fn recursive_read_only_reaches_submounts() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "(touch /data/f) 2>&1; (touch /data/sub/f) 2>&1; true",
    ]);
    let host = b.tmp.path().join("data");
    std::fs::create_dir_all(host.join("sub")).unwrap();
    let sub = host.join("sub");
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&sub)
        .status()
        .unwrap();
    assert!(st.success());
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Umount(sub.clone());
    b.edit(|c| c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/data", "type": "bind", "source": host, "options": ["rbind", "rro"]})));
    let out = ok(&b.run("rro"));
    assert_eq!(out.matches("Read-only file system").count(), 2, "{out}");
    // plain ro on the same bind leaves the submount writable (what rro is for)
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.last_mut().unwrap()["options"] = json!(["rbind", "ro"]);
    });
    let out = ok(&b.run("ro"));
    assert_eq!(out.matches("Read-only file system").count(), 1, "{out}");
}

#[test]
fn id_mapped_bind_mounts_show_host_ids_through_the_mapping() {
    use std::os::unix::fs::MetadataExt;
    // The mapping goes from the source filesystem (containerID side) to what the mount
    // shows (hostID side): root's files appear as 1000, and 1000 writes root's files.
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "stat -c %u:%g /m/f; id -u; touch /m/new && stat -c %u:%g /m/new",
    ]);
    let host = b.tmp.path().join("idm");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "x").unwrap();
    b.edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/m", "type": "bind", "source": host, "options": ["rbind", "idmap"],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]
        }))
    });
    let out = ok(&b.run("idm"));
    assert_eq!(out, "1000:1000\n1000\n1000:1000\n", "{out}");
    let md = std::fs::metadata(host.join("new")).unwrap();
    assert_eq!(
        (md.uid(), md.gid()),
        (0, 0),
        "uid 1000 in the mount writes root's files on disk"
    );
    // without the mapping the same file is root's and 1000 may not write the directory
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap().last_mut().unwrap();
        *m = json!({"destination": "/m", "type": "bind", "source": host, "options": ["rbind"]});
    });
    let o = b.run("noidm");
    assert!(
        stdout(&o).starts_with("0:0\n1000\n") && stderr(&o).contains("Permission denied"),
        "{} {}",
        stdout(&o),
        stderr(&o)
    );
}

#[test]
fn id_mapped_mount_errors_name_the_mount() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/m", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"]})));
    let o = b.create("idm1");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("mounts[7] (/m)") && stderr(&o).contains("uidMappings"),
        "{}",
        stderr(&o)
    );
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap().last_mut().unwrap();
        *m = json!({"destination": "/m", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"],
                    "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}], "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]});
    });
    let o = b.create("idm2");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("mounts[7] (/m)") && stderr(&o).contains("bind mounts only"),
        "{}",
        stderr(&o)
    );
    assert!(
        std::fs::read_dir(b.state_root())
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
}
