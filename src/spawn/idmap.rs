//! uid/gid maps of a new user namespace. As root: write /proc/PID/{uid,gid}_map directly.
//! Unprivileged: a single mapping of our own id is written directly (gid after
//! `setgroups` deny); anything more goes through the setuid helpers newuidmap/newgidmap,
//! which check /etc/subuid and /etc/subgid.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxIdMapping;

pub fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

fn own_single(maps: &[LinuxIdMapping], id: u32) -> bool {
    maps.len() == 1 && maps[0].host_id() == id && maps[0].size() == 1
}

pub fn write(pid: i32, uid_maps: &[LinuxIdMapping], gid_maps: &[LinuxIdMapping]) -> Result<()> {
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    let privileged = euid == 0;
    // gid first: a direct unprivileged gid map needs setgroups denied before it.
    if privileged || own_single(gid_maps, egid) {
        if !privileged {
            std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
                .with_context(|| format!("write deny to /proc/{pid}/setgroups"))?;
        }
        direct(pid, "gid_map", gid_maps, "linux.gidMappings")?;
    } else {
        helper(
            "newgidmap",
            pid,
            gid_maps,
            "/etc/subgid",
            "linux.gidMappings",
        )?;
    }
    if privileged || own_single(uid_maps, euid) {
        direct(pid, "uid_map", uid_maps, "linux.uidMappings")?;
    } else {
        helper(
            "newuidmap",
            pid,
            uid_maps,
            "/etc/subuid",
            "linux.uidMappings",
        )?;
    }
    Ok(())
}

fn direct(pid: i32, file: &str, maps: &[LinuxIdMapping], field: &str) -> Result<()> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::write(&path, map_text(maps))
        .with_context(|| format!("{field}: write {:?} to {path}", map_text(maps).trim_end()))
}

fn helper(prog: &str, pid: i32, maps: &[LinuxIdMapping], file: &str, field: &str) -> Result<()> {
    let mut cmd = std::process::Command::new(prog);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.arg(m.container_id().to_string())
            .arg(m.host_id().to_string())
            .arg(m.size().to_string());
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{field}: {prog} not found: unprivileged users need the setuid helpers newuidmap/newgidmap (Debian package uidmap) to map more than their own id"
        ),
        Err(e) => return Err(e).with_context(|| format!("run {prog}")),
    };
    if !out.status.success() {
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| nix::unistd::geteuid().to_string());
        bail!(
            "{field}: {prog} {}: {} (are the ranges {:?} granted to {user} in {file}?)",
            pid,
            String::from_utf8_lossy(&out.stderr).trim(),
            map_text(maps).trim_end().replace('\n', ", ")
        );
    }
    Ok(())
}
