//! Device rules on cgroup v2: the eBPF device program, for real, on this hybrid host's
//! cgroup2 mount (/sys/fs/cgroup/unified). Here the v1 devices hierarchy enforces the same
//! rules, so the tests either drive the program directly on a cgroup of their own, or use
//! rules the two enforce differently.

mod common;
use common::*;
use husk::cgroups::bpf::{self, Rule};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// A cgroup2 directory of the test's own, removed at the end.
struct TestCgroup(PathBuf);

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("{} left behind", self.0.display());
    }
}

/// `script` run by sh inside `cg` (it moves itself there first); stdout and stderr.
fn sh_in(cg: &Path, script: &str) -> String {
    let procs = cg.join("cgroup.procs");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {} && {{ {script}; }} 2>&1",
            procs.display()
        ))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn program_on_a_cgroup2_directory_denies_what_the_rules_deny() {
    require_root();
    let cg = TestCgroup(Path::new(UNIFIED).join(format!("husk-bpf-test-{}", std::process::id())));
    std::fs::create_dir(&cg.0).unwrap();
    let rules = [
        Rule::new(true, 'a', -1, -1, "rwm").unwrap(),
        Rule::new(false, 'c', 1, 3, "rw").unwrap(),
    ];
    let prog = bpf::load(&bpf::program(&rules).unwrap()).unwrap();
    bpf::attach(&cg.0, &prog).unwrap();
    drop(prog); // attached, it lives with the cgroup
    assert_eq!(bpf::attached(&cg.0).unwrap().len(), 1);
    let script = "echo x > /dev/null && echo null-ok; head -c 3 /dev/zero | wc -c";
    let out = sh_in(&cg.0, script);
    assert!(
        out.contains("Operation not permitted") && !out.contains("null-ok"),
        "{out}"
    );
    assert_eq!(out.lines().last().map(str::trim), Some("3"), "{out}");
    // outside the cgroup nothing changed
    let o = Command::new("sh")
        .args(["-c", "echo x > /dev/null && echo null-ok"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("null-ok"));
    // a second attach replaces the first program
    let prog = bpf::load(&bpf::program(&rules[..1]).unwrap()).unwrap();
    bpf::attach(&cg.0, &prog).unwrap();
    assert_eq!(bpf::attached(&cg.0).unwrap().len(), 1);
    let out = sh_in(&cg.0, script);
    assert!(out.contains("null-ok"), "{out}");
}

#[test]
fn verifier_log_is_in_the_error() {
    require_root();
    // r0 is never set: the verifier refuses and says why
    let bad = [bpf::Insn {
        code: bpf::op::EXIT,
        regs: 0,
        off: 0,
        imm: 0,
    }];
    let e = format!("{:#}", bpf::load(&bad).unwrap_err());
    assert!(e.contains("verifier log") && e.contains("R0"), "{e}");
}

/// Rules v1 and the program enforce differently: v1 cannot take c 10:200 back out of an
/// allowed c 10:*, the program does. So tun opens with v1 alone (and fails with "File
/// descriptor in bad state", as tun does before TUNSETIFF), and is denied once husk is made
/// to attach the program on this hybrid host.
#[test]
fn husk_attaches_the_program_to_the_container_cgroup() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /dev/net/tun > /out/tun 2>&1; echo x > /dev/null && echo null-ok > /out/null",
    ]);
    let out = b.with_out_dir();
    b.edit(|c| {
        c["linux"]["devices"] =
            json!([{"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200, "fileMode": 438}]);
        c["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "access": "rwm"},
            {"allow": false, "type": "c", "major": 10, "minor": 200, "access": "rwm"}
        ]);
    });
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_default();

    ok(&b.run("v1only"));
    assert!(
        read("tun").contains("File descriptor in bad state"),
        "{}",
        read("tun")
    );
    assert!(read("null").contains("null-ok"));

    let status = b
        .husk()
        .env("HUSK_CGROUP2_DEVICES", "1")
        .args(["create", "--bundle"])
        .arg(&b.dir)
        .arg("v2dev")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let dir = Path::new(UNIFIED).join("husk/v2dev");
    assert_eq!(bpf::attached(&dir).unwrap().len(), 1);
    ok(&b.cmd(&["start", "v2dev"]));
    b.wait_status("v2dev", "stopped");
    ok(&b.cmd(&["delete", "v2dev"]));
    assert!(!dir.exists(), "cgroup2 directory left after delete");
    assert!(
        read("tun").contains("Operation not permitted"),
        "{}",
        read("tun")
    );
    assert!(read("null").contains("null-ok"));
}
