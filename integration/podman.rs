//! podman 4.3 (through conmon) driving husk, rootful, with contrib/containers.conf.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    conf: PathBuf,
}

/// One podman storage for this test binary, with a busybox image imported once.
fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        require_root();
        assert!(
            Command::new("podman").arg("--version").output().is_ok(),
            "podman is not installed (hack/deps installs it)"
        );
        let tmp = tempfile::Builder::new()
            .prefix("husk-podman-")
            .tempdir()
            .unwrap();
        let root = tmp.path().to_path_buf();
        let rootfs = root.join("rootfs");
        make_rootfs(&rootfs);
        // our contrib file, pointed at the binary under test, plus the limits these hosts can grant
        let contrib = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/containers.conf"),
        )
        .unwrap();
        let conf = root.join("containers.conf");
        let text = contrib.replace(
            r#"husk = ["/usr/local/bin/husk", "/usr/bin/husk"]"#,
            &format!("husk = [{:?}]", HUSK),
        )
            + "\n[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n";
        std::fs::write(&conf, text).unwrap();
        let e = Env {
            _tmp: tmp,
            root,
            conf,
        };
        let tarball = e.root.join("rootfs.tar");
        let t = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .status()
            .unwrap();
        assert!(t.success(), "tar the test rootfs");
        let o = podman_cmd(&e)
            .args(["import"])
            .arg(&tarball)
            .arg("localhost/husk-busybox")
            .output()
            .unwrap();
        assert!(o.status.success(), "podman import: {}", stderr(&o));
        e
    })
}

fn podman_cmd(e: &Env) -> Command {
    let mut c = Command::new("podman");
    c.env("CONTAINERS_CONF", &e.conf)
        .arg("--root")
        .arg(e.root.join("storage"))
        .arg("--runroot")
        .arg(e.root.join("run"))
        .args([
            "--runtime",
            "husk",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ]);
    c.stdin(Stdio::null());
    c
}

fn podman(args: &[&str]) -> Output {
    podman_cmd(env()).args(args).output().unwrap()
}

const IMG: &str = "localhost/husk-busybox";

#[test]
fn run_rm_passes_the_exit_code_and_output() {
    let o = podman(&["run", "--rm", IMG, "sh", "-c", "echo hi; exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hi\n");
}

#[test]
fn a_missing_executable_shows_our_message_and_exits_127() {
    let o = podman(&["run", "--rm", IMG, "no-such-cmd"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("exec: \"no-such-cmd\": executable file not found in $PATH"),
        "{e}"
    );
    assert!(!e.contains("no logs from conmon"), "{e}");
}

#[test]
fn detached_logs_stop_rm() {
    let o = podman(&[
        "run",
        "-d",
        "--name",
        "pm-d",
        IMG,
        "sh",
        "-c",
        "trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.1; done",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut logs = String::new();
    for _ in 0..50 {
        logs = stdout(&podman(&["logs", "pm-d"]));
        if logs.contains("up") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(logs.contains("up"), "{logs}");
    let o = podman(&["stop", "-t", "5", "pm-d"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&podman(&["logs", "pm-d"])).contains("bye"));
    let st = stdout(&podman(&["inspect", "-f", "{{.State.ExitCode}}", "pm-d"]));
    assert_eq!(st.trim(), "0");
    assert!(podman(&["rm", "pm-d"]).status.success());
}

#[test]
fn tty_and_window_size() {
    let e = env();
    let cmd = format!(
        "stty rows 31 cols 97; CONTAINERS_CONF={} podman --root {} --runroot {} --runtime husk --cgroup-manager cgroupfs --events-backend file run --rm -it {IMG} sh -c 'tty; stty size'",
        e.conf.display(),
        e.root.join("storage").display(),
        e.root.join("run").display()
    );
    let o = script(&cmd);
    let out = stdout(&o);
    assert!(
        out.contains("/dev/pts/0"),
        "status {:?} stdout {out:?} stderr {:?}",
        o.status,
        stderr(&o)
    );
    assert!(out.contains("31 97"), "{out}");
}

#[test]
fn pause_unpause_and_top() {
    assert!(
        podman(&["run", "-d", "--name", "pm-p", IMG, "sleep", "100"])
            .status
            .success()
    );
    assert!(podman(&["pause", "pm-p"]).status.success());
    assert_eq!(
        stdout(&podman(&["inspect", "-f", "{{.State.Status}}", "pm-p"])).trim(),
        "paused"
    );
    assert!(podman(&["unpause", "pm-p"]).status.success());
    assert_eq!(
        stdout(&podman(&["inspect", "-f", "{{.State.Status}}", "pm-p"])).trim(),
        "running"
    );
    let top = podman(&["top", "pm-p"]);
    assert!(stdout(&top).contains("sleep 100"), "{}", stderr(&top));
    assert!(podman(&["rm", "-f", "-t", "0", "pm-p"]).status.success());
}

#[test]
fn resources_caps_user_read_only() {
    let o = podman(&[
        "run", "--rm", "--memory", "64m", "--pids-limit", "30", "--cpus", "0.5", "--cap-add", "SYS_ADMIN", "--cap-drop", "NET_RAW", "--user", "1000:1000", "--read-only", IMG, "sh", "-c",
        "id -u; grep CapBnd /proc/self/status; cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us; touch /x 2>&1; true",
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "1000");
    let bnd = u64::from_str_radix(l[1].split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert!(bnd & (1 << 21) != 0, "SYS_ADMIN not added: {out}");
    assert!(bnd & (1 << 13) == 0, "NET_RAW not dropped: {out}");
    assert_eq!(l[2], "67108864");
    assert_eq!(l[3], "30");
    assert_eq!(l[4], "50000");
    assert!(out.contains("Read-only file system"), "{out}");
}

#[test]
fn network_none_has_only_loopback() {
    let o = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        IMG,
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(
        stdout(&o).split_whitespace().collect::<Vec<_>>(),
        ["lo"],
        "{}",
        stderr(&o)
    );
}

#[test]
fn exec_and_exec_it() {
    assert!(
        podman(&["run", "-d", "--name", "pm-x", IMG, "sleep", "100"])
            .status
            .success()
    );
    let o = podman(&["exec", "pm-x", "sh", "-c", "echo in; exit 6"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert_eq!(stdout(&o), "in\n");
    let e = env();
    let cmd = format!(
        "stty rows 22 cols 77; CONTAINERS_CONF={} podman --root {} --runroot {} --runtime husk --cgroup-manager cgroupfs --events-backend file exec -it pm-x sh -c 'tty; stty size'",
        e.conf.display(),
        e.root.join("storage").display(),
        e.root.join("run").display()
    );
    let o = script(&cmd);
    let out = stdout(&o);
    assert!(out.contains("/dev/pts/"), "{out} {}", stderr(&o));
    assert!(out.contains("22 77"), "{out}");
    assert!(podman(&["rm", "-f", "-t", "0", "pm-x"]).status.success());
}

/// Run `cmd` under script(1), i.e. with a real terminal. Its stdin stays open (an empty
/// pipe) until it ends: at EOF on stdin script may hang up the terminal early.
fn script(cmd: &str) -> Output {
    let mut child = Command::new("script")
        .args(["-qec", cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (bsdutils)");
    let _stdin = child.stdin.take();
    child.wait_with_output().unwrap()
}
