//! podman 4.3 (through conmon) driving husk, rootful, with contrib/containers.conf.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

struct Env {
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
        // A static is never dropped: one fixed directory, emptied by the next run.
        let root = std::env::temp_dir().join("husk-podman-it");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let rootfs = root.join("rootfs");
        make_rootfs(&rootfs);
        // our contrib file, pointed at the binary under test, plus the limits these hosts can grant
        let conf = root.join("containers.conf");
        let text = conf_for(HUSK);
        std::fs::write(&conf, text).unwrap();
        let e = Env { root, conf };
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
    assert_only_loopback(&podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        IMG,
        "ls",
        "/sys/class/net",
    ]));
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

/// podman as the unprivileged test user: podman runs husk as root of its own user
/// namespace, with the user's subordinate ranges mapped.
struct RootlessPodman {
    tmp: tempfile::TempDir,
    uid: u32,
    gid: u32,
    home: String,
}

fn rootless_podman() -> RootlessPodman {
    require_root();
    let name = std::env::var("HUSK_TEST_USER").unwrap_or_else(|_| "husktest".into());
    let u = nix::unistd::User::from_name(&name)
        .unwrap()
        .unwrap_or_else(|| panic!("test user {name} does not exist (hack/deps creates it)"));
    let tmp = tempfile::Builder::new()
        .prefix("husk-podman-rl-")
        .tempdir()
        .unwrap();
    let r = RootlessPodman {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        home: u.dir.to_string_lossy().into_owned(),
        tmp,
    };
    let d = r.tmp.path();
    make_rootfs(&d.join("rootfs"));
    assert!(Command::new("tar")
        .arg("-C")
        .arg(d.join("rootfs"))
        .arg("-cf")
        .arg(d.join("rootfs.tar"))
        .arg(".")
        .status()
        .unwrap()
        .success());
    let text = conf_for(husk_for_users());
    std::fs::write(d.join("containers.conf"), text).unwrap();
    std::fs::create_dir_all(d.join("xdg")).unwrap();
    assert!(Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", r.uid, r.gid))
        .arg(d)
        .status()
        .unwrap()
        .success());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(d.join("xdg"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let o = r.podman(&[
        "import",
        d.join("rootfs.tar").to_str().unwrap(),
        "localhost/husk-busybox",
    ]);
    assert!(o.status.success(), "rootless podman import: {}", stderr(&o));
    r
}

impl RootlessPodman {
    fn podman(&self, args: &[&str]) -> Output {
        let d = self.tmp.path();
        Command::new("setpriv")
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg("podman")
            .arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("xdg/run"))
            .args([
                "--runtime",
                "husk",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .args(args)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", &self.home)
            .env("XDG_RUNTIME_DIR", d.join("xdg"))
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .current_dir(d)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

#[test]
fn rootless_podman_run_keep_id_and_default_network() {
    let r = rootless_podman();
    // the user's whole subordinate range is mapped, exit code passes through
    let o = r.podman(&[
        "run",
        "--rm",
        IMG,
        "sh",
        "-c",
        "cat /proc/self/uid_map; id -u; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0", &r.uid.to_string(), "1"], "{out}");
    assert_eq!(lines[1][0], "1", "{out}");
    assert!(lines[1][2].parse::<u32>().unwrap() >= 65536, "{out}");
    assert_eq!(lines[2], ["0"]);
    // --userns=keep-id: the user is itself inside
    let o = r.podman(&["run", "--rm", "--userns=keep-id", IMG, "id", "-u"]);
    assert_eq!(stdout(&o).trim(), r.uid.to_string(), "{}", stderr(&o));
    // --uidmap: an explicit mapping
    let o = r.podman(&[
        "run",
        "--rm",
        "--uidmap",
        "0:1:500",
        "--gidmap",
        "0:1:500",
        IMG,
        "cat",
        "/proc/self/uid_map",
    ]);
    let m_text = stdout(&o);
    let m: Vec<&str> = m_text.split_whitespace().collect();
    assert_eq!(m, ["0", "1", "500"], "{}", stderr(&o));
    // the default rootless network (slirp4netns) and --network none
    let o = r.podman(&["run", "--rm", IMG, "ls", "/sys/class/net"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).split_whitespace().any(|n| n == "tap0"),
        "{}",
        stdout(&o)
    );
    assert_only_loopback(&r.podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        IMG,
        "ls",
        "/sys/class/net",
    ]));
    // a missing program: our message, exit 127, rootless too
    let o = r.podman(&["run", "--rm", IMG, "nope-cmd"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("executable file not found"),
        "{}",
        stderr(&o)
    );
}

/// contrib/containers.conf pointed at `husk`, plus the limits these hosts can grant.
fn conf_for(husk: &str) -> String {
    let contrib = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/containers.conf"),
    )
    .unwrap();
    contrib.replace(
        r#"husk = ["/usr/local/bin/husk", "/usr/bin/husk"]"#,
        &format!("husk = [{husk:?}]"),
    ) + "\n[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n"
}

fn assert_only_loopback(o: &Output) {
    assert_eq!(
        stdout(o).split_whitespace().collect::<Vec<_>>(),
        ["lo"],
        "{}",
        stderr(o)
    );
}
