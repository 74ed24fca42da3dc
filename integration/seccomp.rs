//! linux.seccomp as the container's process sees it: errno rules, the default errno, kill
//! actions, argument comparisons, a NOTIFY listener, and podman's default profile.

mod common;
use common::*;
use serde_json::{json, Value};
use std::os::fd::AsRawFd;

fn with_seccomp(args: &[&str], seccomp: Value) -> Bundle {
    let mut b = Bundle::new(args);
    b.edit(|c| {
        c["linux"]["seccomp"] = seccomp;
        c["root"]["readonly"] = json!(false);
    });
    b
}

/// Output and exit code of `husk run`, stderr appended to stdout.
fn run_all(b: &Bundle, id: &str) -> (String, Option<i32>) {
    let o = b.run(id);
    (format!("{}{}", stdout(&o), stderr(&o)), o.status.code())
}

#[test]
fn denied_syscalls_return_the_configured_errno() {
    let b = with_seccomp(
        &[
            "sh",
            "-c",
            "mkdir /tmp/d; echo mkdir=$?; cd /tmp; echo cd=$?; ls -d /tmp/d 2>/dev/null; echo ls=$?",
        ],
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                // a name this kernel does not have is ignored, the others still apply
                {"names": ["mkdir", "mkdirat", "no_such_syscall_here"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["chdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
            ]
        }),
    );
    let (out, code) = run_all(&b, "errno");
    assert!(out.contains("mkdir=1"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("cd=2") || out.contains("cd=1"), "{out}");
    assert!(out.contains("Permission denied"), "{out}");
    assert!(out.contains("ls=1"), "the directory must not exist: {out}");
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn husk_own_setup_is_not_policed() {
    // Everything husk does before exec is denied with KILL_PROCESS: mounts, pivot_root,
    // hostname, identity, capabilities, the fifo wait. The filter must come after all that.
    let b = with_seccomp(
        &["echo", "still here"],
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mount", "umount2", "pivot_root", "sethostname", "setresuid",
                "setresgid", "setgroups", "capset", "poll", "chdir", "mknodat", "symlinkat",
                "setsid", "umask", "openat2", "unshare"], "action": "SCMP_ACT_KILL_PROCESS"}]
        }),
    );
    assert_eq!(ok(&b.run("setup")), "still here\n");
}

#[test]
fn default_errno_ret_is_used() {
    let mut profile: Value = serde_json::from_str(include_str!("data/podman-default-seccomp.json"))
        .expect("integration/data/podman-default-seccomp.json");
    // Without its rule swapoff gets the default action: ERRNO with defaultErrnoRet, which
    // is set to a value no other layer returns for swapoff.
    for r in profile["syscalls"].as_array_mut().unwrap() {
        r["names"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n != "swapoff");
    }
    profile["defaultErrnoRet"] = json!(libc::EOPNOTSUPP);
    let b = with_seccomp(&["sh", "-c", "swapoff /nope; echo rc=$?"], profile);
    let (out, _) = run_all(&b, "deferrno");
    assert!(
        out.contains("Not supported") || out.contains("not supported"),
        "{out}"
    );
    assert!(out.contains("rc=1"), "{out}");
}

#[test]
fn kill_actions_end_the_process_with_sigsys() {
    for (i, action) in [
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
    ]
    .iter()
    .enumerate()
    {
        let b = with_seccomp(
            &["mkdir", "/tmp/x"],
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": action}]
            }),
        );
        let (out, code) = run_all(&b, &format!("kill{i}"));
        assert_eq!(code, Some(128 + libc::SIGSYS), "{action}: {out}");
    }
}

#[test]
fn argument_comparisons() {
    let b = with_seccomp(
        &[
            "sh",
            "-c",
            "linux32 true; echo l32=$?; linux64 true; echo l64=$?; \
             touch /tmp/f; chmod 666 /tmp/f; echo w=$?; chmod 640 /tmp/f; echo r=$?; stat -c %a /tmp/f",
        ],
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                // personality(PER_LINUX32) only
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                // any mode with the world-write bit
                {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                 "args": [{"index": 1, "value": 2, "valueTwo": 2, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                 "args": [{"index": 2, "value": 2, "valueTwo": 2, "op": "SCMP_CMP_MASKED_EQ"}]}
            ]
        }),
    );
    let (out, code) = run_all(&b, "args");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("l32=1"), "{out}");
    assert!(out.contains("l64=0"), "{out}");
    assert!(out.contains("w=1"), "{out}");
    assert!(out.contains("r=0"), "{out}");
    assert!(out.contains("\n640\n"), "{out}");
}

#[test]
fn notify_reaches_the_listener_which_answers() {
    let mut b = with_seccomp(
        &["sh", "-c", "mkdir /tmp/n; echo rc=$?; ls -d /tmp/n"],
        json!({}),
    );
    let sock = b.tmp.path().join("listener.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "listenerMetadata": "hello from the test",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
        c["annotations"] = json!({"org.test": "yes"});
    });
    let t = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let (fd, data) = recv_fd(&conn);
        let state: Value = serde_json::from_slice(&data).expect("state JSON");
        let mut seen = vec![];
        // Answer every notification with ETXTBSY until the container is gone.
        while let Ok(req) = libseccomp::ScmpNotifReq::receive(fd.as_raw_fd()) {
            seen.push(req.data.syscall.get_name().unwrap_or_default());
            let resp = libseccomp::ScmpNotifResp::new_error(
                req.id,
                -libc::ETXTBSY,
                libseccomp::ScmpNotifRespFlags::empty(),
            );
            let _ = resp.respond(fd.as_raw_fd());
        }
        (state, seen)
    });
    let (out, code) = run_all(&b, "notify");
    let (state, seen) = t.join().unwrap();
    assert!(out.contains("Text file busy"), "{out}");
    assert!(out.contains("rc=1"), "{out}");
    assert_ne!(code, Some(0), "ls of the never-made dir must fail: {out}");
    assert!(seen.iter().any(|s| s.starts_with("mkdir")), "{seen:?}");
    assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
    assert_eq!(state["metadata"], "hello from the test", "{state}");
    assert!(state["pid"].as_i64().unwrap() > 1, "{state}");
    assert_eq!(state["state"]["id"], "notify", "{state}");
    assert_eq!(state["state"]["pid"], state["pid"], "{state}");
    assert_eq!(state["state"]["bundle"], json!(b.dir), "{state}");
    assert_eq!(state["state"]["annotations"]["org.test"], "yes", "{state}");
    assert!(state["ociVersion"].is_string(), "{state}");
}

#[test]
fn notify_listener_that_closes_makes_the_syscall_fail() {
    let mut b = with_seccomp(&["sh", "-c", "mkdir /tmp/n; echo rc=$?"], json!({}));
    let sock = b.tmp.path().join("l.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    let t = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let (fd, data) = recv_fd(&conn);
        let v: Value = serde_json::from_slice(&data).unwrap();
        drop(fd);
        v
    });
    let (out, code) = run_all(&b, "notify-close");
    let v = t.join().unwrap();
    assert_eq!(v["fds"], json!(["seccompFd"]));
    assert!(out.contains("rc=1"), "{out}");
    assert_eq!(code, Some(0), "{out}");
}

use husk::rootless::PODMAN_CAPS;

fn podman_like(args: &[&str], extra_caps: &[&str], with_profile: bool) -> Bundle {
    let profile: Value =
        serde_json::from_str(include_str!("data/podman-default-seccomp.json")).unwrap();
    let mut b = Bundle::new(args);
    let caps: Vec<&str> = PODMAN_CAPS.iter().chain(extra_caps).copied().collect();
    b.edit(|c| {
        if with_profile {
            c["linux"]["seccomp"] = profile;
        }
        c["root"]["readonly"] = json!(false);
        // podman leaves noNewPrivileges false: the filter is loaded without it.
        c["process"]["noNewPrivileges"] = json!(false);
        c["process"]["capabilities"] = json!({
            "bounding": caps, "effective": caps, "permitted": caps
        });
    });
    b
}

#[test]
fn podman_default_profile_allows_normal_work_and_denies_the_rest() {
    let b = podman_like(
        &[
            "sh",
            "-c",
            "ls / >/dev/null && echo ls-ok; mkdir /tmp/d && echo mkdir-ok; \
             echo x > /tmp/d/f && cat /tmp/d/f; ps >/dev/null && echo ps-ok; \
             swapoff /nope; echo swapoff=$?; unshare -m true; echo unshare=$?; \
             mount -t tmpfs none /mnt || echo mount-failed; grep CapEff /proc/self/status",
        ],
        &[],
        true,
    );
    let (out, code) = run_all(&b, "podman");
    assert_eq!(code, Some(0), "{out}");
    for want in [
        "ls-ok",
        "mkdir-ok",
        "\nx\n",
        "ps-ok",
        "swapoff=1",
        "unshare=1",
        "mount-failed",
    ] {
        assert!(out.contains(want), "{want:?} missing: {out}");
    }
    assert!(out.contains("Operation not permitted"), "{out}");
    // CAP_SYS_ADMIN, kept only to load the filter, is gone before exec.
    let eff = u64::from_str_radix(field(&out, "CapEff"), 16).unwrap();
    assert_eq!(eff & (1 << 21), 0, "CAP_SYS_ADMIN still effective: {out}");
    assert_eq!(eff.count_ones(), PODMAN_CAPS.len() as u32, "{out}");
}

#[test]
fn podman_default_profile_denies_what_capabilities_would_allow() {
    // With CAP_SYS_ADMIN in its own uts namespace the process may set the hostname; the
    // profile denies sethostname with EPERM. Without the profile it works (the control).
    let args = ["sh", "-c", "hostname changed; echo rc=$?; hostname"];
    let control = podman_like(&args, &["CAP_SYS_ADMIN"], false);
    let (out, _) = run_all(&control, "ctl");
    assert!(out.contains("rc=0\nchanged"), "control run: {out}");
    let b = podman_like(&args, &["CAP_SYS_ADMIN"], true);
    let (out, code) = run_all(&b, "denied");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("rc=1\nhusk"), "{out}");
}

#[test]
fn bad_seccomp_config_is_one_line_naming_the_field() {
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"}]}),
            "linux.seccomp.syscalls[0].action",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}),
            "linux.seccomp.syscalls[0].args[0].op",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.listenerPath",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "errnoRet": 5}]}),
            "linux.seccomp.syscalls[0].errnoRet",
        ),
    ];
    for (i, (sec, field)) in cases.into_iter().enumerate() {
        let b = with_seccomp(&["true"], sec);
        let id = format!("bad{i}");
        let o = b.create(&id);
        assert!(!o.status.success(), "{field}: create succeeded");
        let e = stderr(&o);
        assert_eq!(e.trim().lines().count(), 1, "not one line: {e}");
        assert!(e.contains(field), "{field} not in: {e}");
        assert!(
            !b.state_root().join(&id).exists(),
            "state dir left: {field}"
        );
        assert!(host_procs_mentioning(b.dir.to_str().unwrap()).is_empty());
    }
}
