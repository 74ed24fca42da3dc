//! containerd 1.6 (its runc shim, io.containerd.runc.v2) driving husk through
//! `ctr --runc-binary`, the way a Kubernetes node would use it via `BinaryName`.

mod common;
use common::*;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

struct Containerd {
    child: Child,
    _tmp: tempfile::TempDir,
    sock: std::path::PathBuf,
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // shims outlive containerd: stop the ones of this instance
        for p in host_procs_mentioning(self.sock.to_str().unwrap()) {
            // SAFETY: plain syscall on processes this test started.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }
}

impl Containerd {
    fn start() -> Containerd {
        require_root();
        assert!(
            Command::new("containerd").arg("--version").output().is_ok(),
            "containerd is not installed (hack/deps installs it)"
        );
        let tmp = tempfile::Builder::new()
            .prefix("husk-ctd-")
            .tempdir()
            .unwrap();
        let d = tmp.path();
        let sock = d.join("c.sock");
        std::fs::write(
            d.join("config.toml"),
            format!(
                "version = 2\nroot = {:?}\nstate = {:?}\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = {:?}\n",
                d.join("root"),
                d.join("state"),
                sock
            ),
        )
        .unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if sock.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            sock.exists(),
            "containerd did not start: {}",
            std::fs::read_to_string(d.join("containerd.log")).unwrap_or_default()
        );
        Containerd {
            child,
            _tmp: tmp,
            sock,
        }
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.sock)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// An OCI archive of a busybox image, made by podman from the test rootfs.
fn image_archive(dir: &std::path::Path) -> std::path::PathBuf {
    let rootfs = dir.join("rootfs");
    make_rootfs(&rootfs);
    let storage = dir.join("podman");
    let podman = |args: &[&str]| {
        let o = Command::new("podman")
            .arg("--root")
            .arg(storage.join("root"))
            .arg("--runroot")
            .arg(storage.join("run"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "podman {args:?}: {}", stderr(&o));
    };
    let tar = dir.join("rootfs.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap()
        .success());
    podman(&["import", tar.to_str().unwrap(), "localhost/husk-ctd"]);
    let archive = dir.join("image.tar");
    podman(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        archive.to_str().unwrap(),
        "localhost/husk-ctd",
    ]);
    archive
}

#[test]
fn containerd_runs_execs_kills_pauses_and_measures_through_husk() {
    let c = Containerd::start();
    let work = tempfile::tempdir().unwrap();
    let archive = image_archive(work.path());
    let o = c.ctr(&[
        "image",
        "import",
        "--base-name",
        "localhost/husk-ctd",
        archive.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "import: {}", stderr(&o));
    let img = "localhost/husk-ctd:latest";

    // run --rm: output and exit code pass through
    let o = c.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        HUSK,
        img,
        "t-run",
        "sh",
        "-c",
        "echo from-husk; exit 5",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(stdout(&o), "from-husk\n");

    // a long-running task: exec, pause/resume, metrics, kill
    let o = c.ctr(&[
        "run",
        "-d",
        "--runc-binary",
        HUSK,
        img,
        "t-long",
        "sleep",
        "100",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "t-long",
        "sh",
        "-c",
        "echo exec-ok; exit 2",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(stdout(&o), "exec-ok\n");
    assert!(c.ctr(&["task", "pause", "t-long"]).status.success());
    assert!(stdout(&c.ctr(&["task", "ls"]))
        .lines()
        .any(|l| l.starts_with("t-long") && l.contains("PAUSED")));
    assert!(c.ctr(&["task", "resume", "t-long"]).status.success());
    assert!(stdout(&c.ctr(&["task", "ls"]))
        .lines()
        .any(|l| l.starts_with("t-long") && l.contains("RUNNING")));
    let m = stdout(&c.ctr(&["task", "metrics", "t-long"]));
    assert!(
        m.contains("pids.current") && m.contains("memory.usage_in_bytes"),
        "{m}"
    );
    assert!(c
        .ctr(&["task", "kill", "-s", "SIGKILL", "t-long"])
        .status
        .success());
    let mut stopped = false;
    for _ in 0..100 {
        if stdout(&c.ctr(&["task", "ls"]))
            .lines()
            .any(|l| l.starts_with("t-long") && l.contains("STOPPED"))
        {
            stopped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(stopped, "task not stopped after kill");
    assert!(c.ctr(&["task", "delete", "t-long"]).status.success());
    assert!(c.ctr(&["container", "delete", "t-long"]).status.success());
}
