//! The rest of config.json, each seen from inside the container: linux.sysctl,
//! linux.personality, process.scheduler, process.ioPriority, linux.timeOffsets, the LSM
//! labels and linux.intelRdt; and bad values refused with nothing left behind.

mod common;
use common::*;
use serde_json::{json, Value};

/// `husk run` must fail naming `want`, leaving no container, state dir or process.
fn refused(b: &Bundle, id: &str, want: &[&str]) {
    let o = b.run(id);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let msg = stderr(&o);
    for w in want {
        assert!(msg.contains(w), "error should mention {w:?}: {msg}");
    }
    assert_eq!(msg.trim().lines().count(), 1, "one line: {msg}");
    assert!(
        !b.state_root().join(id).exists(),
        "state dir left behind for {id}"
    );
    assert!(host_procs_mentioning(&b.dir.display().to_string()).is_empty());
}

fn push_ns(c: &mut Value, t: &str) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": t }));
}

#[test]
fn sysctl_namespaced_keys_are_set_inside_only() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_default_ttl /proc/sys/fs/mqueue/msg_max",
    ]);
    b.edit(|c| {
        c["linux"]["sysctl"] = json!({
            "kernel.shmmax": "123456789",
            "net.ipv4.ip_default_ttl": "42",
            "fs.mqueue.msg_max": "17"
        })
    });
    let out = ok(&b.run("sysctl"));
    assert_eq!(out, "123456789\n42\n17\n");
    let host = |k: &str| std::fs::read_to_string(format!("/proc/sys/{k}")).unwrap();
    assert_ne!(host("kernel/shmmax").trim(), "123456789");
    assert_ne!(host("net/ipv4/ip_default_ttl").trim(), "42");
    assert_ne!(host("fs/mqueue/msg_max").trim(), "17");
}

#[test]
fn sysctl_host_wide_or_unbacked_keys_are_refused() {
    let mut b = Bundle::new(&["true"]);
    let swappiness = std::fs::read_to_string("/proc/sys/vm/swappiness").unwrap();
    b.edit(|c| c["linux"]["sysctl"] = json!({"vm.swappiness": "13"}));
    refused(
        &b,
        "vm",
        &["linux.sysctl", "vm.swappiness", "not a namespaced"],
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/vm/swappiness").unwrap(),
        swappiness
    );
    // a network key without a network namespace of its own
    b.edit(|c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_default_ttl": "42"});
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "network");
    });
    refused(&b, "net", &["net.ipv4.ip_default_ttl", "network namespace"]);
    // a namespaced key the kernel rejects: the error comes from inside the container
    b.edit(|c| {
        push_ns(c, "network");
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_default_ttl": "0"});
    });
    refused(&b, "val", &["linux.sysctl", "net.ipv4.ip_default_ttl"]);
}

#[test]
fn personality_linux32() {
    let mut b = Bundle::new(&["uname", "-m"]);
    let host = ok(&std::process::Command::new("uname")
        .arg("-m")
        .output()
        .unwrap());
    assert_eq!(
        host.trim(),
        "x86_64",
        "this test knows the 32-bit name for x86_64 only"
    );
    b.edit(|c| c["linux"]["personality"] = json!({"domain": "LINUX32"}));
    assert_eq!(ok(&b.run("p32")), "i686\n");
    b.edit(|c| c["linux"]["personality"] = json!({"domain": "LINUX"}));
    assert_eq!(ok(&b.run("p64")), "x86_64\n");
    b.edit(|c| c["linux"]["personality"] = json!({"domain": "LINUX", "flags": ["X"]}));
    refused(&b, "pflags", &["linux.personality.flags"]);
    // exec'd processes get the container's personality too
    b.edit(|c| {
        c["linux"]["personality"] = json!({"domain": "LINUX32"});
        c["process"]["args"] = json!(["sleep", "1000"]);
    });
    ok(&b.run_detached("pexec"));
    b.wait_status("pexec", "running");
    assert_eq!(ok(&b.cmd(&["exec", "pexec", "uname", "-m"])), "i686\n");
}

/// Fields of /proc/self/stat after the command name: nice is field 19, policy field 41.
fn stat_fields(stat: &str) -> Vec<String> {
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().map(String::from).collect()
}

#[test]
fn scheduler_policy_and_nice() {
    let mut b = Bundle::new(&["cat", "/proc/self/stat"]);
    b.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7}));
    let f = stat_fields(&ok(&b.run("batch")));
    // fields after ')' start at field 3
    assert_eq!(f[19 - 3], "7", "nice");
    assert_eq!(f[41 - 3], "3", "policy SCHED_BATCH");
    b.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_IDLE"}));
    let f = stat_fields(&ok(&b.run("idle")));
    assert_eq!(f[41 - 3], "5", "policy SCHED_IDLE");
    // a priority SCHED_OTHER does not take
    b.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "priority": 50}));
    refused(&b, "bad", &["process.scheduler", "sched_setattr"]);
    b.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "nice": 40}));
    refused(&b, "bad2", &["process.scheduler.nice"]);
}

#[test]
fn io_priority() {
    let mut b = Bundle::new(&["sh", "-c", "ionice -p $$"]);
    b.edit(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6}));
    assert_eq!(ok(&b.run("be")), "best-effort: prio 6\n");
    b.edit(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0}));
    assert_eq!(ok(&b.run("idle")), "idle\n");
    b.edit(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 9}));
    refused(&b, "bad", &["process.ioPriority.priority"]);
}

fn host_uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn time_offsets_in_a_new_time_namespace() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /proc/uptime; cat /proc/self/timens_offsets",
    ]);
    let ten_days = 864_000i64;
    b.edit(|c| {
        push_ns(c, "time");
        c["linux"]["timeOffsets"] = json!({
            "boottime": {"secs": ten_days, "nanosecs": 0},
            "monotonic": {"secs": 86_400, "nanosecs": 500}
        });
    });
    let before = host_uptime();
    let out = ok(&b.run("time"));
    let after = host_uptime();
    let l: Vec<&str> = out.lines().collect();
    let up: f64 = l[0].split_whitespace().next().unwrap().parse().unwrap();
    assert!(
        up >= before + ten_days as f64 && up <= after + ten_days as f64 + 1.0,
        "uptime inside {up}, host {before}..{after}"
    );
    let offsets: Vec<Vec<&str>> = l[1..]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        offsets.contains(&vec!["monotonic", "86400", "500"]),
        "{out}"
    );
    assert!(offsets.contains(&vec!["boottime", "864000", "0"]), "{out}");

    // an exec'd process is in the same time namespace
    b.edit(|c| c["process"]["args"] = json!(["sleep", "1000"]));
    ok(&b.run_detached("texec"));
    b.wait_status("texec", "running");
    let out = ok(&b.cmd(&["exec", "texec", "cat", "/proc/uptime"]));
    let up: f64 = out.split_whitespace().next().unwrap().parse().unwrap();
    assert!(
        up >= host_uptime() - 1.0 + ten_days as f64,
        "exec uptime {up}"
    );
}

#[test]
fn time_offsets_need_a_time_namespace_and_known_clocks() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1}}));
    refused(&b, "nons", &["linux.timeOffsets", "time namespace"]);
    b.edit(|c| {
        push_ns(c, "time");
        c["linux"]["timeOffsets"] = json!({"realtime": {"secs": 1}});
    });
    refused(&b, "clock", &["linux.timeOffsets", "realtime"]);
}

fn lsm_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'))
        || std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

#[test]
fn lsm_labels_are_ignored_where_the_lsm_is_absent() {
    assert!(
        !lsm_enabled(),
        "this test expects a host without AppArmor and SELinux (as the project's machines are)"
    );
    let mut b = Bundle::new(&["echo", "ran"]);
    b.edit(|c| {
        c["process"]["apparmorProfile"] = json!("husk-test-profile");
        c["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0");
        c["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0");
    });
    let log = b.tmp.path().join("log.json");
    let o = b
        .husk()
        .arg("--debug")
        .arg("--log")
        .arg(&log)
        .args(["run", "--bundle"])
        .arg(&b.dir)
        .arg("lsm")
        .output()
        .unwrap();
    assert_eq!(ok(&o), "ran\n");
    let log = std::fs::read_to_string(&log).unwrap();
    for f in [
        "process.apparmorProfile",
        "process.selinuxLabel",
        "linux.mountLabel",
    ] {
        assert!(
            log.lines().any(|l| l.contains(f) && l.contains("ignored")),
            "{f}: {log}"
        );
    }
}

#[test]
fn intel_rdt_without_resctrl_is_refused() {
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(" - resctrl ");
    assert!(!mounted, "this test expects a host without resctrl mounted");
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["linux"]["intelRdt"] = json!({"closID": "husk", "l3CacheSchema": "L3:0=ff"}));
    refused(&b, "rdt", &["linux.intelRdt", "not supported on this host"]);
}
