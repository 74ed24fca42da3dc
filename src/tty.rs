//! process.terminal: the pty is made inside the container (its own devpts instance), the
//! master goes to the caller over `--console-socket` with SCM_RIGHTS (what conmon and
//! containerd's shim expect), and the slave becomes the process's stdio and controlling
//! terminal, bind-mounted at /dev/console.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Box as ConsoleSize;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Connect to the console socket (in the parent, before clone: after pivot_root the path
/// is out of reach).
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path)
        .with_context(|| format!("connect to --console-socket {}", path.display()))?;
    Ok(OwnedFd::from(s))
}

/// In the container, after pivot_root: make the pty, send the master, take the slave.
pub fn setup(sock: &OwnedFd, size: Option<ConsoleSize>, uid: u32, console: bool) -> Result<()> {
    // SAFETY: plain open of the container's /dev/ptmx; the fd is owned below.
    let m = unsafe {
        libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if m < 0 {
        bail!(
            "open /dev/ptmx in the container: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: fresh fd.
    let master = unsafe { OwnedFd::from_raw_fd(m) };
    let mut unlock: libc::c_int = 0;
    let mut n: libc::c_uint = 0;
    // SAFETY: ioctls on the master with properly typed arguments.
    unsafe {
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) < 0 {
            bail!("unlock the pty: {}", std::io::Error::last_os_error());
        }
        if libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) < 0 {
            bail!("get the pty number: {}", std::io::Error::last_os_error());
        }
    }
    let slave_path = format!("/dev/pts/{n}");
    let c = std::ffi::CString::new(slave_path.clone())?;
    // SAFETY: valid C string.
    let s = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if s < 0 {
        bail!("open {slave_path}: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fresh fd.
    let slave = unsafe { OwnedFd::from_raw_fd(s) };
    if let Some(sz) = size {
        let ws = libc::winsize {
            ws_row: sz.height() as u16,
            ws_col: sz.width() as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ with a winsize struct.
        if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
            bail!("process.consoleSize: {}", std::io::Error::last_os_error());
        }
    }
    // SAFETY: fchown of our own fd.
    unsafe { libc::fchown(slave.as_raw_fd(), uid, u32::MAX) };
    if console {
        bind_console(&slave_path);
    }
    let fds = [master.as_raw_fd()];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    let name = b"/dev/ptmx";
    nix::sys::socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(name)],
        &cmsg,
        nix::sys::socket::MsgFlags::empty(),
        None,
    )
    .context("send the pty master over --console-socket")?;
    drop(master);
    // SAFETY: terminal ioctls and dup2 onto stdio of our own process.
    unsafe {
        if libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) < 0 {
            bail!(
                "make {slave_path} the controlling terminal: {}",
                std::io::Error::last_os_error()
            );
        }
        for fd in 0..3 {
            if libc::dup2(slave.as_raw_fd(), fd) < 0 {
                bail!(
                    "dup2 the pty to fd {fd}: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
    Ok(())
}

/// /dev/console is the container's terminal; best effort (a read-only /dev keeps the host's).
fn bind_console(slave: &str) {
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/dev/console");
    let src = std::ffi::CString::new(slave).unwrap_or_default();
    // SAFETY: valid C strings.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            c"/dev/console".as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if r < 0 {
        crate::debug!(
            "bind {slave} at /dev/console: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// For `run` in the foreground with process.terminal and no --console-socket: a connected
/// pair whose one end plays the console socket; the other receives the master.
pub fn internal_socket() -> Result<(OwnedFd, OwnedFd)> {
    let (a, b) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair for the terminal")?;
    Ok((a, b))
}

/// Receive the pty master sent by `setup`.
pub fn recv_master(sock: &OwnedFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context("receive the pty master")?;
    for c in msg.cmsgs().context("read the pty master message")? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the fd arrived with SCM_RIGHTS and is ours.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    bail!("the container sent no pty master")
}

/// Copy our terminal's window size to the pty (nothing when stdin is not a terminal).
pub fn copy_winsize(master: &OwnedFd) {
    let mut ws: libc::winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a winsize struct.
    unsafe {
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Our stdin terminal in raw mode for the life of the guard (keys go to the container's
/// terminal as typed); restored on drop.
pub struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    pub fn enter() -> RawMode {
        let stdin = std::io::stdin();
        match nix::sys::termios::tcgetattr(&stdin) {
            Ok(old) => {
                let mut raw = old.clone();
                nix::sys::termios::cfmakeraw(&mut raw);
                let _ =
                    nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &raw);
                RawMode(Some(old))
            }
            Err(_) => RawMode(None),
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(old) = self.0.take() {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                &old,
            );
        }
    }
}

/// Copy what is readable from `from` to `to`. Returns false at EOF/EIO (the other side is gone).
pub fn pump(from: i32, to: i32) -> bool {
    let mut buf = [0u8; 8192];
    // SAFETY: read into a local buffer.
    let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        let e = std::io::Error::last_os_error();
        return n < 0 && matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR));
    }
    let mut off = 0usize;
    while off < n as usize {
        // SAFETY: write from the same buffer.
        let w = unsafe { libc::write(to, buf[off..n as usize].as_ptr().cast(), n as usize - off) };
        if w <= 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) || e.raw_os_error() == Some(libc::EAGAIN) {
                continue;
            }
            return false;
        }
        off += w as usize;
    }
    true
}
