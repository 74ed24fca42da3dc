//! husk run by an unprivileged user, the way podman runs it rootless: `spec --rootless`,
//! uid/gid maps through newuidmap/newgidmap, state under $XDG_RUNTIME_DIR, no cgroups.
//!
//! Every husk command here runs as the test user (HUSK_TEST_USER, default husktest; hack/deps
//! creates it with /etc/subuid and /etc/subgid ranges). Without that user the tests fail.

mod common;
use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The unprivileged user the tests run husk as.
#[derive(Clone)]
struct User {
    name: String,
    uid: u32,
    gid: u32,
    /// First range of /etc/subuid and /etc/subgid: (start, size).
    subuid: (u32, u32),
    subgid: (u32, u32),
}

fn id_of(name: &str, flag: &str) -> u32 {
    let o = Command::new("id").args([flag, name]).output().unwrap();
    assert!(
        o.status.success(),
        "test user {name:?} does not exist: run hack/deps as root (it creates husktest with \
         /etc/subuid and /etc/subgid ranges) or point HUSK_TEST_USER at such a user"
    );
    stdout(&o).trim().parse().unwrap()
}

fn first_range(file: &str, name: &str, uid: u32) -> (u32, u32) {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            if f.len() == 3 && (f[0] == name || f[0] == uid.to_string()) {
                Some((f[1].parse().ok()?, f[2].parse().ok()?))
            } else {
                None
            }
        })
        .unwrap_or_else(|| panic!("{file} has no range for {name}: run hack/deps as root"))
}

fn test_user() -> User {
    require_root();
    let name = std::env::var("HUSK_TEST_USER").unwrap_or_else(|_| "husktest".into());
    let uid = id_of(&name, "-u");
    let gid = id_of(&name, "-g");
    assert_ne!(uid, 0, "HUSK_TEST_USER {name} must not be root");
    User {
        subuid: first_range("/etc/subuid", &name, uid),
        subgid: first_range("/etc/subgid", &name, uid),
        name,
        uid,
        gid,
    }
}

fn setpriv() -> &'static str {
    for p in ["/usr/bin/setpriv", "/bin/setpriv"] {
        if Path::new(p).exists() {
            return p;
        }
    }
    panic!("setpriv not found: install util-linux");
}

/// A bundle owned by the test user, in a temp dir it can traverse, with its own
/// XDG_RUNTIME_DIR; husk runs as that user.
struct Rootless {
    tmp: tempfile::TempDir,
    user: User,
    dir: PathBuf,
    xdg: PathBuf,
    config: Value,
    /// PATH husk sees (newuidmap/newgidmap are looked up on it).
    path: String,
}

impl Rootless {
    /// `husk spec --rootless` run by the user, with terminal off and `args` as the process.
    fn new(args: &[&str]) -> Rootless {
        let user = test_user();
        let tmp = tempfile::Builder::new()
            .prefix("husk-rl-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = tmp.path().join("bundle");
        std::fs::create_dir_all(&dir).unwrap();
        make_rootfs(&dir.join("rootfs"));
        let xdg = tmp.path().join("xdg");
        std::fs::create_dir(&xdg).unwrap();
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
        let owner = format!("{}:{}", user.uid, user.gid);
        for p in [&dir, &xdg] {
            let o = Command::new("chown")
                .args(["-R", "-h", &owner])
                .arg(p)
                .output()
                .unwrap();
            assert!(o.status.success(), "chown: {}", stderr(&o));
        }
        let mut r = Rootless {
            tmp,
            user,
            dir,
            xdg,
            config: Value::Null,
            path: "/usr/sbin:/usr/bin:/sbin:/bin".into(),
        };
        let bundle = r.dir.to_str().unwrap().to_string();
        ok(&r
            .husk(&["spec", "--rootless", "--bundle", &bundle])
            .output()
            .unwrap());
        r.config =
            serde_json::from_slice(&std::fs::read(r.dir.join("config.json")).unwrap()).unwrap();
        r.config["process"]["terminal"] = Value::Bool(false);
        r.config["process"]["args"] = json!(args);
        r.save();
        r
    }

    fn save(&self) {
        let p = self.dir.join("config.json");
        std::fs::write(&p, serde_json::to_vec_pretty(&self.config).unwrap()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    fn edit(&mut self, f: impl FnOnce(&mut Value)) {
        f(&mut self.config);
        self.save();
    }

    fn state_root(&self) -> PathBuf {
        self.xdg.join("husk")
    }

    /// husk as the user: no capabilities, a clean environment with XDG_RUNTIME_DIR.
    fn husk(&self, args: &[&str]) -> Command {
        let mut c = Command::new(setpriv());
        c.arg(format!("--reuid={}", self.user.uid))
            .arg(format!("--regid={}", self.user.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(husk_for_users())
            .args(args)
            .env_clear()
            .env("PATH", &self.path)
            .env("XDG_RUNTIME_DIR", &self.xdg)
            .current_dir(self.tmp.path())
            .stdin(Stdio::null());
        c
    }

    fn cmd(&self, args: &[&str]) -> Output {
        self.husk(args).output().unwrap()
    }

    /// `husk [global] run --bundle B id` in the foreground.
    fn run_with(&self, global: &[&str], id: &str) -> Output {
        let mut args: Vec<&str> = global.to_vec();
        let bundle = self.dir.to_str().unwrap();
        args.extend(["run", "--bundle", bundle, id]);
        self.cmd(&args)
    }

    fn run(&self, id: &str) -> Output {
        self.run_with(&[], id)
    }

    /// A detached command (create, run -d): stdio go to files, as a pipe would stay open
    /// for as long as the container lives.
    fn detached(&self, args: &[&str], tag: &str) -> Output {
        let out = self.tmp.path().join(format!("{tag}.out"));
        let err = self.tmp.path().join(format!("{tag}.err"));
        output_via_files(self.husk(args), &out, &err)
    }

    fn create(&self, id: &str) -> Output {
        let bundle = self.dir.to_str().unwrap().to_string();
        self.detached(&["create", "--bundle", &bundle, id], id)
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&ok(&self.cmd(&["state", id]))).unwrap()
    }

    fn wait_status(&self, id: &str, want: &str) -> Value {
        for _ in 0..500 {
            let s = self.state(id);
            if s["status"] == want {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("container {id} never reached {want}: {}", self.state(id));
    }

    fn log(&self) -> PathBuf {
        self.xdg.join("husk.log")
    }

    /// The maps a rootless config asks for: 0 -> own id, 1.. -> the subordinate range.
    fn expected_uid_map(&self) -> Vec<(u32, u32, u32)> {
        vec![
            (0, self.user.uid, 1),
            (1, self.user.subuid.0, self.user.subuid.1),
        ]
    }

    fn expected_gid_map(&self) -> Vec<(u32, u32, u32)> {
        vec![
            (0, self.user.gid, 1),
            (1, self.user.subgid.0, self.user.subgid.1),
        ]
    }

    fn assert_nothing_left(&self, id: &str) {
        assert!(
            !self.state_root().join(id).exists(),
            "state dir of {id} left behind"
        );
        let procs = host_procs_mentioning(self.dir.to_str().unwrap());
        assert!(procs.is_empty(), "processes left behind: {procs:?}");
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(self.state_root()) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.cmd(&["delete", "--force", &id]);
            }
        }
    }
}

/// Lines of /proc/self/{uid,gid}_map text as (inside, outside, count).
fn parse_map(text: &str) -> Vec<(u32, u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<u32> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (f.len() == 3).then(|| (f[0], f[1], f[2]))
        })
        .collect()
}

/// The text between `--- name` and the next marker line in the container's output.
fn section<'a>(out: &'a str, name: &str) -> &'a str {
    let start = out
        .find(&format!("--- {name}\n"))
        .unwrap_or_else(|| panic!("no section {name} in {out}"))
        + name.len()
        + 5;
    let rest = &out[start..];
    &rest[..rest.find("--- ").unwrap_or(rest.len())]
}

use husk::rootless::PODMAN_CAPS;
/// The bits of PODMAN_CAPS: 0,1,3,4,5,10,31,6,8,7,18.
const PODMAN_CAP_MASK: u64 = 0x8004_05fb;

#[test]
fn maps_show_own_id_and_the_subordinate_range() {
    let r = Rootless::new(&[
        "sh",
        "-c",
        "echo --- uid; cat /proc/self/uid_map; echo --- gid; cat /proc/self/gid_map; echo --- id; id -u; id -g",
    ]);
    let out = ok(&r.run("maps"));
    assert_eq!(parse_map(section(&out, "uid")), r.expected_uid_map());
    assert_eq!(parse_map(section(&out, "gid")), r.expected_gid_map());
    assert_eq!(section(&out, "id"), "0\n0\n");
    assert!(!r.state_root().join("maps").exists());
}

#[test]
fn spec_rootless_gives_podman_caps_and_no_network_namespace() {
    let r = Rootless::new(&["sh", "-c", "grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status"]);
    let c = &r.config;
    for set in ["bounding", "effective", "permitted"] {
        let mut got: Vec<&str> = c["process"]["capabilities"][set]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, PODMAN_CAPS, "capabilities.{set}");
    }
    let ns: Vec<&str> = c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(ns.contains(&"user") && !ns.contains(&"network"), "{ns:?}");
    // What the process really holds.
    let out = ok(&r.run("caps"));
    for f in ["CapEff", "CapPrm", "CapBnd"] {
        let v = u64::from_str_radix(field(&out, f), 16).unwrap();
        assert_eq!(v, PODMAN_CAP_MASK, "{f} in {out}");
    }
}

#[test]
fn root_in_the_container_chowns_to_100_and_becomes_65534() {
    let mut r = Rootless::new(&[
        "sh",
        "-c",
        "touch /tmp/f && chown 100:100 /tmp/f && echo --- stat && stat -c %u:%g /tmp/f && \
         echo --- su && su -s /bin/sh nobody -c id",
    ]);
    r.edit(|c| c["root"]["readonly"] = json!(false));
    let out = ok(&r.run("ids"));
    assert_eq!(section(&out, "stat"), "100:100\n");
    assert_eq!(
        section(&out, "su"),
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n"
    );
    // On the host the file belongs to the subordinate ids that container id 100 maps to.
    let md = std::fs::metadata(r.dir.join("rootfs/tmp/f")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(md.uid(), r.user.subuid.0 + 99);
    assert_eq!(md.gid(), r.user.subgid.0 + 99);
}

fn with_network(r: &mut Rootless) {
    r.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "network"}))
    });
}

#[test]
fn net_bind_service_lets_root_listen_on_port_80() {
    let mut r = Rootless::new(&[
        "sh",
        "-c",
        "echo --- start; cat /proc/sys/net/ipv4/ip_unprivileged_port_start; \
         nc -l -p 80 & for i in $(seq 100); do netstat -ltn | grep -q ':80 ' && break; sleep 0.05; done; \
         echo --- listen; netstat -ltn | grep ':80 '; kill $!",
    ]);
    with_network(&mut r);
    let out = ok(&r.run("bind80"));
    // Port 80 is privileged in the container's network namespace, so this proves the cap.
    let start: u32 = section(&out, "start").trim().parse().unwrap();
    assert!(start > 80, "ip_unprivileged_port_start is {start}");
    assert!(section(&out, "listen").contains("LISTEN"), "{out}");
}

#[test]
fn without_net_bind_service_binding_port_80_is_refused() {
    let mut r = Rootless::new(&[
        "sh",
        "-c",
        "grep CapEff /proc/self/status; nc -l -p 80; echo nc exit $?",
    ]);
    with_network(&mut r);
    r.edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .retain(|x| x != "CAP_NET_BIND_SERVICE");
        }
    });
    let o = r.run("nobind80");
    let out = ok(&o);
    let eff = u64::from_str_radix(field(&out, "CapEff"), 16).unwrap();
    // CAP_NET_BIND_SERVICE is bit 10.
    assert_eq!(eff, PODMAN_CAP_MASK & !(1 << 10));
    assert!(out.contains("nc exit 1"), "{out}");
    assert!(
        stderr(&o).contains("bind: Permission denied"),
        "stderr: {}",
        stderr(&o)
    );
}

#[test]
fn ps_lists_only_the_container_processes() {
    let r = Rootless::new(&[
        "sh",
        "-c",
        "sleep 30 & until [ \"$(cat /proc/$!/comm)\" = sleep ]; do :; done; ps -o pid,args; kill $!",
    ]);
    let out = ok(&r.run("ps"));
    let rows: Vec<(u32, String)> = out
        .lines()
        .skip(1)
        .map(|l| {
            let l = l.trim();
            let (pid, args) = l.split_once(' ').unwrap();
            (pid.parse().unwrap(), args.trim().to_string())
        })
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert_eq!(rows[0].0, 1, "{out}");
    assert!(rows[0].1.starts_with("sh -c"), "{out}");
    assert_eq!(rows[1].1, "sleep 30", "{out}");
    // busybox sh runs its ps applet in the forked shell without exec: `{ps} sh -c ...`.
    assert!(
        rows[2].1.starts_with("ps ") || rows[2].1.starts_with("{ps} "),
        "{out}"
    );
}

#[test]
fn state_kill_delete_list_as_the_user() {
    let r = Rootless::new(&["sleep", "100"]);
    ok(&r.create("c1"));
    let s = r.state("c1");
    assert_eq!(s["status"], "created");
    assert_eq!(s["owner"], r.user.name.as_str());
    // The state lives under $XDG_RUNTIME_DIR/husk and belongs to the user.
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(r.state_root().join("c1/state.json")).unwrap();
    assert_eq!(md.uid(), r.user.uid);
    // The container's process runs as the user's own uid on the host.
    let pid = s["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids: Vec<u32> = field(&status, "Uid")
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(uids, vec![r.user.uid; 4]);

    let list = ok(&r.cmd(&["list"]));
    let row = list.lines().find(|l| l.starts_with("c1 ")).expect(&list);
    assert!(
        row.contains("created") && row.ends_with(&r.user.name),
        "{list}"
    );
    let json: Value = serde_json::from_str(&ok(&r.cmd(&["list", "--format", "json"]))).unwrap();
    assert_eq!(json[0]["id"], "c1");

    ok(&r.cmd(&["start", "c1"]));
    r.wait_status("c1", "running");
    let o = r.cmd(&["delete", "c1"]);
    assert!(!o.status.success(), "delete of a running container worked");
    ok(&r.cmd(&["kill", "c1", "KILL"]));
    r.wait_status("c1", "stopped");
    ok(&r.cmd(&["delete", "c1"]));
    assert!(!r.state_root().join("c1").exists());
    assert_eq!(ok(&r.cmd(&["list", "-q"])), "");
    let o = r.cmd(&["state", "c1"]);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
}

fn ns_link(pid: &str, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

const NAMESPACES: [&str; 7] = ["user", "mnt", "pid", "net", "ipc", "uts", "cgroup"];

fn print_namespaces() -> String {
    NAMESPACES
        .iter()
        .map(|n| format!("echo --- {n}; readlink /proc/self/ns/{n}; "))
        .collect()
}

#[test]
fn new_user_namespace_and_every_other_in_one_clone() {
    let script = format!(
        "{} echo --- uid; cat /proc/self/uid_map",
        print_namespaces()
    );
    let mut r = Rootless::new(&["sh", "-c", &script]);
    with_network(&mut r);
    let log = r.log();
    let out = ok(&r.run_with(&["--debug", "--log", log.to_str().unwrap()], "fast"));
    for ns in NAMESPACES {
        assert_ne!(
            section(&out, ns).trim(),
            ns_link("self", ns),
            "{ns} namespace is the host's"
        );
    }
    assert_eq!(parse_map(section(&out, "uid")), r.expected_uid_map());
    // One clone3 carried the user namespace with the others (cgroup is unshared later, once
    // the process sits in its cgroup).
    let log = std::fs::read_to_string(&log).unwrap();
    let flags = log
        .lines()
        .find_map(|l| {
            l.split("one clone3 into new namespaces 0x")
                .nth(1)
                .map(|h| h.trim_end_matches('"'))
        })
        .unwrap_or_else(|| panic!("no fast-path line in the log: {log}"));
    let flags = i64::from_str_radix(flags, 16).unwrap() as libc::c_int;
    let want = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    assert_eq!(flags & want, want, "clone3 flags {flags:#x}");
}

#[test]
fn joins_a_user_namespace_by_path() {
    // Container a owns the user and network namespaces; b joins both and makes the rest new.
    let mut a = Rootless::new(&["sleep", "100"]);
    with_network(&mut a);
    let bundle = a.dir.to_str().unwrap().to_string();
    ok(&a.detached(&["run", "--detach", "--bundle", &bundle, "a"], "a"));
    let apid = a.state("a")["pid"].as_i64().unwrap().to_string();

    let script = format!(
        "{} echo --- uid; cat /proc/self/uid_map; echo --- chown; \
         touch /tmp/g && chown 100 /tmp/g && stat -c %u /tmp/g",
        print_namespaces()
    );
    a.edit(|c| {
        c["process"]["args"] = json!(["sh", "-c", script]);
        c["root"]["readonly"] = json!(false);
        let l = c["linux"].as_object_mut().unwrap();
        l.remove("uidMappings");
        l.remove("gidMappings");
        let ns = l["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "user" && n["type"] != "network");
        ns.push(json!({"type": "user", "path": format!("/proc/{apid}/ns/user")}));
        ns.push(json!({"type": "network", "path": format!("/proc/{apid}/ns/net")}));
    });
    let log = a.log();
    let out = ok(&a.run_with(&["--debug", "--log", log.to_str().unwrap()], "b"));
    assert_eq!(section(&out, "user").trim(), ns_link(&apid, "user"));
    assert_eq!(section(&out, "net").trim(), ns_link(&apid, "net"));
    for ns in ["mnt", "pid", "ipc", "uts"] {
        let got = section(&out, ns).trim().to_string();
        assert_ne!(got, ns_link(&apid, ns), "{ns} is a's");
        assert_ne!(got, ns_link("self", ns), "{ns} is the host's");
    }
    assert_eq!(parse_map(section(&out, "uid")), a.expected_uid_map());
    assert_eq!(section(&out, "chown"), "100\n");
    let log = std::fs::read_to_string(&log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("clone3 without namespaces; the child joins"))
        .unwrap_or_else(|| panic!("no slow-path line in the log: {log}"));
    let joined = line.split("joins").nth(1).unwrap();
    assert!(
        joined.contains("user") && joined.contains("network"),
        "{line}"
    );
    ok(&a.cmd(&["delete", "--force", "a"]));
}

#[test]
fn sys_and_devices_without_privilege() {
    let mut r = Rootless::new(&[
        "sh",
        "-c",
        "echo --- sys; grep ' /sys ' /proc/self/mountinfo | cut -d' ' -f6; \
         echo --- net; ls /sys/class/net | grep -c lo; \
         echo --- write; touch /sys/x 2>&1; \
         echo --- dev; echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c",
    ]);
    let check = |out: &str| {
        let opts = section(out, "sys").trim().to_string();
        for o in ["ro", "nosuid", "nodev", "noexec"] {
            assert!(opts.split(',').any(|x| x == o), "/sys mounted {opts}");
        }
        assert_eq!(section(out, "net"), "1\n");
        assert!(
            section(out, "write").contains("Read-only file system"),
            "{out}"
        );
        assert_eq!(section(out, "dev"), "4\n4\n");
    };
    // As `spec --rootless` writes it (an rbind of the host's /sys) ...
    check(&ok(&r.run("sysbind")));
    // ... and as the default spec has it: sysfs cannot be mounted without a network
    // namespace of our own, so the host's /sys is bound with the same flags.
    r.edit(|c| {
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/sys" {
                *m = json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                            "options": ["nosuid", "noexec", "nodev", "ro"]});
            }
        }
    });
    check(&ok(&r.run("sysfs")));
}

#[test]
fn own_ids_alone_are_mapped_without_helpers() {
    let mut r = Rootless::new(&[
        "sh",
        "-c",
        "echo --- uid; cat /proc/self/uid_map; echo --- gid; cat /proc/self/gid_map; \
         echo --- setgroups; cat /proc/self/setgroups",
    ]);
    let (uid, gid) = (r.user.uid, r.user.gid);
    r.edit(|c| {
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    });
    // No newuidmap/newgidmap on PATH: the maps must be written directly.
    let empty = r.tmp.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    r.path = empty.to_str().unwrap().into();
    let out = ok(&r.run("own"));
    assert_eq!(parse_map(section(&out, "uid")), vec![(0, uid, 1)]);
    assert_eq!(parse_map(section(&out, "gid")), vec![(0, gid, 1)]);
    assert_eq!(section(&out, "setgroups"), "deny\n");
}

#[test]
fn missing_helpers_are_a_one_line_error() {
    let mut r = Rootless::new(&["true"]);
    let empty = r.tmp.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    r.path = empty.to_str().unwrap().into();
    let o = r.run("nohelper");
    assert!(!o.status.success());
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("linux.gidMappings: newgidmap not found") && e.contains("uidmap"),
        "{e}"
    );
    r.assert_nothing_left("nohelper");
}

#[test]
fn ranges_not_granted_name_the_file_and_range() {
    let mut r = Rootless::new(&["true"]);
    let (start, size) = r.user.subuid;
    // Just past the granted range.
    let bad = start + size;
    r.edit(|c| c["linux"]["uidMappings"][1]["hostID"] = json!(bad));
    let o = r.run("notgranted");
    assert!(!o.status.success());
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("linux.uidMappings"), "{e}");
    assert!(e.contains("/etc/subuid"), "{e}");
    assert!(e.contains(&format!("1 {bad} {size}")), "{e}");
    r.assert_nothing_left("notgranted");
}

#[test]
fn state_directory_must_be_usable() {
    let r = Rootless::new(&["true"]);
    let bundle = r.dir.to_str().unwrap();
    let o = r
        .husk(&["run", "--bundle", bundle, "x"])
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("XDG_RUNTIME_DIR is not set") && stderr(&o).contains("--root"),
        "{}",
        stderr(&o)
    );
    let o = r
        .husk(&["run", "--bundle", bundle, "x"])
        .env("XDG_RUNTIME_DIR", "/root")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("XDG_RUNTIME_DIR /root is not a directory this user can write to"),
        "{}",
        stderr(&o)
    );
    // --root works without XDG_RUNTIME_DIR.
    let root = r.xdg.join("elsewhere");
    let o = r
        .husk(&[
            "--root",
            root.to_str().unwrap(),
            "run",
            "--bundle",
            bundle,
            "x",
        ])
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    ok(&o);
    assert!(root.is_dir());
}

#[test]
fn cgroups_are_skipped_unless_delegated() {
    let mut r = Rootless::new(&["true"]);
    let log = r.log();
    ok(&r.run_with(&["--debug", "--log", log.to_str().unwrap()], "cg"));
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("msg=\"cgroups: "))
        .unwrap_or_else(|| panic!("no cgroups line in {text}"));
    if line.contains("not delegated") {
        // Limits that cannot be applied are refused, and nothing is left behind.
        r.edit(|c| c["linux"]["resources"] = json!({"pids": {"limit": 10}}));
        let o = r.run("limits");
        assert!(!o.status.success());
        let e = stderr(&o);
        assert!(
            e.contains("linux.resources.pids: cannot apply limits: cgroups are not delegated"),
            "{e}"
        );
        r.assert_nothing_left("limits");
    }
    // Devices rules alone (podman always sends some) are not limits.
    r.edit(|c| c["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]}));
    ok(&r.run("devices"));
}

#[test]
fn root_writes_several_ranges_directly() {
    // As root husk writes the maps itself, any number of ranges of any ids.
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "echo --- uid; cat /proc/self/uid_map; echo --- gid; cat /proc/self/gid_map",
    ]);
    let uid = vec![(0, 300000, 1000), (1000, 400000, 1000), (65534, 500000, 1)];
    let gid = vec![(0, 310000, 100), (100, 410000, 10), (65534, 510000, 1)];
    let as_json = |m: &[(u32, u32, u32)]| -> Value {
        m.iter()
            .map(|(c, h, s)| json!({"containerID": c, "hostID": h, "size": s}))
            .collect()
    };
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = as_json(&uid);
        c["linux"]["gidMappings"] = as_json(&gid);
    });
    let out = ok(&b.run("ranges"));
    assert_eq!(parse_map(section(&out, "uid")), uid);
    assert_eq!(parse_map(section(&out, "gid")), gid);
}

/// The mirror and suite this machine's apt uses (first stanza of debian.sources); the
/// debootstrap default mirror is not reachable from the test machines.
fn apt_mirror() -> (String, String) {
    let f = "/etc/apt/sources.list.d/debian.sources";
    let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("read {f}: {e}"));
    let first = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .map(String::from)
            .unwrap_or_else(|| panic!("no {key} line in {f}"))
    };
    (first("URIs:"), first("Suites:"))
}

const DEBIAN_CACHE: &str = "/var/cache/husk-test/debian-rootfs";

/// A minimal Debian root filesystem, built once with debootstrap and kept in DEBIAN_CACHE.
fn debian_rootfs() -> PathBuf {
    let cache = PathBuf::from(DEBIAN_CACHE);
    let parent = cache.parent().unwrap().to_path_buf();
    let marker = parent.join("debian-rootfs.complete");
    std::fs::create_dir_all(&parent).unwrap();
    // One builder at a time (tests of several checkouts may run at once).
    let lock = std::fs::File::create(parent.join(".lock")).unwrap();
    // SAFETY: flock on an fd we own; released when `lock` is dropped.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    if marker.exists() && cache.join("usr/bin/apt-get").exists() {
        return cache;
    }
    assert!(
        Path::new("/usr/sbin/debootstrap").exists(),
        "debootstrap not found: run hack/deps as root (it installs debootstrap)"
    );
    let (mirror, suite) = apt_mirror();
    let partial = parent.join("debian-rootfs.partial");
    let _ = std::fs::remove_dir_all(&partial);
    let _ = std::fs::remove_file(&marker);
    eprintln!("building {DEBIAN_CACHE} with debootstrap {suite} from {mirror} (minutes, once)");
    let o = Command::new("/usr/sbin/debootstrap")
        .args(["--variant=minbase", &suite])
        .arg(&partial)
        .arg(&mirror)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "debootstrap {suite} {mirror} failed:\n{}\n{}",
        stdout(&o)
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n"),
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&cache);
    std::fs::rename(&partial, &cache).unwrap();
    std::fs::write(&marker, format!("{suite} {mirror}\n")).unwrap();
    cache
}

/// Give a root filesystem made by host root to the user's mapping: id 0 -> the user's own
/// id, id n -> subordinate id start + n - 1 (what podman's storage does for rootless).
fn shift_ownership(p: &Path, u: &User) {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(p).unwrap();
    let map = |id: u32, own: u32, (start, size): (u32, u32)| -> u32 {
        match id {
            0 => own,
            n if n <= size => start + n - 1,
            n => panic!("{} is owned by id {n}, outside the mapping", p.display()),
        }
    };
    std::os::unix::fs::lchown(
        p,
        Some(map(md.uid(), u.uid, u.subuid)),
        Some(map(md.gid(), u.gid, u.subgid)),
    )
    .unwrap();
    if md.file_type().is_symlink() {
        return;
    }
    // chown clears setuid and setgid bits: put the mode back.
    if md.mode() & 0o6000 != 0 {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(md.mode() & 0o7777)).unwrap();
    }
    if md.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            shift_ownership(&e.unwrap().path(), u);
        }
    }
}

/// The whole path a rootless podman user takes with a Debian image: apt (whose download
/// sandbox switches to the _apt user with setgroups/setgid/setuid), dpkg unpacking files
/// as root, and su to nobody.
#[test]
fn debian_apt_and_su_as_the_user() {
    let cache = debian_rootfs();
    let script = r#"set -e
rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*
mkdir -p /srv/repo/pkg/DEBIAN /srv/repo/pkg/usr/share/husk-hello
printf 'Package: husk-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: husk <husk@example.invalid>\nDescription: husk test package\n' >/srv/repo/pkg/DEBIAN/control
echo hello >/srv/repo/pkg/usr/share/husk-hello/greeting
cd /srv/repo
dpkg-deb --root-owner-group -b pkg husk-hello_1.0_all.deb >/dev/null
rm -rf pkg
{ dpkg-deb -f husk-hello_1.0_all.deb
  echo "Filename: ./husk-hello_1.0_all.deb"
  echo "Size: $(stat -c %s husk-hello_1.0_all.deb)"
  echo "SHA256: $(sha256sum husk-hello_1.0_all.deb | cut -d' ' -f1)"
  echo; } >Packages
chmod -R a+rX /srv/repo
echo 'deb [trusted=yes] file:/srv/repo ./' >/etc/apt/sources.list.d/local.list
echo --- update
apt-get update 2>&1
echo --- install
DEBIAN_FRONTEND=noninteractive apt-get install -y husk-hello 2>&1
echo --- hello
cat /usr/share/husk-hello/greeting
stat -c %U:%G /usr/share/husk-hello/greeting
echo --- su
su -s /bin/sh nobody -c id
"#;
    let mut r = Rootless::new(&["sh", "-c", script]);
    let rootfs = r.dir.join("rootfs");
    std::fs::remove_dir_all(&rootfs).unwrap();
    let o = Command::new("cp")
        .arg("-a")
        .arg(&cache)
        .arg(&rootfs)
        .output()
        .unwrap();
    assert!(o.status.success(), "cp -a {DEBIAN_CACHE}: {}", stderr(&o));
    shift_ownership(&rootfs, &r.user);
    r.edit(|c| {
        c["root"]["readonly"] = json!(false);
        c["process"]["env"] = json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root"
        ]);
    });
    let out = ok(&r.run("debian"));
    let update = section(&out, "update");
    assert!(update.contains("file:/srv/repo ./ Packages"), "{out}");
    // apt's sandbox could drop to _apt: no fallback to downloading as root, no failed
    // setgroups/setgid/setuid.
    for bad in [
        "unsandboxed",
        "setgroups",
        "seteuid",
        "Operation not permitted",
        "E: ",
    ] {
        assert!(
            !update.contains(bad),
            "apt-get update said {bad:?}:\n{update}"
        );
    }
    assert!(
        section(&out, "install").contains("Setting up husk-hello (1.0)"),
        "{out}"
    );
    assert_eq!(section(&out, "hello"), "hello\nroot:root\n");
    assert_eq!(
        section(&out, "su"),
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n"
    );
}
