//! Id-mapped bind mounts (`mounts[].uidMappings`/`gidMappings`, options `idmap`/`ridmap`):
//! the source tree is cloned with open_tree(2), given a user namespace's mapping with
//! mount_setattr(MOUNT_ATTR_IDMAP) and attached with move_mount(2).
//!
//! The user namespace that carries a mapping is made by the parent before the container's
//! clone: a short-lived helper process is cloned into a new user namespace, its maps are
//! written (directly, or through newuidmap/newgidmap when unprivileged), and an fd of the
//! namespace is kept for the child; the helper then exits.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxIdMapping, Mount, Spec};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Does this mount ask for an id-mapped bind?
pub fn wanted(m: &Mount) -> bool {
    m.options()
        .iter()
        .flatten()
        .any(|o| o == "idmap" || o == "ridmap")
        || m.uid_mappings().is_some()
        || m.gid_mappings().is_some()
}

/// The mount's own mappings, or else the container's (the spec: `idmap` without mappings
/// uses the container's user namespace mappings).
pub fn mappings(spec: &Spec, m: &Mount) -> Result<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>)> {
    let linux = spec.linux().as_ref();
    let uid = m
        .uid_mappings()
        .clone()
        .or_else(|| linux.and_then(|l| l.uid_mappings().clone()))
        .unwrap_or_default();
    let gid = m
        .gid_mappings()
        .clone()
        .or_else(|| linux.and_then(|l| l.gid_mappings().clone()))
        .unwrap_or_default();
    if uid.is_empty() || gid.is_empty() {
        bail!("an id-mapped mount needs uidMappings and gidMappings (on the mount or in linux)");
    }
    Ok((uid, gid))
}

/// A user namespace fd with these mappings.
pub fn userns(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd> {
    let (r, w) = nix::unistd::pipe().context("pipe for the id-map helper")?;
    let pid = crate::sys::clone3(libc::CLONE_NEWUSER as u64, None)?;
    if pid == 0 {
        drop(w);
        let mut b = [0u8; 1];
        // SAFETY: block until the parent closes its end, then leave.
        unsafe {
            libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1);
            libc::_exit(0)
        }
    }
    drop(r);
    let done = |w: OwnedFd| {
        drop(w);
        // SAFETY: reaping our own helper.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    };
    if let Err(e) = super::idmap::write(pid, uid, gid) {
        done(w);
        return Err(e).context("write the id-mapped mount's uid/gid maps");
    }
    let f = std::fs::File::open(format!("/proc/{pid}/ns/user"))
        .context("open the id-map helper's user namespace");
    done(w);
    Ok(OwnedFd::from(f?))
}

fn check(r: libc::c_long, what: &str) -> Result<RawFd> {
    if r < 0 {
        bail!("{what}: {}", std::io::Error::last_os_error());
    }
    Ok(r as RawFd)
}

/// Bind `src` (a host path) at `target` (an O_PATH fd inside the rootfs) with the mapping
/// of `userns`.
pub fn bind(
    src: &std::path::Path,
    target: &OwnedFd,
    recursive: bool,
    userns: &OwnedFd,
) -> Result<()> {
    let c = crate::sys::cstr(src)?;
    let mut flags = libc::OPEN_TREE_CLONE as libc::c_uint | libc::OPEN_TREE_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= crate::sys::AT_RECURSIVE;
    }
    // SAFETY: valid C string; the kernel returns a new fd we own.
    let tree = check(
        unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) },
        "open_tree of the id-mapped source",
    )?;
    // SAFETY: fresh fd.
    let tree = unsafe { OwnedFd::from_raw_fd(tree) };
    crate::sys::mount_setattr(
        tree.as_raw_fd(),
        recursive,
        crate::sys::MOUNT_ATTR_IDMAP,
        0,
        Some(userns.as_raw_fd()),
    )
    .context("mount_setattr(MOUNT_ATTR_IDMAP): does the filesystem support id-mapped mounts?")?;
    let fl = 0x04 | 0x40; // MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
                          // SAFETY: two valid fds and empty paths.
    check(
        unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                tree.as_raw_fd(),
                c"".as_ptr(),
                target.as_raw_fd(),
                c"".as_ptr(),
                fl,
            )
        },
        "move_mount of the id-mapped tree",
    )?;
    Ok(())
}
