//! create → start → state → kill → delete, run, list, spec: what runc users rely on.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn run_returns_the_process_exit_status() {
    let b = Bundle::new(&["sh", "-c", "echo out; echo err >&2; exit 7"]);
    let o = b.run("exit7");
    assert_eq!(o.status.code(), Some(7), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    // run deletes the container afterwards
    assert!(!b.state_root().join("exit7").exists());
}

#[test]
fn run_reports_death_by_signal_as_128_plus_signal() {
    let b = Bundle::new(&["sleep", "100"]);
    let mut child = b
        .husk()
        .args(["run", "--bundle"])
        .arg(&b.dir)
        .arg("sig")
        .spawn()
        .unwrap();
    b.wait_status("sig", "running");
    ok(&b.cmd(&["kill", "sig", "KILL"]));
    assert_eq!(child.wait().unwrap().code(), Some(137));
}

#[test]
fn run_forwards_signals_to_the_container() {
    let b = Bundle::new(&[
        "sh",
        "-c",
        "trap 'exit 42' TERM; while :; do sleep 0.05; done",
    ]);
    let mut child = b
        .husk()
        .args(["run", "--bundle"])
        .arg(&b.dir)
        .arg("fwd")
        .spawn()
        .unwrap();
    b.wait_status("fwd", "running");
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: signalling our own child (husk run).
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(42));
}

#[test]
fn create_start_state_kill_delete() {
    let mut b = Bundle::new(&["sh", "-c", "trap 'echo usr1 > /out/got; exit 0' USR1; echo started > /out/started; while :; do sleep 0.05; done"]);
    let out = b.with_out_dir();
    b.edit(|c| {
        c["annotations"] = serde_json::json!({"org.example.key": "value"});
    });
    let pidfile = b.tmp.path().join("pid");
    ok(&b.create_with("c1", &["--pid-file", pidfile.to_str().unwrap()]));
    let s = b.state("c1");
    assert_eq!(s["status"], "created");
    assert_eq!(s["id"], "c1");
    let pid = s["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), pid.to_string());
    assert_eq!(s["bundle"], b.dir.to_str().unwrap());
    assert_eq!(s["rootfs"], b.rootfs().to_str().unwrap());
    assert_eq!(s["ociVersion"], b.config["ociVersion"]);
    assert_eq!(s["owner"], "root");
    assert_eq!(s["annotations"]["org.example.key"], "value");
    assert!(s["created"].as_str().unwrap().ends_with('Z'));
    // The process has not run the user's program yet.
    assert!(!out.join("started").exists());

    // Illegal transition: delete of a running container without --force, start twice.
    ok(&b.cmd(&["start", "c1"]));
    b.wait_status("c1", "running");
    for _ in 0..200 {
        if out.join("started").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(out.join("started").exists(), "the program did not start");
    let o = b.cmd(&["start", "c1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("running"), "{}", stderr(&o));
    let o = b.cmd(&["delete", "c1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not stopped"), "{}", stderr(&o));

    // kill delivers the signal, named without SIG.
    ok(&b.cmd(&["kill", "c1", "USR1"]));
    for _ in 0..300 {
        if out.join("got").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(std::fs::read_to_string(out.join("got")).unwrap(), "usr1\n");
    let s = b.wait_status("c1", "stopped");
    assert_eq!(s["pid"], 0);
    let o = b.cmd(&["kill", "c1", "KILL"]);
    assert!(!o.status.success(), "kill of a stopped container must fail");
    ok(&b.cmd(&["delete", "c1"]));
    assert!(!b.state_root().join("c1").exists());
    let o = b.cmd(&["state", "c1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
}

#[test]
fn kill_accepts_names_and_numbers() {
    for (i, sig) in ["SIGKILL", "KILL", "9"].iter().enumerate() {
        let b = Bundle::new(&["sleep", "100"]);
        let id = format!("k{i}");
        ok(&b.create(&id));
        ok(&b.cmd(&["start", &id]));
        ok(&b.cmd(&["kill", &id, sig]));
        b.wait_status(&id, "stopped");
        ok(&b.cmd(&["delete", &id]));
    }
    let b = Bundle::new(&["sleep", "100"]);
    ok(&b.create("kx"));
    let o = b.cmd(&["kill", "kx", "SIGNOPE"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("SIGNOPE"), "{}", stderr(&o));
}

#[test]
fn kill_all_reaches_every_process() {
    let b = Bundle::new(&["sh", "-c", "sleep 100 & sleep 100 & wait"]);
    ok(&b.create("ka"));
    ok(&b.cmd(&["start", "ka"]));
    b.wait_status("ka", "running");
    let pid = b.state("ka")["pid"].as_i64().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let kids: Vec<i32> = children
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "children: {children}");
    ok(&b.cmd(&["kill", "--all", "ka", "KILL"]));
    b.wait_status("ka", "stopped");
    for k in kids {
        let gone = (0..200).any(|_| {
            let st = std::fs::read_to_string(format!("/proc/{k}/stat")).unwrap_or_default();
            let dead =
                st.is_empty() || st.rsplit(')').next().unwrap().trim_start().starts_with('Z');
            if !dead {
                std::thread::sleep(Duration::from_millis(10));
            }
            dead
        });
        assert!(gone, "pid {k} survived kill --all");
    }
    ok(&b.cmd(&["delete", "ka"]));
}

#[test]
fn delete_force_kills_a_running_container_and_created_ones_need_it_too() {
    let b = Bundle::new(&["sleep", "100"]);
    ok(&b.create("d1"));
    // The spec: deleting a container that is not stopped is an error, created ones included.
    let o = b.cmd(&["delete", "d1"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not stopped: created"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        b.state("d1")["status"],
        "created",
        "a refused delete must not touch the container"
    );
    ok(&b.cmd(&["delete", "--force", "d1"]));
    assert!(
        host_procs_mentioning(b.dir.to_str().unwrap()).is_empty(),
        "process survived delete --force"
    );
    ok(&b.create("d2"));
    ok(&b.cmd(&["start", "d2"]));
    b.wait_status("d2", "running");
    ok(&b.cmd(&["delete", "--force", "d2"]));
    assert!(!b.state_root().join("d2").exists());
    // delete --force of an unknown id succeeds, without it fails
    ok(&b.cmd(&["delete", "--force", "nope"]));
    assert!(!b.cmd(&["delete", "nope"]).status.success());
}

#[test]
fn status_reads_stopped_when_the_process_exits() {
    let b = Bundle::new(&["true"]);
    ok(&b.create("s1"));
    ok(&b.cmd(&["start", "s1"]));
    b.wait_status("s1", "stopped");
    let o = b.cmd(&["start", "s1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("stopped"), "{}", stderr(&o));
    ok(&b.cmd(&["delete", "s1"]));
}

#[test]
fn run_detach_and_list() {
    let b = Bundle::new(&["sleep", "100"]);
    ok(&b.run_detached("l1"));
    ok(&b.create("l2"));
    let table = ok(&b.cmd(&["list"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("STATUS") && lines[0].contains("OWNER"),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("l1 ") && l.contains("running")),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("l2 ") && l.contains("created")),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&b.cmd(&["list", "--format", "json"]))).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[0]["id"], "l1");
    assert_eq!(json[1]["status"], "created");
    assert_eq!(ok(&b.cmd(&["list", "-q"])), "l1\nl2\n");
    ok(&b.cmd(&["delete", "-f", "l1"]));
    ok(&b.cmd(&["delete", "--force", "l2"]));
    assert_eq!(ok(&b.cmd(&["list", "-q"])), "");
}

#[test]
fn spec_writes_a_config_that_runs_and_refuses_to_overwrite() {
    let b = Bundle::new(&["true"]);
    let o = std::process::Command::new(HUSK)
        .args(["spec", "--bundle"])
        .arg(&b.dir)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("exists"), "{}", stderr(&o));
    assert_eq!(
        b.config["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(b.config["root"]["readonly"], true);
}

#[test]
fn duplicate_id_is_refused_and_the_first_container_survives() {
    let b = Bundle::new(&["sleep", "100"]);
    ok(&b.create("dup"));
    let o = b.create("dup");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(b.state("dup")["status"], "created");
    ok(&b.cmd(&["delete", "--force", "dup"]));
}

#[test]
fn log_file_gets_the_error_as_json() {
    let b = Bundle::new(&["/nonexistent"]);
    let log = b.tmp.path().join("log.json");
    let o = b
        .husk()
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "create", "--bundle"])
        .arg(&b.dir)
        .arg("lg")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(
        last["msg"]
            .as_str()
            .unwrap()
            .contains("no such file or directory"),
        "{text}"
    );
    assert!(last["time"].is_string());
}

#[test]
fn features_and_unsupported_commands() {
    let o = std::process::Command::new(HUSK)
        .arg("features")
        .output()
        .unwrap();
    let f: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(f["ociVersionMin"], "1.0.0");
    assert!(f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == "user"));
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert!(f["linux"]["seccomp"]["archs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "SCMP_ARCH_X86_64"));
    for cmd in ["checkpoint", "restore"] {
        let o = std::process::Command::new(HUSK)
            .args([cmd, "--image-path", "/tmp/x", "c1"])
            .output()
            .unwrap();
        assert!(!o.status.success());
        assert!(stderr(&o).contains("not supported"), "{}", stderr(&o));
    }
}

#[test]
fn a_container_without_a_process_is_created_and_start_fails() {
    // The spec: process is REQUIRED only when start is called.
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c.as_object_mut().unwrap().remove("process");
    });
    ok(&b.create("noproc"));
    assert_eq!(b.state("noproc")["status"], "created");
    let o = b.cmd(&["start", "noproc"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("process: missing"), "{}", stderr(&o));
    b.wait_status("noproc", "stopped");
    ok(&b.cmd(&["delete", "noproc"]));
}

#[test]
fn a_failed_create_leaves_one_json_object_in_the_log_as_podman_reads_it() {
    // podman 4.3 parses the whole log of a failed create as one JSON object: a warning
    // written before the error (here: a failing poststop hook) must not break that.
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["hooks"] = serde_json::json!({
            "createRuntime": [{"path": "/bin/false"}],
            "poststop": [{"path": "/bin/false"}]
        });
    });
    let log = b.tmp.path().join("oci-log");
    let o = b
        .husk()
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "create", "--bundle"])
        .arg(&b.dir)
        .arg("lg1")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not one JSON object ({e}): {text}"));
    assert_eq!(v["level"], "error");
    assert!(
        v["msg"].as_str().unwrap().contains("createRuntime"),
        "{text}"
    );
    // with --debug every line stays
    let o = b
        .husk()
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "--debug", "create", "--bundle"])
        .arg(&b.dir)
        .arg("lg2")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(std::fs::read_to_string(&log).unwrap().lines().count() > 2);
}
