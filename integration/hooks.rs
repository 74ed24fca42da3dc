//! OCI hooks: order, the state on stdin, the namespaces each kind runs in, args and env,
//! timeouts, and what a failing hook does to create, start and delete.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A hook that records, under `dir`, the state it read, its mount namespace, and its kind
/// in `dir/order`. `sh` is the shell's path as the hook sees it.
fn recorder(sh: &str, dir: &str, kind: &str) -> Value {
    json!({
        "path": sh,
        "args": ["sh", "-c", format!(
            "cat > {dir}/state-{kind}.json && readlink /proc/self/ns/mnt > {dir}/mnt-{kind} && echo {kind} >> {dir}/order"
        )],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    })
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn json_of(p: &Path) -> Value {
    serde_json::from_str(&read(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn order(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("order"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn six_kinds_in_order_with_state_and_namespaces() {
    let mut b = Bundle::new(&["sh", "-c", "readlink /proc/self/ns/mnt > /out/mnt-process"]);
    let out = b.with_out_dir();
    let host_out = out.to_str().unwrap().to_string();
    // createContainer's path must resolve on the host: a script only the host has.
    let cc = b.tmp.path().join("cc-hook");
    std::fs::write(&cc, "#!/bin/sh\nexec /bin/sh -c \"$@\"\n").unwrap();
    std::fs::set_permissions(&cc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // startContainer's path must resolve in the container: a path only the rootfs has.
    std::fs::create_dir_all(b.rootfs().join("hookbin")).unwrap();
    std::os::unix::fs::symlink("/bin/busybox", b.rootfs().join("hookbin/sh")).unwrap();
    assert!(!Path::new("/hookbin/sh").exists());
    let mut cc_hook = recorder("", &host_out, "createContainer");
    cc_hook["path"] = json!(cc);
    cc_hook["args"] = json!(["cc-hook", cc_hook["args"][2]]);
    b.edit(|c| {
        c["annotations"] = json!({"org.test.hooks": "yes"});
        c["hooks"] = json!({
            "prestart": [recorder("/bin/sh", &host_out, "prestart")],
            "createRuntime": [recorder("/bin/sh", &host_out, "createRuntime")],
            "createContainer": [cc_hook],
            "startContainer": [recorder("/hookbin/sh", "/out", "startContainer")],
            "poststart": [recorder("/bin/sh", &host_out, "poststart")],
            "poststop": [recorder("/bin/sh", &host_out, "poststop")]
        });
    });

    ok(&b.create("hk"));
    assert_eq!(
        order(&out),
        ["prestart", "createRuntime", "createContainer"]
    );
    let pid = b.state("hk")["pid"].as_i64().unwrap();
    ok(&b.cmd(&["start", "hk"]));
    assert_eq!(
        order(&out),
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart"
        ]
    );
    b.wait_status("hk", "stopped");
    ok(&b.cmd(&["delete", "hk"]));
    assert_eq!(order(&out).len(), 6);
    assert_eq!(order(&out)[5], "poststop");

    // the state on stdin
    for (kind, status) in [
        ("prestart", "created"),
        ("createRuntime", "created"),
        ("createContainer", "created"),
        ("startContainer", "created"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ] {
        let s = json_of(&out.join(format!("state-{kind}.json")));
        assert_eq!(s["status"], status, "{kind}: {s}");
        assert_eq!(s["id"], "hk", "{kind}: {s}");
        assert_eq!(s["bundle"], json!(b.dir), "{kind}: {s}");
        assert_eq!(s["annotations"]["org.test.hooks"], "yes", "{kind}: {s}");
        assert!(s["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")));
        if status == "stopped" {
            assert!(s.get("pid").is_none(), "{kind}: {s}");
        } else {
            assert_eq!(
                s["pid"], pid,
                "{kind}: the container's pid on the host: {s}"
            );
        }
    }

    // which mount namespace each ran in
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let host_mnt = host_mnt.to_str().unwrap();
    let mnt = |k: &str| read(&out.join(format!("mnt-{k}"))).trim().to_string();
    let container_mnt = mnt("process");
    assert_ne!(container_mnt, host_mnt);
    for k in ["prestart", "createRuntime", "poststart", "poststop"] {
        assert_eq!(mnt(k), host_mnt, "{k} runs in the runtime's namespace");
    }
    for k in ["createContainer", "startContainer"] {
        assert_eq!(
            mnt(k),
            container_mnt,
            "{k} runs in the container's namespace"
        );
    }
}

#[test]
fn args_env_and_nothing_else() {
    let mut b = Bundle::new(&["true"]);
    let out: PathBuf = b.tmp.path().join("o");
    std::fs::create_dir_all(&out).unwrap();
    let o = out.display();
    b.edit(|c| {
        c["hooks"] = json!({"createRuntime": [{
            "path": "/bin/sh",
            "args": ["my-argv0", "-c", format!(
                "echo \"$0|$1|$2\" > {o}/args; tr '\\0' '\\n' < /proc/$$/environ > {o}/env; tr '\\0' ' ' < /proc/$$/cmdline > {o}/cmdline"
            ), "first", "second arg"],
            "env": ["FOO=bar baz", "PATH=/usr/bin:/bin"]
        }]});
    });
    ok(&b.run("args"));
    assert_eq!(read(&out.join("args")), "first|second arg|\n");
    assert_eq!(read(&out.join("env")), "FOO=bar baz\nPATH=/usr/bin:/bin\n");
    assert!(
        read(&out.join("cmdline")).starts_with("my-argv0 -c "),
        "{}",
        read(&out.join("cmdline"))
    );
}

fn assert_nothing_left(b: &Bundle, id: &str) {
    assert!(!b.state_root().join(id).exists(), "state dir left for {id}");
    assert!(
        host_procs_mentioning(b.dir.to_str().unwrap()).is_empty(),
        "process left for {id}"
    );
}

#[test]
fn a_failing_create_hook_fails_create_and_leaves_nothing() {
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let mut b = Bundle::new(&["sleep", "100"]);
        let marker = b.tmp.path().join("poststop-ran");
        b.edit(|c| {
            c["hooks"] = json!({
                kind: [
                    {"path": "/bin/sh", "args": ["sh", "-c", "echo boom >&2; exit 7"]}
                ],
                "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", marker.display())]}]
            });
        });
        let id = format!("fail-{kind}");
        let o = b.create(&id);
        assert!(!o.status.success(), "{kind}: create succeeded");
        let e = stderr(&o);
        assert_eq!(e.trim().lines().count(), 1, "not one line: {e}");
        assert!(e.contains(&format!("hooks.{kind}[0] (/bin/sh)")), "{e}");
        assert!(e.contains("exit status 7") && e.contains("boom"), "{e}");
        assert_nothing_left(&b, &id);
        // runtime.md: a failed create continues at "destroy", then the poststop hooks
        let st = json_of(&marker);
        assert_eq!(st["status"], "stopped", "{st}");
    }
}

#[test]
fn a_hook_past_its_timeout_is_killed_and_create_fails() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["hooks"] = json!({"createRuntime": [
            {"path": "/bin/sleep", "args": ["sleep", "31.25"], "timeout": 1}
        ]});
    });
    let t0 = std::time::Instant::now();
    let o = b.create("slow");
    assert!(!o.status.success());
    assert!(t0.elapsed() < std::time::Duration::from_secs(10));
    let e = stderr(&o);
    assert!(
        e.contains("hooks.createRuntime[0]") && e.contains("timed out after 1s"),
        "{e}"
    );
    assert_nothing_left(&b, "slow");
    assert!(
        host_procs_mentioning("31.25").is_empty(),
        "the hook lives on"
    );
}

#[test]
fn a_failing_start_container_hook_fails_start_before_the_program_runs() {
    let mut b = Bundle::new(&["sh", "-c", "echo ran > /out/ran"]);
    let out = b.with_out_dir();
    b.edit(|c| {
        c["hooks"] = json!({"startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 4"]}
        ]});
    });
    ok(&b.create("sc"));
    let o = b.cmd(&["start", "sc"]);
    assert!(!o.status.success(), "start succeeded");
    let e = stderr(&o);
    assert!(
        e.contains("hooks.startContainer[0] (/bin/sh)") && e.contains("exit status 4"),
        "{e}"
    );
    assert!(e.contains("nope"), "{e}");
    assert!(!out.join("ran").exists(), "the user's program ran");
    b.wait_status("sc", "stopped");
}

#[test]
fn poststart_and_poststop_failures_only_warn() {
    let mut b = Bundle::new(&["sleep", "100"]);
    let out = b.tmp.path().join("o");
    std::fs::create_dir_all(&out).unwrap();
    let o = out.display();
    let fail = |msg: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {msg} >&2; exit 1")]});
    let mark =
        |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("touch {o}/{name}")]});
    b.edit(|c| {
        c["hooks"] = json!({
            "poststart": [fail("ps-fail"), mark("poststart-2")],
            "poststop": [fail("pst-fail"), mark("poststop-2")]
        });
    });
    ok(&b.create("warn"));
    let s = b.cmd(&["start", "warn"]);
    assert!(s.status.success(), "start failed: {}", stderr(&s));
    assert!(stderr(&s).contains("hooks.poststart[0]"), "{}", stderr(&s));
    assert!(
        out.join("poststart-2").exists(),
        "the next poststart hook ran"
    );
    assert_eq!(b.state("warn")["status"], "running");
    let d = b.cmd(&["delete", "--force", "warn"]);
    assert!(d.status.success(), "delete failed: {}", stderr(&d));
    assert!(stderr(&d).contains("hooks.poststop[0]"), "{}", stderr(&d));
    assert!(out.join("poststop-2").exists());
    assert!(!b.state_root().join("warn").exists());
}

#[test]
fn bad_hooks_are_one_line_naming_the_field() {
    for (hooks, field) in [
        (
            json!({"poststop": [{"path": "relative/x"}]}),
            "hooks.poststop[0].path",
        ),
        (
            json!({"createRuntime": [{"path": "/bin/true", "timeout": 0}]}),
            "hooks.createRuntime[0].timeout",
        ),
        (
            json!({"prestart": [{"path": "/bin/true", "timeout": "soon"}]}),
            "hooks.prestart[0].timeout",
        ),
    ] {
        let mut b = Bundle::new(&["true"]);
        b.edit(|c| c["hooks"] = hooks);
        let o = b.create("badhook");
        assert!(!o.status.success(), "{field}");
        let e = stderr(&o);
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(e.contains(field), "{field} not in {e}");
        assert_nothing_left(&b, "badhook");
    }
}
