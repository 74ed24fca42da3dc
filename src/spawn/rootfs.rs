//! The container's mount namespace: rootfs propagation, bind of root.path, the `mounts`
//! array in order, /dev, pivot_root, masked and read-only paths, read-only root.
//!
//! Every mount target inside the rootfs is opened with openat2(RESOLVE_IN_ROOT) relative to
//! an fd of the rootfs, and the mount is made on `/proc/self/fd/N` of that fd: a symlink in
//! the rootfs (`/proc -> /etc`, `/x -> ../../../host`) can never send a mount outside it.

use crate::sys::{self, openat2, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};
use anyhow::{anyhow, bail, Context, Result};
use libc::c_ulong;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// A mount entry's `options`, split into what mount(2) and mount_setattr(2) take.
#[derive(Debug, Default, PartialEq)]
pub struct MountOptions {
    pub flags: c_ulong,
    /// MS_* propagation flags to apply after the mount (MS_SHARED, MS_PRIVATE | MS_REC ...).
    pub propagation: Vec<c_ulong>,
    /// Filesystem-specific data (mode=755, size=...).
    pub data: Vec<String>,
    /// Recursive attributes (rro, rnosuid, ...) for mount_setattr(AT_RECURSIVE).
    pub rec_set: u64,
    pub rec_clr: u64,
    pub idmap: bool,
    pub recursive_idmap: bool,
}

/// mount(2) flag options: name, flags set, flags cleared. `husk features` lists these.
pub const FLAG_OPTIONS: &[(&str, c_ulong, c_ulong)] = &[
    ("defaults", 0, 0),
    ("ro", libc::MS_RDONLY, 0),
    ("rw", 0, libc::MS_RDONLY),
    ("suid", 0, libc::MS_NOSUID),
    ("nosuid", libc::MS_NOSUID, 0),
    ("dev", 0, libc::MS_NODEV),
    ("nodev", libc::MS_NODEV, 0),
    ("exec", 0, libc::MS_NOEXEC),
    ("noexec", libc::MS_NOEXEC, 0),
    ("sync", libc::MS_SYNCHRONOUS, 0),
    ("async", 0, libc::MS_SYNCHRONOUS),
    ("dirsync", libc::MS_DIRSYNC, 0),
    ("remount", libc::MS_REMOUNT, 0),
    ("mand", libc::MS_MANDLOCK, 0),
    ("nomand", 0, libc::MS_MANDLOCK),
    ("atime", 0, libc::MS_NOATIME),
    ("noatime", libc::MS_NOATIME, 0),
    ("diratime", 0, libc::MS_NODIRATIME),
    ("nodiratime", libc::MS_NODIRATIME, 0),
    ("relatime", libc::MS_RELATIME, 0),
    ("norelatime", 0, libc::MS_RELATIME),
    ("strictatime", libc::MS_STRICTATIME, 0),
    ("nostrictatime", 0, libc::MS_STRICTATIME),
    ("lazytime", libc::MS_LAZYTIME, 0),
    ("nolazytime", 0, libc::MS_LAZYTIME),
    ("iversion", libc::MS_I_VERSION, 0),
    ("noiversion", 0, libc::MS_I_VERSION),
    ("nosymfollow", libc::MS_NOSYMFOLLOW, 0),
    ("symfollow", 0, libc::MS_NOSYMFOLLOW),
    ("bind", libc::MS_BIND, 0),
    ("rbind", libc::MS_BIND | libc::MS_REC, 0),
];

/// Propagation options and their MS_* flags.
pub const PROPAGATION_OPTIONS: &[(&str, c_ulong)] = &[
    ("private", libc::MS_PRIVATE),
    ("rprivate", libc::MS_PRIVATE | libc::MS_REC),
    ("shared", libc::MS_SHARED),
    ("rshared", libc::MS_SHARED | libc::MS_REC),
    ("slave", libc::MS_SLAVE),
    ("rslave", libc::MS_SLAVE | libc::MS_REC),
    ("unbindable", libc::MS_UNBINDABLE),
    ("runbindable", libc::MS_UNBINDABLE | libc::MS_REC),
];

/// The recursive mount attributes of runtime-spec 1.1, applied with mount_setattr(2):
/// name, attributes set, attributes cleared.
pub const RECURSIVE_OPTIONS: &[(&str, u64, u64)] = &[
    ("rro", sys::MOUNT_ATTR_RDONLY, 0),
    ("rrw", 0, sys::MOUNT_ATTR_RDONLY),
    ("rnosuid", sys::MOUNT_ATTR_NOSUID, 0),
    ("rsuid", 0, sys::MOUNT_ATTR_NOSUID),
    ("rnodev", sys::MOUNT_ATTR_NODEV, 0),
    ("rdev", 0, sys::MOUNT_ATTR_NODEV),
    ("rnoexec", sys::MOUNT_ATTR_NOEXEC, 0),
    ("rexec", 0, sys::MOUNT_ATTR_NOEXEC),
    ("rnodiratime", sys::MOUNT_ATTR_NODIRATIME, 0),
    ("rdiratime", 0, sys::MOUNT_ATTR_NODIRATIME),
    (
        "rrelatime",
        sys::MOUNT_ATTR_RELATIME,
        sys::MOUNT_ATTR_ATIME_MASK,
    ),
    ("rnorelatime", 0, sys::MOUNT_ATTR_ATIME_MASK),
    (
        "rnoatime",
        sys::MOUNT_ATTR_NOATIME,
        sys::MOUNT_ATTR_ATIME_MASK,
    ),
    ("ratime", 0, sys::MOUNT_ATTR_ATIME_MASK),
    (
        "rstrictatime",
        sys::MOUNT_ATTR_STRICTATIME,
        sys::MOUNT_ATTR_ATIME_MASK,
    ),
    ("rnostrictatime", 0, sys::MOUNT_ATTR_ATIME_MASK),
    ("rnosymfollow", sys::MOUNT_ATTR_NOSYMFOLLOW, 0),
    ("rsymfollow", 0, sys::MOUNT_ATTR_NOSYMFOLLOW),
];

/// Options husk handles itself (not passed to the filesystem).
pub const OTHER_OPTIONS: &[&str] = &["idmap", "ridmap", "tmpcopyup"];

pub fn parse_options(opts: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    for opt in opts {
        let opt = opt.as_str();
        if let Some((_, set, clr)) = FLAG_OPTIONS.iter().find(|(n, _, _)| *n == opt) {
            o.flags = (o.flags | set) & !clr;
        } else if let Some(p) = propagation_flag(opt) {
            o.propagation.push(p);
        } else if let Some((set, clr)) = recursive_attr(opt) {
            o.rec_set |= set;
            o.rec_clr |= clr;
        } else if opt == "idmap" || opt == "ridmap" {
            o.idmap = true;
            o.recursive_idmap |= opt == "ridmap";
        } else if opt == "tmpcopyup" {
            // runc extension; the copy-up itself is not implemented, the tmpfs still mounts.
        } else {
            o.data.push(opt.to_string());
        }
    }
    o
}

pub fn propagation_flag(s: &str) -> Option<c_ulong> {
    PROPAGATION_OPTIONS
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, f)| *f)
}

pub fn recursive_attr(s: &str) -> Option<(u64, u64)> {
    RECURSIVE_OPTIONS
        .iter()
        .find(|(n, _, _)| *n == s)
        .map(|(_, a, b)| (*a, *b))
}

fn mount(
    src: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: c_ulong,
    data: Option<&str>,
) -> std::io::Result<()> {
    let src = src.map(|s| CString::new(s).unwrap_or_default());
    let target_c = CString::new(target).unwrap_or_default();
    let fstype = fstype.map(|s| CString::new(s).unwrap_or_default());
    let data = data.map(|s| CString::new(s).unwrap_or_default());
    // SAFETY: all pointers are valid NUL-terminated strings or null.
    let r = unsafe {
        libc::mount(
            src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            target_c.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            data.as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr().cast()),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
pub enum Create {
    No,
    Dir,
    File,
}

/// Open `path` (absolute, interpreted inside `root`) as O_PATH, creating missing
/// directories (and the last component as `kind`) without ever leaving `root`.
pub fn open_in_root(root: &OwnedFd, path: &Path, kind: Create) -> Result<OwnedFd> {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect();
    let rel = if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    };
    let flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    let resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    match openat2(root.as_raw_fd(), &rel, flags, 0, resolve) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && kind != Create::No => {}
        Err(e) => return Err(e).with_context(|| format!("open {} in the rootfs", path.display())),
    }
    // Create what is missing along the path as the container would see it: symlinks
    // (dangling ones too) are followed, but always inside the root.
    let resolved = resolve_lexically(root, &rel)?;
    let strict = RESOLVE_IN_ROOT | sys::RESOLVE_NO_SYMLINKS;
    let mut prefix = PathBuf::new();
    let mut parent = openat2(root.as_raw_fd(), Path::new("."), flags, 0, resolve)?;
    for (i, c) in resolved.iter().enumerate() {
        prefix.push(c);
        let last = i + 1 == resolved.len();
        match openat2(root.as_raw_fd(), &prefix, flags, 0, strict) {
            Ok(fd) => {
                parent = fd;
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("open {} in the rootfs", prefix.display()))
            }
        }
        let name = sys::cstr(c)?;
        // The parent is an O_PATH fd; *at() calls accept it as a directory fd.
        if last && kind == Create::File {
            // SAFETY: valid dirfd and C string; O_NOFOLLOW|O_EXCL never follows a planted link.
            let fd = unsafe {
                libc::openat(
                    parent.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_WRONLY
                        | libc::O_CLOEXEC
                        | libc::O_NOFOLLOW,
                    0o644,
                )
            };
            if fd < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(e).with_context(|| {
                        format!("create file {} in the rootfs", prefix.display())
                    });
                }
            } else {
                // SAFETY: fd is ours to close.
                unsafe { libc::close(fd) };
            }
        } else {
            // SAFETY: valid dirfd and C string.
            let r = unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(e)
                        .with_context(|| format!("mkdir {} in the rootfs", prefix.display()));
                }
            }
        }
        parent = openat2(root.as_raw_fd(), &prefix, flags, 0, strict).with_context(|| {
            format!("open {} in the rootfs after creating it", prefix.display())
        })?;
    }
    Ok(parent)
}

/// The symlink-free path, relative to `root`, that `rel` names inside it: `..` stops at the
/// root and absolute link targets start again from the root (what RESOLVE_IN_ROOT does),
/// but components that do not exist yet are kept, so that they can be created.
fn resolve_lexically(root: &OwnedFd, rel: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut todo: std::collections::VecDeque<std::ffi::OsString> =
        rel.components().map(|c| c.as_os_str().to_owned()).collect();
    let mut cur: Vec<std::ffi::OsString> = vec![];
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        if c == "." || c == "/" {
            continue;
        }
        if c == ".." {
            cur.pop();
            continue;
        }
        let dir: PathBuf = if cur.is_empty() {
            PathBuf::from(".")
        } else {
            cur.iter().collect()
        };
        let target = openat2(
            root.as_raw_fd(),
            &dir,
            (libc::O_PATH | libc::O_CLOEXEC) as u64,
            0,
            RESOLVE_IN_ROOT | sys::RESOLVE_NO_SYMLINKS,
        )
        .ok()
        .and_then(|d| nix::fcntl::readlinkat(Some(d.as_raw_fd()), c.as_os_str()).ok());
        match target {
            Some(t) => {
                links += 1;
                if links > 40 {
                    bail!("too many levels of symbolic links in {}", rel.display());
                }
                let t = PathBuf::from(t);
                if t.is_absolute() {
                    cur.clear();
                }
                for (i, tc) in t.components().enumerate() {
                    todo.insert(i, tc.as_os_str().to_owned());
                }
            }
            None => cur.push(c),
        }
    }
    Ok(cur)
}

pub struct Ctx<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub no_pivot: bool,
    /// The container has a mount namespace of its own (not ours).
    pub own_mntns: bool,
    /// In a new user namespace: mknod is not allowed, devices are bind-mounted.
    pub in_userns: bool,
    pub cgroupns: bool,
    /// The container's cgroup (None: rootless without delegation, it stays in ours).
    pub cgroup: Option<&'a crate::cgroups::Cgroup>,
    /// Per `mounts` entry: the user namespace of an id-mapped bind.
    pub idmap_userns: &'a [Option<OwnedFd>],
}

/// Everything before pivot_root: propagation, the rootfs bind, config mounts, /dev.
/// Returns a propagation (shared, unbindable) that must wait until `finish` has made its
/// own mounts.
pub fn setup(
    ctx: &Ctx,
    before_cgroupfs: &mut dyn FnMut() -> Result<()>,
) -> Result<Option<c_ulong>> {
    let linux = ctx.spec.linux().as_ref();
    let prop = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        Some(p) if !p.is_empty() => propagation_flag(p)
            .ok_or_else(|| anyhow!("linux.rootfsPropagation {p:?} is not a propagation type"))?,
        _ => libc::MS_SLAVE | libc::MS_REC,
    };
    // Shared and unbindable roots would break the bind and pivot_root below: start private
    // and apply them to the new / at the end.
    let late = prop & (libc::MS_SHARED | libc::MS_UNBINDABLE) != 0;
    let rootfs = ctx
        .rootfs
        .to_str()
        .ok_or_else(|| anyhow!("rootfs path is not UTF-8"))?;
    if ctx.own_mntns {
        // Our copy of the host's mounts must not propagate back.
        let first = if late {
            libc::MS_PRIVATE | libc::MS_REC
        } else {
            prop | libc::MS_REC
        };
        mount(None, "/", None, first, None)
            .context("make / private or slave in the container's mount namespace")?;
    }
    if ctx.own_mntns {
        mount(
            Some(rootfs),
            rootfs,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .with_context(|| format!("bind the rootfs {rootfs} onto itself"))?;
    }
    let root = openat2(
        libc::AT_FDCWD,
        ctx.rootfs,
        (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        0,
        0,
    )
    .with_context(|| format!("open rootfs {rootfs}"))?;

    let mounts = ctx.spec.mounts().clone().unwrap_or_default();
    let mut dev_is_bind = false;
    for (i, m) in mounts.iter().enumerate() {
        if matches!(m.typ().as_deref(), Some("cgroup") | Some("cgroup2")) {
            before_cgroupfs()?;
        }
        mount_entry(
            ctx,
            &root,
            m,
            ctx.idmap_userns.get(i).and_then(|u| u.as_ref()),
        )
        .with_context(|| format!("mounts[{i}] ({})", m.destination().display()))?;
        if norm(m.destination()) == Path::new("/dev") && is_bind(m) {
            dev_is_bind = true;
        }
    }
    if !dev_is_bind {
        default_devices(ctx, &root).context("create the default devices in /dev")?;
        for d in linux.and_then(|l| l.devices().clone()).unwrap_or_default() {
            device(ctx, &root, &d)
                .with_context(|| format!("linux.devices {}", d.path().display()))?;
        }
    }
    // process.cwd is created if missing, as runc does.
    if let Some(p) = ctx.spec.process() {
        open_in_root(&root, p.cwd(), Create::Dir)
            .with_context(|| format!("process.cwd {}", p.cwd().display()))?;
    }
    drop(root);
    Ok(if late { Some(prop) } else { None })
}

/// pivot_root (or MS_MOVE + chroot) into the prepared rootfs; without a mount namespace of
/// our own, a plain chroot (pivot_root would pivot the host's).
pub fn enter(ctx: &Ctx) -> Result<()> {
    if !ctx.own_mntns {
        nix::unistd::chroot(ctx.rootfs)
            .with_context(|| format!("chroot into {}", ctx.rootfs.display()))?;
        nix::unistd::chdir("/").context("chdir to / in the container")?;
        return Ok(());
    }
    enter_root(ctx.rootfs, ctx.no_pivot)
}

/// After pivot_root: masked paths, read-only paths, read-only root, then the late
/// propagation of / (an unbindable / would refuse the binds above).
pub fn finish(spec: &Spec, late_propagation: Option<c_ulong>) -> Result<()> {
    let root = openat2(
        libc::AT_FDCWD,
        Path::new("/"),
        (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        0,
        0,
    )?;
    let linux = spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
    {
        mask(&root, Path::new(&p)).with_context(|| format!("linux.maskedPaths {p}"))?;
    }
    for p in linux
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default()
    {
        readonly(&root, Path::new(&p)).with_context(|| format!("linux.readonlyPaths {p}"))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let locked = locked_flags(&root);
        mount(
            None,
            "/",
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | locked,
            None,
        )
        .context("remount the root read-only")?;
    }
    if let Some(p) = late_propagation {
        mount(None, "/", None, p, None).context("apply linux.rootfsPropagation to /")?;
    }
    Ok(())
}

fn norm(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// Flags a bind remount must keep (they are locked in a user namespace): nosuid, nodev, noexec, atime.
fn locked_flags(fd: &OwnedFd) -> c_ulong {
    match nix::sys::statvfs::fstatvfs(fd) {
        Ok(s) => {
            use nix::sys::statvfs::FsFlags as F;
            let f = s.flags();
            let mut out = 0;
            for (ff, ms) in [
                (F::ST_NOSUID, libc::MS_NOSUID),
                (F::ST_NODEV, libc::MS_NODEV),
                (F::ST_NOEXEC, libc::MS_NOEXEC),
                (F::ST_NOATIME, libc::MS_NOATIME),
                (F::ST_NODIRATIME, libc::MS_NODIRATIME),
                (F::ST_RELATIME, libc::MS_RELATIME),
            ] {
                if f.contains(ff) {
                    out |= ms;
                }
            }
            out
        }
        Err(_) => 0,
    }
}

fn mount_entry(ctx: &Ctx, root: &OwnedFd, m: &Mount, idmap: Option<&OwnedFd>) -> Result<()> {
    let dest = norm(m.destination());
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let fstype = m.typ().clone().unwrap_or_default();
    let bind = is_bind(m);
    let data = opts.data.join(",");
    let data = if data.is_empty() {
        None
    } else {
        Some(data.as_str())
    };
    let target;
    if bind {
        let src = m
            .source()
            .as_ref()
            .ok_or_else(|| anyhow!("bind mount without a source"))?;
        let src = if src.is_absolute() {
            src.clone()
        } else {
            ctx.bundle.join(src)
        };
        let meta =
            std::fs::metadata(&src).with_context(|| format!("bind source {}", src.display()))?;
        target = open_in_root(
            root,
            &dest,
            if meta.is_dir() {
                Create::Dir
            } else {
                Create::File
            },
        )?;
        let s = src
            .to_str()
            .ok_or_else(|| anyhow!("bind source is not UTF-8"))?;
        match idmap {
            Some(userns) => super::idmapped::bind(
                &src,
                &target,
                opts.flags & libc::MS_REC != 0 || opts.recursive_idmap,
                userns,
            )
            .with_context(|| format!("id-mapped bind {} at {}", s, dest.display()))?,
            None => mount(
                Some(s),
                &sys::fd_path(&target),
                None,
                libc::MS_BIND | (opts.flags & libc::MS_REC),
                None,
            )
            .with_context(|| format!("bind {} at {}", s, dest.display()))?,
        }
        let extra = opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
        if extra != 0 {
            let top = open_in_root(root, &dest, Create::No)?;
            let flags = libc::MS_BIND | libc::MS_REMOUNT | extra | locked_flags(&top);
            mount(None, &sys::fd_path(&top), None, flags, None).with_context(|| {
                format!("remount bind {} with {:?}", dest.display(), m.options())
            })?;
        }
    } else {
        target = open_in_root(root, &dest, Create::Dir)?;
        let t = sys::fd_path(&target);
        let src = m
            .source()
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| fstype.clone());
        match fstype.as_str() {
            "cgroup" | "cgroup2" => mount_cgroups(ctx, root, &dest, &opts)?,
            "sysfs" => {
                if let Err(e) = mount(Some(&src), &t, Some("sysfs"), opts.flags, data) {
                    // Without a network namespace of our own (rootless, host network) sysfs
                    // cannot be mounted: bind the host's /sys instead, as runc does.
                    if e.raw_os_error() != Some(libc::EPERM) {
                        return Err(e)
                            .with_context(|| format!("mount sysfs at {}", dest.display()));
                    }
                    crate::debug!(
                        "mount sysfs at {}: {e}; binding /sys instead",
                        dest.display()
                    );
                    mount(Some("/sys"), &t, None, libc::MS_BIND | libc::MS_REC, None)
                        .context("bind /sys")?;
                    let top = open_in_root(root, &dest, Create::No)?;
                    let fl = libc::MS_BIND
                        | libc::MS_REMOUNT
                        | (opts.flags & !libc::MS_REMOUNT)
                        | locked_flags(&top);
                    mount(None, &sys::fd_path(&top), None, fl, None).with_context(|| {
                        format!(
                            "remount the bound /sys at {} with {:?}",
                            dest.display(),
                            m.options()
                        )
                    })?;
                }
            }
            "mqueue" => {
                if let Err(e) = mount(Some(&src), &t, Some("mqueue"), opts.flags, data) {
                    if e.raw_os_error() != Some(libc::EPERM) {
                        return Err(e)
                            .with_context(|| format!("mount mqueue at {}", dest.display()));
                    }
                    crate::debug!(
                        "mount mqueue at {}: {e}; binding /dev/mqueue instead",
                        dest.display()
                    );
                    mount(
                        Some("/dev/mqueue"),
                        &t,
                        None,
                        libc::MS_BIND | libc::MS_REC,
                        None,
                    )
                    .context("bind /dev/mqueue")?;
                }
            }
            _ => {
                if fstype.is_empty() {
                    bail!("mount without a type (and not a bind mount)");
                }
                mount(Some(&src), &t, Some(&fstype), opts.flags, data)
                    .with_context(|| format!("mount {} at {}", fstype, dest.display()))?;
            }
        }
    }
    if opts.rec_set != 0 || opts.rec_clr != 0 {
        let top = open_in_root(root, &dest, Create::No)?;
        // mount_setattr needs a mount fd of the mounted tree: reopen through the new mount.
        sys::mount_setattr(top.as_raw_fd(), true, opts.rec_set, opts.rec_clr, None)
            .with_context(|| format!("set recursive mount attributes on {}", dest.display()))?;
    }
    for p in &opts.propagation {
        let top = open_in_root(root, &dest, Create::No)?;
        mount(None, &sys::fd_path(&top), None, *p, None)
            .with_context(|| format!("set propagation of {}", dest.display()))?;
    }
    drop(target);
    Ok(())
}

/// A `cgroup` mount: a tmpfs with one directory per v1 hierarchy (cgroup namespace: the
/// hierarchy mounted afresh, rooted at the container's cgroup; else the container's own
/// directory bound from the host), or a plain cgroup2 mount on a unified host.
fn mount_cgroups(ctx: &Ctx, root: &OwnedFd, dest: &Path, opts: &MountOptions) -> Result<()> {
    // The hierarchies the parent already found for the container's cgroup; parsed afresh
    // only when it has none.
    let hs: Vec<crate::cgroups::Hierarchy> = match ctx.cgroup {
        Some(c) => c.dirs.iter().map(|(h, _)| h.clone()).collect(),
        None => crate::cgroups::hierarchies(),
    };
    let flags = opts.flags & !(libc::MS_RDONLY | libc::MS_REMOUNT);
    let v2_only = hs.len() == 1 && hs[0].v2;
    let host_dir = |h: &crate::cgroups::Hierarchy| -> PathBuf {
        if let Some((_, p)) = ctx
            .cgroup
            .and_then(|c| c.dirs.iter().find(|(x, _)| x.mountpoint == h.mountpoint))
        {
            return p.clone();
        }
        let own = crate::cgroups::own_path(h).unwrap_or_else(|| "/".into());
        let rel = own
            .strip_prefix(h.root.as_str())
            .unwrap_or(&own)
            .trim_start_matches('/')
            .to_string();
        h.mountpoint.join(rel)
    };
    if v2_only {
        let t = open_in_root(root, dest, Create::Dir)?;
        if ctx.cgroupns {
            mount(
                Some("cgroup2"),
                &sys::fd_path(&t),
                Some("cgroup2"),
                opts.flags,
                None,
            )
            .context("mount cgroup2")?;
        } else {
            let src = host_dir(&hs[0]);
            mount(
                Some(&src.to_string_lossy()),
                &sys::fd_path(&t),
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )
            .context("bind the container's cgroup2 directory")?;
            if opts.flags & libc::MS_RDONLY != 0 {
                let top = open_in_root(root, dest, Create::No)?;
                mount(
                    None,
                    &sys::fd_path(&top),
                    None,
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | flags | locked_flags(&top),
                    None,
                )
                .context("remount the container's cgroup2 directory read-only")?;
            }
        }
        return Ok(());
    }
    let t = open_in_root(root, dest, Create::Dir)?;
    mount(
        Some("tmpfs"),
        &sys::fd_path(&t),
        Some("tmpfs"),
        flags,
        Some("mode=755"),
    )
    .context("mount tmpfs for the cgroup hierarchies")?;
    for h in &hs {
        let name = h
            .mountpoint
            .file_name()
            .map(|n| n.to_owned())
            .unwrap_or_default();
        let sub = dest.join(&name);
        let t = open_in_root(root, &sub, Create::Dir)?;
        if ctx.cgroupns {
            let (ty, data) = if h.v2 {
                ("cgroup2", None)
            } else {
                ("cgroup", Some(h.controllers.as_str()))
            };
            mount(Some("cgroup"), &sys::fd_path(&t), Some(ty), flags, data)
                .with_context(|| format!("mount cgroup {} at {}", h.controllers, sub.display()))?;
        } else {
            let src = host_dir(h);
            mount(
                Some(&src.to_string_lossy()),
                &sys::fd_path(&t),
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )
            .with_context(|| format!("bind cgroup {} at {}", src.display(), sub.display()))?;
        }
        if opts.flags & libc::MS_RDONLY != 0 {
            let top = open_in_root(root, &sub, Create::No)?;
            mount(
                None,
                &sys::fd_path(&top),
                None,
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | flags | locked_flags(&top),
                None,
            )
            .with_context(|| format!("remount {} read-only", sub.display()))?;
        }
        // cpu,cpuacct style hierarchies: a symlink per controller, as on the host.
        if !h.v2 && h.controllers.contains(',') {
            for c in h.controllers.split(',').filter(|c| !c.starts_with("name=")) {
                let link = dest.join(c);
                let parent = open_in_root(root, dest, Create::No)?;
                let _ = nix::unistd::symlinkat(
                    name.as_os_str(),
                    Some(parent.as_raw_fd()),
                    link.file_name().unwrap_or_default(),
                );
            }
        }
    }
    if opts.flags & libc::MS_RDONLY != 0 {
        let top = open_in_root(root, dest, Create::No)?;
        mount(
            None,
            &sys::fd_path(&top),
            None,
            libc::MS_REMOUNT | libc::MS_RDONLY | flags,
            Some("mode=755"),
        )
        .context("remount the cgroup tmpfs read-only")?;
    }
    Ok(())
}

const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

fn default_devices(ctx: &Ctx, root: &OwnedFd) -> Result<()> {
    for (name, major, minor) in DEFAULT_DEVICES {
        let path = PathBuf::from("/dev").join(name);
        make_device(
            ctx,
            root,
            &path,
            libc::S_IFCHR,
            major,
            minor,
            0o666,
            Some(0),
            Some(0),
        )
        .with_context(|| format!("create {}", path.display()))?;
    }
    let dev = open_in_root(root, Path::new("/dev"), Create::Dir)?;
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        match nix::unistd::symlinkat(target, Some(dev.as_raw_fd()), link) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("symlink /dev/{link} -> {target}")),
        }
    }
    Ok(())
}

fn device(ctx: &Ctx, root: &OwnedFd, d: &LinuxDevice) -> Result<()> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => bail!("type 'a' is only valid in linux.resources.devices"),
    };
    let path = norm(d.path());
    if !path.starts_with("/dev") {
        bail!("device path must be under /dev");
    }
    let mode = d.file_mode().unwrap_or(0o666);
    make_device(
        ctx,
        root,
        &path,
        kind,
        d.major() as u32,
        d.minor() as u32,
        mode,
        d.uid(),
        d.gid(),
    )
}

#[allow(clippy::too_many_arguments)]
fn make_device(
    ctx: &Ctx,
    root: &OwnedFd,
    path: &Path,
    kind: libc::mode_t,
    major: u32,
    minor: u32,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<()> {
    let parent_path = path.parent().unwrap_or(Path::new("/dev"));
    let parent = open_in_root(root, parent_path, Create::Dir)?;
    let name = sys::cstr(path.file_name().unwrap_or_default())?;
    // Replace whatever the image left at that name.
    // SAFETY: valid dirfd and name.
    unsafe { libc::unlinkat(parent.as_raw_fd(), name.as_ptr(), 0) };
    if ctx.in_userns {
        let host = path.to_str().unwrap_or_default();
        let t = open_in_root(root, path, Create::File)?;
        mount(Some(host), &sys::fd_path(&t), None, libc::MS_BIND, None)
            .with_context(|| format!("bind host {host}"))?;
        return Ok(());
    }
    let dev = libc::makedev(major, minor);
    // SAFETY: valid dirfd and name.
    let r = unsafe {
        libc::mknodat(
            parent.as_raw_fd(),
            name.as_ptr(),
            kind | (mode & 0o7777),
            dev,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).context("mknod");
    }
    // SAFETY: valid dirfd and name; AT_SYMLINK_NOFOLLOW keeps us on the node we made.
    unsafe {
        libc::fchmodat(parent.as_raw_fd(), name.as_ptr(), mode & 0o7777, 0);
        libc::fchownat(
            parent.as_raw_fd(),
            name.as_ptr(),
            uid.unwrap_or(0),
            gid.unwrap_or(0),
            libc::AT_SYMLINK_NOFOLLOW,
        );
    }
    Ok(())
}

fn enter_root(rootfs: &Path, no_pivot: bool) -> Result<()> {
    nix::unistd::chdir(rootfs).with_context(|| format!("chdir to rootfs {}", rootfs.display()))?;
    if no_pivot {
        mount(Some("."), "/", None, libc::MS_MOVE, None)
            .context("move the rootfs to / (--no-pivot)")?;
        nix::unistd::chroot(".").context("chroot into the rootfs (--no-pivot)")?;
    } else {
        // pivot_root(".", "."): the old root ends up stacked under the new one; detach it.
        nix::unistd::pivot_root(".", ".").context("pivot_root into the rootfs")?;
        mount(None, ".", None, libc::MS_SLAVE | libc::MS_REC, None)
            .context("make the old root a slave before detaching it")?;
        nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)
            .context("detach the old root")?;
    }
    nix::unistd::chdir("/").context("chdir to / in the container")?;
    Ok(())
}

fn mask(root: &OwnedFd, p: &Path) -> Result<()> {
    let fd = match open_in_root(root, p, Create::No) {
        Ok(fd) => fd,
        Err(e)
            if e.root_cause()
                .downcast_ref::<std::io::Error>()
                .and_then(|e| e.raw_os_error())
                == Some(libc::ENOENT) =>
        {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        mount(
            Some("tmpfs"),
            &sys::fd_path(&fd),
            Some("tmpfs"),
            libc::MS_RDONLY,
            Some("size=0k,mode=555"),
        )
        .context("mount an empty read-only tmpfs")?;
    } else {
        mount(
            Some("/dev/null"),
            &sys::fd_path(&fd),
            None,
            libc::MS_BIND,
            None,
        )
        .context("bind /dev/null")?;
    }
    Ok(())
}

fn readonly(root: &OwnedFd, p: &Path) -> Result<()> {
    let fd = match open_in_root(root, p, Create::No) {
        Ok(fd) => fd,
        Err(e)
            if e.root_cause()
                .downcast_ref::<std::io::Error>()
                .and_then(|e| e.raw_os_error())
                == Some(libc::ENOENT) =>
        {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    let fp = sys::fd_path(&fd);
    mount(Some(&fp), &fp, None, libc::MS_BIND | libc::MS_REC, None).context("bind onto itself")?;
    let top = open_in_root(root, p, Create::No)?;
    let flags =
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC | locked_flags(&top);
    mount(None, &sys::fd_path(&top), None, flags, None).context("remount read-only")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }
    #[test]
    fn options_split() {
        let o = parse_options(&v(&["nosuid", "strictatime", "mode=755", "size=65536k"]));
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(o.data, v(&["mode=755", "size=65536k"]));
        let o = parse_options(&v(&["rbind", "ro", "rw", "rprivate", "rro", "rnosuid"]));
        assert_eq!(o.flags, libc::MS_BIND | libc::MS_REC);
        assert_eq!(o.propagation, vec![libc::MS_PRIVATE | libc::MS_REC]);
        assert_eq!(o.rec_set, sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID);
        let o = parse_options(&v(&["newinstance", "ptmxmode=0666", "gid=5", "relatime"]));
        assert_eq!(o.flags, libc::MS_RELATIME);
        assert_eq!(o.data.len(), 3);
    }
    #[test]
    fn norm_paths() {
        assert_eq!(norm(Path::new("/a/../../b/./c")), PathBuf::from("/b/c"));
        assert_eq!(norm(Path::new("dev")), PathBuf::from("/dev"));
    }
}
