//! Helpers for the integration tests: busybox bundles, a private state root per test, and
//! running the real husk binary. Tests need root; without it they fail saying so.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const HUSK: &str = env!("CARGO_BIN_EXE_husk");

/// The husk binary at a path every user can reach (the build tree may not be traversable
/// for the unprivileged test user): one copy per build, shared by the test binaries.
pub fn husk_for_users() -> &'static str {
    static P: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let md = std::fs::metadata(HUSK).unwrap();
        let dir = std::env::temp_dir().join("husk-it-bin");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let p = dir.join(format!(
            "husk-{}-{}-{}",
            md.ino(),
            md.mtime(),
            md.mtime_nsec()
        ));
        if !p.exists() {
            // older builds' copies go; a copy in use stays valid until its last user exits
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let _ = std::fs::remove_file(e.path());
            }
            let tmp = dir.join(format!(".husk-{}", std::process::id()));
            std::fs::copy(HUSK, &tmp).unwrap();
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::rename(&tmp, &p).unwrap();
        }
        p.to_str().unwrap().to_string()
    })
}

pub fn require_root() {
    assert!(
        nix_is_root(),
        "integration tests must run as root (hack/test does this)"
    );
}

fn nix_is_root() -> bool {
    // SAFETY: plain syscall.
    unsafe { libc::geteuid() == 0 }
}

pub fn busybox() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox not found: install the Debian package busybox-static (hack/deps does)");
}

/// A bundle in its own temp dir: busybox rootfs + `husk spec` config, terminal off.
pub struct Bundle {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub config: Value,
}

pub fn make_rootfs(rootfs: &Path) {
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root", "out"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(busybox(), rootfs.join("bin/busybox")).unwrap();
    let list = Command::new(busybox())
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    )
    .unwrap();
}

impl Bundle {
    pub fn new(args: &[&str]) -> Bundle {
        require_root();
        let tmp = tempfile::Builder::new()
            .prefix("husk-it-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().join("bundle");
        std::fs::create_dir_all(&dir).unwrap();
        make_rootfs(&dir.join("rootfs"));
        let out = Command::new(HUSK)
            .args(["spec", "--bundle"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "husk spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        config["process"]["terminal"] = Value::Bool(false);
        config["process"]["args"] = args.iter().map(|a| Value::String(a.to_string())).collect();
        let b = Bundle { tmp, dir, config };
        b.save();
        b
    }

    pub fn save(&self) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) {
        f(&mut self.config);
        self.save();
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// A host directory bind-mounted read-write at /out in the container.
    pub fn with_out_dir(&mut self) -> PathBuf {
        let out = self.tmp.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let m = serde_json::json!({"destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]});
        self.edit(|c| c["mounts"].as_array_mut().unwrap().push(m));
        out
    }

    pub fn state_root(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    pub fn husk(&self) -> Command {
        let mut c = Command::new(HUSK);
        c.arg("--root").arg(self.state_root());
        c.stdin(Stdio::null());
        c
    }

    /// `husk run` in the foreground; returns its output.
    pub fn run(&self, id: &str) -> Output {
        self.husk()
            .args(["run", "--bundle"])
            .arg(&self.dir)
            .arg(id)
            .output()
            .unwrap()
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        self.husk().args(args).output().unwrap()
    }

    pub fn create(&self, id: &str) -> Output {
        self.create_with(id, &[])
    }

    /// `husk create` with extra flags. The container keeps create's stdio, so output goes
    /// to files (a pipe would stay open as long as the container lives).
    pub fn create_with(&self, id: &str, flags: &[&str]) -> Output {
        let safe = id.replace(['/', '.', ' '], "_");
        let out = self.tmp.path().join(format!("{safe}.create.out"));
        let err = self.tmp.path().join(format!("{safe}.create.err"));
        let mut c = self.husk();
        c.arg("create")
            .args(flags)
            .arg("--bundle")
            .arg(&self.dir)
            .arg(id);
        output_via_files(c, &out, &err)
    }

    /// `run --detach`, with stdio in files for the same reason.
    pub fn run_detached(&self, id: &str) -> Output {
        let err = self.tmp.path().join(format!("{id}.run.err"));
        let status = self
            .husk()
            .args(["run", "--detach", "--bundle"])
            .arg(&self.dir)
            .arg(id)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        Output {
            status,
            stdout: vec![],
            stderr: std::fs::read(&err).unwrap_or_default(),
        }
    }

    pub fn state(&self, id: &str) -> Value {
        let o = self.cmd(&["state", id]);
        assert!(
            o.status.success(),
            "state {id}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }

    pub fn wait_status(&self, id: &str, want: &str) -> Value {
        for _ in 0..500 {
            let o = self.cmd(&["state", id]);
            if o.status.success() {
                let s: Value = serde_json::from_slice(&o.stdout).unwrap();
                if s["status"] == want {
                    return s;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!(
            "container {id} never reached status {want}: {}",
            self.state(id)
        );
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        // Leave nothing behind even when a test fails half way.
        if let Ok(rd) = std::fs::read_dir(self.state_root()) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.cmd(&["delete", "--force", &id]);
            }
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert success and return stdout.
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// A line of /proc/self/status as printed inside the container, e.g. field(out, "CapEff").
pub fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// Processes on the host whose command line mentions `needle`.
pub fn host_procs_mentioning(needle: &str) -> Vec<i32> {
    let mut v = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
            if let Ok(c) = std::fs::read(format!("/proc/{pid}/cmdline")) {
                if String::from_utf8_lossy(&c).contains(needle) {
                    if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                        if s.rsplit(')')
                            .next()
                            .map(|r| r.trim_start().starts_with('Z'))
                            .unwrap_or(false)
                        {
                            continue;
                        }
                    }
                    v.push(pid);
                }
            }
        }
    }
    v
}

pub fn host_mounts_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

/// Receive one message with one fd from a connected unix stream.
pub fn recv_fd(conn: &std::os::unix::net::UnixStream) -> (std::os::fd::OwnedFd, Vec<u8>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        std::os::fd::AsRawFd::as_raw_fd(conn),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::empty(),
    )
    .expect("recvmsg from husk");
    let mut fd = None;
    for c in msg.cmsgs().unwrap() {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            fd = fds.first().copied();
        }
    }
    let n = msg.bytes;
    // SAFETY: the fd arrived with SCM_RIGHTS and is ours now.
    let fd: std::os::fd::OwnedFd =
        unsafe { std::os::fd::FromRawFd::from_raw_fd(fd.expect("no fd with the message")) };
    (fd, buf[..n].to_vec())
}

/// Accept one connection on `l` and receive the fd it sends (a console socket).
pub fn accept_fd(l: &std::os::unix::net::UnixListener) -> std::os::fd::OwnedFd {
    let (conn, _) = l.accept().unwrap();
    recv_fd(&conn).0
}

/// Run `c` with stdout and stderr in files: a container that keeps create's stdio would hold
/// a pipe open for as long as it lives.
pub fn output_via_files(mut c: Command, out: &Path, err: &Path) -> Output {
    let status = c
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(std::fs::File::create(err).unwrap())
        .status()
        .unwrap();
    Output {
        status,
        stdout: std::fs::read(out).unwrap_or_default(),
        stderr: std::fs::read(err).unwrap_or_default(),
    }
}
