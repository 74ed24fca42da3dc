//! process.terminal with --console-socket: the master arrives over the socket (SCM_RIGHTS),
//! the process sees a pty of its own devpts as stdio and controlling terminal.

mod common;
use common::*;
use serde_json::json;
use std::io::Read;
use std::os::unix::net::UnixListener;

#[test]
fn console_socket_gets_the_pty_master() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "tty; stty size; ls -l /dev/console | cut -c1; echo done",
    ]);
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({"height": 25, "width": 99});
    });
    let sock = b.tmp.path().join("console.sock");
    let l = UnixListener::bind(&sock).unwrap();
    let h = std::thread::spawn(move || accept_fd(&l));
    ok(&b.create_with("tty1", &["--console-socket", sock.to_str().unwrap()]));
    let master = h.join().unwrap();
    ok(&b.cmd(&["start", "tty1"]));
    let mut f = std::fs::File::from(master);
    let mut out = String::new();
    let mut buf = [0u8; 4096];
    while !out.contains("done") {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("25 99"), "{out}");
    assert!(
        out.contains("\r\nc\r\n"),
        "/dev/console is not the pty: {out}"
    );
    b.wait_status("tty1", "stopped");
    ok(&b.cmd(&["delete", "tty1"]));
}

#[test]
fn console_socket_needs_terminal_and_terminal_needs_a_socket() {
    let b = Bundle::new(&["true"]);
    let o = b.create_with("tty2", &["--console-socket", "/nonexistent.sock"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("process.terminal is false"),
        "{}",
        stderr(&o)
    );
    let mut b = b;
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let o = b.create_with("tty3", &["--console-socket", "/nonexistent.sock"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/nonexistent.sock"), "{}", stderr(&o));
    assert!(!b.state_root().join("tty3").exists());
}

#[test]
fn run_in_the_foreground_proxies_a_pty_of_the_container() {
    // What `husk spec && husk run` gives a person at a terminal: a pty of the container's
    // own devpts as controlling terminal, our window size, the exit status.
    let mut b = Bundle::new(&["sh", "-c", "tty; stty size; exit 5"]);
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let cmd = format!(
        "stty rows 21 cols 83; {HUSK} --root {} run --bundle {} fg; echo rc=$?",
        b.state_root().display(),
        b.dir.display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (bsdutils)");
    let _stdin = child.stdin.take();
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    assert!(out.contains("/dev/pts/0\n"), "{out}");
    assert!(out.contains("21 83\n"), "{out}");
    assert!(out.contains("rc=5"), "{out}");
    // without a terminal on our side it still runs, output through the pty
    let o = b.run("fg2");
    assert_eq!(o.status.code(), Some(5));
    assert!(stdout(&o).contains("/dev/pts/0"), "{}", stdout(&o));
}
