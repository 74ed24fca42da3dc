//! Bad input: one clear line naming the field or path, non-zero exit, nothing left behind.

mod common;
use common::*;
use serde_json::json;

fn expect_error(b: &Bundle, id: &str, needles: &[&str]) {
    let o = b.create(id);
    assert!(!o.status.success(), "create {id} succeeded");
    let e = stderr(&o);
    assert_eq!(e.trim().lines().count(), 1, "not one line: {e}");
    for n in needles {
        assert!(e.contains(n), "{n:?} not in: {e}");
    }
    assert!(!e.contains("panicked"), "{e}");
    assert!(!b.state_root().join(id).exists(), "state dir left for {id}");
    assert!(
        host_procs_mentioning(b.dir.to_str().unwrap()).is_empty(),
        "process left for {id}"
    );
}

#[test]
fn malformed_json() {
    let b = Bundle::new(&["true"]);
    std::fs::write(b.dir.join("config.json"), "{\"ociVersion\": \"1.0.2\", ").unwrap();
    expect_error(&b, "bad1", &["config.json", "EOF"]);
}

#[test]
fn missing_root_path() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["root"]["path"] = json!("nope"));
    expect_error(&b, "bad2", &["root.path", "nope"]);
    b.edit(|c| {
        c.as_object_mut().unwrap().remove("root");
    });
    expect_error(&b, "bad2b", &["root"]);
}

#[test]
fn unknown_namespace_type() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "bogus"}))
    });
    expect_error(&b, "bad3", &["linux.namespaces[6].type", "bogus"]);
}

#[test]
fn mount_without_destination() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "tmpfs", "source": "tmpfs"}))
    });
    expect_error(&b, "bad4", &["mounts[7]", "destination"]);
}

#[test]
fn unknown_capability() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["process"]["capabilities"]["effective"]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_BOGUS"))
    });
    expect_error(&b, "bad5", &["process.capabilities.effective", "CAP_BOGUS"]);
}

#[test]
fn unknown_major_version() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["ociVersion"] = json!("2.0.0"));
    expect_error(&b, "bad6", &["ociVersion", "2.0.0"]);
}

#[test]
fn invalid_ids() {
    let b = Bundle::new(&["true"]);
    for id in ["a/b", "..", "../escape", ".", "with space"] {
        let o = b.create(id);
        assert!(!o.status.success(), "id {id:?} accepted");
        assert!(
            stderr(&o).contains("invalid container id"),
            "{}",
            stderr(&o)
        );
    }
    assert!(!b.tmp.path().join("escape").exists());
    assert!(
        std::fs::read_dir(b.state_root())
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
}

#[test]
fn empty_args_and_relative_cwd() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["process"]["args"] = json!([]));
    expect_error(&b, "bad7", &["process.args"]);
    b.edit(|c| {
        c["process"]["args"] = json!(["true"]);
        c["process"]["cwd"] = json!("relative");
    });
    expect_error(&b, "bad8", &["process.cwd"]);
}

#[test]
fn terminal_without_console_socket() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["process"]["terminal"] = json!(true));
    expect_error(&b, "bad9", &["process.terminal", "--console-socket"]);
}

#[test]
fn impossible_rlimit_fails_in_the_child_and_cleans_up() {
    let mut b = Bundle::new(&["true"]);
    // CAP_SYS_RESOURCE is missing on these hosts and in most containers: a hard limit above ours fails.
    b.edit(|c| {
        c["process"]["rlimits"] =
            json!([{"type": "RLIMIT_NOFILE", "soft": 1048576, "hard": 1048576}])
    });
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscall.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) };
    if cur.rlim_max >= 1048576 {
        // With CAP_SYS_RESOURCE the limit is granted; use a limit the kernel always refuses.
        b.edit(|c| {
            c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}])
        });
    }
    expect_error(&b, "bad10", &["process.rlimits"]);
}
