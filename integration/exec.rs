//! `husk exec`: what a process started in a running container sees of itself and of the
//! container, its exit status, the flags, and the defence against the container reaching
//! the husk binary through /proc/<pid>/exe.

mod common;
use common::*;
use serde_json::json;
use std::process::{Command, Output, Stdio};

/// A running container whose first process sleeps.
fn running(id: &str) -> Bundle {
    let b = Bundle::new(&["sleep", "1000"]);
    start(&b, id);
    b
}

fn start(b: &Bundle, id: &str) {
    ok(&b.run_detached(id));
    b.wait_status(id, "running");
}

fn exec(b: &Bundle, args: &[&str]) -> Output {
    b.husk().arg("exec").args(args).output().unwrap()
}

fn host_pid(b: &Bundle, id: &str) -> i32 {
    b.state(id)["pid"].as_i64().unwrap() as i32
}

#[test]
fn exec_joins_every_namespace_of_the_container() {
    let mut b = Bundle::new(&["sleep", "1000"]);
    std::fs::write(b.rootfs().join("marker"), "inside\n").unwrap();
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}))
    });
    start(&b, "ns");
    let init = host_pid(&b, "ns");
    let names = ["pid", "mnt", "net", "uts", "ipc", "cgroup", "time"];
    let script = names
        .iter()
        .map(|n| format!("readlink /proc/self/ns/{n}; readlink /proc/1/ns/{n};"))
        .collect::<String>()
        + "cat /marker; pwd; echo $$; cat /proc/1/cmdline";
    let out = ok(&exec(&b, &["ns", "sh", "-c", &script]));
    let l: Vec<&str> = out.lines().collect();
    for (i, n) in names.iter().enumerate() {
        let host_view = std::fs::read_link(format!("/proc/{init}/ns/{n}")).unwrap();
        let mine = std::fs::read_link(format!("/proc/self/ns/{n}")).unwrap();
        assert_ne!(
            host_view, mine,
            "the container must have its own {n} namespace"
        );
        assert_eq!(l[2 * i], l[2 * i + 1], "{n}: exec vs the container's pid 1");
        assert_eq!(
            l[2 * i],
            host_view.to_str().unwrap(),
            "{n}: exec vs init from the host"
        );
    }
    let rest = &l[2 * names.len()..];
    assert_eq!(rest[0], "inside", "exec sees the container's root");
    assert_eq!(rest[1], "/");
    assert_ne!(rest[2], "1", "exec is not the container's init");
    assert!(
        rest[3].starts_with("sleep"),
        "pid 1 is the container's: {}",
        rest[3]
    );
}

#[test]
fn exit_status_passes_through() {
    let b = running("st");
    assert_eq!(
        exec(&b, &["st", "sh", "-c", "exit 42"]).status.code(),
        Some(42)
    );
    assert_eq!(exec(&b, &["st", "true"]).status.code(), Some(0));
    // killed by a signal: 128 + signal, as runc reports it
    assert_eq!(
        exec(&b, &["st", "sh", "-c", "kill -9 $$"]).status.code(),
        Some(137)
    );
    // the container is untouched
    assert_eq!(b.state("st")["status"], "running");
}

#[test]
fn a_signal_to_husk_exec_reaches_the_process() {
    let b = running("sig");
    let child = b
        .husk()
        .args([
            "exec",
            "sig",
            "sh",
            "-c",
            "trap 'exit 7' TERM; while :; do sleep 0.05; done",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
}

#[test]
fn env_cwd_user_and_groups() {
    let b = running("who");
    let out = ok(&exec(
        &b,
        &[
            "--env",
            "FOO=bar baz",
            "-e",
            "PATH=/bin",
            "--cwd",
            "/tmp",
            "--user",
            "1000:1001",
            "--additional-gids",
            "7",
            "who",
            "sh",
            "-c",
            "echo $FOO; echo $PATH; pwd; id -u; id -g; id -G; env | grep -c ^PATH=",
        ],
    ));
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "bar baz");
    assert_eq!(l[1], "/bin", "--env replaces the config's PATH");
    assert_eq!(l[2], "/tmp");
    assert_eq!(l[3], "1000");
    assert_eq!(l[4], "1001");
    let mut groups: Vec<&str> = l[5].split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["1001", "7"]);
    assert_eq!(l[6], "1", "one PATH in the environment");
    // without flags: the container's process settings
    let out = ok(&exec(&b, &["who", "sh", "-c", "id -u; pwd; echo $PATH"]));
    assert_eq!(
        out,
        "0\n/\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
}

#[test]
fn cap_adds_a_capability() {
    let b = running("caps");
    let base = ok(&exec(&b, &["caps", "cat", "/proc/self/status"]));
    let added = ok(&exec(
        &b,
        &["--cap", "CAP_SYS_ADMIN", "caps", "cat", "/proc/self/status"],
    ));
    let mask = |t: &str, f: &str| u64::from_str_radix(field(t, f), 16).unwrap();
    let sys_admin = 1u64 << 21;
    // the container's default: AUDIT_WRITE, KILL, NET_BIND_SERVICE
    let default = (1u64 << 29) | (1 << 5) | (1 << 10);
    assert_eq!(mask(&base, "CapEff"), default);
    assert_eq!(mask(&added, "CapEff"), default | sys_admin);
    assert_eq!(mask(&added, "CapBnd"), default | sys_admin);
    assert_eq!(
        field(&added, "NoNewPrivs"),
        "1",
        "the config's noNewPrivileges"
    );
    let e = exec(&b, &["--cap", "CAP_NOPE", "caps", "true"]);
    assert!(!e.status.success());
    assert!(stderr(&e).contains("CAP_NOPE"), "{}", stderr(&e));
}

#[test]
fn no_new_privs_flag() {
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| c["process"]["noNewPrivileges"] = json!(false));
    start(&b, "nnp");
    let out = ok(&exec(&b, &["nnp", "cat", "/proc/self/status"]));
    assert_eq!(field(&out, "NoNewPrivs"), "0");
    let out = ok(&exec(
        &b,
        &["--no-new-privs", "nnp", "cat", "/proc/self/status"],
    ));
    assert_eq!(field(&out, "NoNewPrivs"), "1");
}

#[test]
fn process_file() {
    let b = running("pf");
    let f = b.tmp.path().join("process.json");
    std::fs::write(
        &f,
        serde_json::to_vec(&json!({
            "args": ["sh", "-c", "echo $X; id -u; pwd; grep CapEff /proc/self/status"],
            "cwd": "/etc",
            "env": ["X=from-file", "PATH=/bin"],
            "user": {"uid": 5, "gid": 5},
            "capabilities": {"bounding": ["CAP_CHOWN"]}
        }))
        .unwrap(),
    )
    .unwrap();
    let out = ok(&exec(&b, &["--process", f.to_str().unwrap(), "pf"]));
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "from-file");
    assert_eq!(l[1], "5");
    assert_eq!(l[2], "/etc");
    assert_eq!(l[3].split_whitespace().nth(1), Some("0000000000000000"));
    // a bad file names the file and the field
    std::fs::write(&f, r#"{"args": "sh", "cwd": "/"}"#).unwrap();
    let e = exec(&b, &["-p", f.to_str().unwrap(), "pf"]);
    assert_eq!(e.status.code(), Some(1));
    let msg = stderr(&e);
    assert!(
        msg.contains("process.json") && msg.contains("args"),
        "{msg}"
    );
    assert_eq!(msg.trim().lines().count(), 1, "{msg}");
}

#[test]
fn detach_and_pid_file() {
    let b = running("det");
    let init = host_pid(&b, "det");
    let t0 = std::time::Instant::now();
    let pid = exec_detached(&b, &["det", "sleep", "999"]);
    assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(
        cmdline, b"sleep\0999\0",
        "the pid file names the exec'd process"
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(),
        std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap()
    );
    // kill --all reaches it: it is one of the container's processes
    ok(&b.cmd(&["delete", "--force", "det"]));
    for _ in 0..500 {
        match common_stat(pid) {
            Some('Z') | None => return,
            _ => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    panic!("the exec'd process {pid} survived delete --force");
}

fn common_stat(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit(')').next()?.trim_start().chars().next()
}

#[test]
fn preserve_fds() {
    let b = running("fds");
    let out = b.tmp.path().join("fd3");
    let script = format!(
        "{} --root {} exec --preserve-fds 1 fds sh -c 'echo via-fd3 >&3; ls /proc/self/fd' 3>{} 4>/dev/null",
        HUSK,
        b.state_root().display(),
        out.display()
    );
    let o = Command::new("/bin/sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let listed = ok(&o);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "via-fd3\n");
    let mut fds: Vec<i32> = listed
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    fds.sort();
    // stdio, 3, and the directory ls reads (it gets 4 since the 4 husk got was not
    // preserved; a leaked fd would push it to 5)
    assert_eq!(fds, [0, 1, 2, 3, 4]);
}

#[test]
fn exec_into_a_stopped_or_missing_container_fails() {
    let b = Bundle::new(&["true"]);
    ok(&b.run_detached("gone"));
    b.wait_status("gone", "stopped");
    let e = exec(&b, &["gone", "true"]);
    assert_eq!(e.status.code(), Some(1));
    assert!(stderr(&e).contains("stopped"), "{}", stderr(&e));
    let e = exec(&b, &["nosuch", "true"]);
    assert_eq!(e.status.code(), Some(1));
    assert!(stderr(&e).contains("does not exist"), "{}", stderr(&e));
}

#[test]
fn exec_tty_sends_the_pty_master_over_the_console_socket() {
    use std::io::Read;
    let b = running("tty");
    let sock = b.tmp.path().join("exec-console.sock");
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let h = std::thread::spawn(move || accept_fd(&l));
    let e = b
        .husk()
        .args(["exec", "--tty", "--detach", "--console-socket"])
        .arg(&sock)
        .args(["tty", "sh", "-c", "tty; echo end"])
        .output()
        .unwrap();
    ok(&e);
    let mut f = std::fs::File::from(h.join().unwrap());
    let mut out = String::new();
    let mut buf = [0u8; 1024];
    while !out.contains("end") {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(out.contains("/dev/pts/"), "{out}");
    // --console-socket without a terminal, and a detached terminal without a socket
    let e = b
        .husk()
        .args(["exec", "--console-socket", "/tmp/none.sock", "tty", "true"])
        .output()
        .unwrap();
    assert!(
        !e.status.success() && stderr(&e).contains("--tty"),
        "{}",
        stderr(&e)
    );
    let e = b
        .husk()
        .args(["exec", "--tty", "--detach", "tty", "true"])
        .output()
        .unwrap();
    assert!(
        !e.status.success() && stderr(&e).contains("--console-socket"),
        "{}",
        stderr(&e)
    );
}

#[test]
fn bad_exec_input_leaves_nothing_running() {
    let b = running("bad");
    let before = ok(&exec(
        &b,
        &["bad", "sh", "-c", "set -- /proc/[0-9]*; echo $#"],
    ));
    for (args, want) in [
        (&["bad", "/no/such/prog"][..], "no such file or directory"),
        (&["--cwd", "/no/such/dir", "bad", "true"], "process.cwd"),
        (&["--user", "nobody", "bad", "true"], "--user"),
        (&["bad"], "no command"),
    ] {
        let e = exec(&b, args);
        assert_eq!(e.status.code(), Some(1), "{args:?}");
        let msg = stderr(&e);
        assert!(msg.contains(want), "{args:?}: {msg}");
        assert_eq!(msg.trim().lines().count(), 1, "{msg}");
    }
    let after = ok(&exec(
        &b,
        &["bad", "sh", "-c", "set -- /proc/[0-9]*; echo $#"],
    ));
    assert_eq!(before, after, "no process left in the container");
}

/// CVE-2019-5736 class: while exec sets up, its process is in the container's pid
/// namespace but still runs the husk binary. A process in the container that could open
/// /proc/<pid>/exe then could overwrite husk on the host. The container's init watches
/// every pid's exe link while many execs run; none may ever resolve to husk.
#[test]
fn container_cannot_reach_the_husk_binary_during_exec() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "while :; do ls -l /proc/[0-9]*/exe 2>/dev/null | grep husk >> /out/seen; \
         [ -e /out/stop ] && exit 0; done",
    ]);
    let out = b.with_out_dir();
    start(&b, "cve");
    for i in 0..150 {
        ok(&exec(&b, &["cve", "true"]));
        if i % 10 == 0 {
            // detached ones too: a different path through husk
            let s = b
                .husk()
                .args(["exec", "-d", "cve", "true"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(s.success());
        }
    }
    std::fs::write(out.join("stop"), "").unwrap();
    b.wait_status("cve", "stopped");
    let seen = std::fs::read_to_string(out.join("seen")).unwrap_or_default();
    assert!(seen.is_empty(), "the container saw husk's binary:\n{seen}");
}

/// Rootless: husk cannot join the container's pid namespace itself (it has no
/// CAP_SYS_ADMIN over it), so the new process joins it after the user namespace and forks.
#[test]
fn rootless_exec_joins_the_pid_namespace_through_the_user_namespace() {
    use std::os::unix::process::CommandExt;
    let name = std::env::var("HUSK_TEST_USER").unwrap_or_else(|_| "husktest".into());
    let pw = nix::unistd::User::from_name(&name)
        .unwrap()
        .unwrap_or_else(|| panic!("user {name} does not exist"));
    let (uid, gid) = (pw.uid.as_raw(), pw.gid.as_raw());
    let mut b = Bundle::new(&["sleep", "1000"]);
    // The user's own config: user namespace mapped to the user's ids.
    std::fs::remove_file(b.dir.join("config.json")).unwrap();
    let chown = Command::new("chown")
        .args(["-R", &format!("{uid}:{gid}")])
        .arg(b.tmp.path())
        .status()
        .unwrap();
    assert!(chown.success());
    let state_root = b.state_root();
    let as_user = |args: &[&str]| {
        let mut c = Command::new(husk_for_users());
        c.arg("--root")
            .arg(&state_root)
            .args(args)
            .stdin(Stdio::null())
            .uid(uid)
            .gid(gid);
        c
    };
    ok(
        &as_user(&["spec", "--rootless", "--bundle", b.dir.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    b.config = serde_json::from_slice(&std::fs::read(b.dir.join("config.json")).unwrap()).unwrap();
    b.edit(|c| {
        c["process"]["terminal"] = json!(false);
        c["process"]["args"] = json!(["sleep", "1000"]);
        // an unprivileged user cannot mount the host's cgroup hierarchies
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/sys/fs/cgroup");
    });
    let s = as_user(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), "rl"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(s.success(), "rootless run -d failed");
    b.wait_status("rl", "running");
    let init = host_pid(&b, "rl");
    let out = as_user(&[
        "exec",
        "rl",
        "sh",
        "-c",
        "id -u; readlink /proc/self/ns/pid; readlink /proc/self/ns/user; readlink /proc/self/ns/mnt; echo $$; exit 9",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    let text = stdout(&out);
    let l: Vec<&str> = text.lines().collect();
    assert_eq!(l[0], "0", "root in the container's user namespace");
    for (i, n) in ["pid", "user", "mnt"].iter().enumerate() {
        let want = std::fs::read_link(format!("/proc/{init}/ns/{n}")).unwrap();
        assert_eq!(l[1 + i], want.to_str().unwrap(), "{n}");
    }
    assert_ne!(l[4], "1");
    // the detached process is the grandchild, reported by pid
    let pid_file = b.tmp.path().join("rl.pid");
    let s = as_user(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "rl",
        "sleep",
        "998",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .status()
    .unwrap();
    assert!(s.success());
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        std::fs::read(format!("/proc/{pid}/cmdline")).unwrap(),
        b"sleep\0998\0"
    );
    ok(&as_user(&["delete", "--force", "rl"]).output().unwrap());
}

#[test]
fn exec_joins_the_cgroups_and_refuses_a_paused_container() {
    let b = running("cg");
    let pid = exec_detached(&b, &["cg", "sleep", "997"]);
    for c in ["memory", "pids", "freezer", "unified"] {
        let dir = std::path::Path::new("/sys/fs/cgroup")
            .join(c)
            .join("husk/cg");
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|l| l.trim() == pid.to_string()),
            "exec'd process {pid} not in {}: {procs}",
            dir.display()
        );
    }
    ok(&b.cmd(&["pause", "cg"]));
    let e = exec(&b, &["cg", "true"]);
    assert_eq!(e.status.code(), Some(1));
    assert!(stderr(&e).contains("paused"), "{}", stderr(&e));
    ok(&b.cmd(&["resume", "cg"]));
    ok(&b.cmd(&["delete", "--force", "cg"]));
    assert!(
        !std::path::Path::new("/sys/fs/cgroup/pids/husk/cg").exists(),
        "delete removes the container's cgroup"
    );
}

/// `exec --detach --pid-file`: the pid it wrote.
fn exec_detached(b: &Bundle, args: &[&str]) -> i32 {
    let pid_file = b.tmp.path().join(format!("{}.exec.pid", args[0]));
    let status = b
        .husk()
        .args(["exec", "--detach", "--pid-file"])
        .arg(&pid_file)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}
