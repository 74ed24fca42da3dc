//! `--log FILE`, `--log-format text|json`, `--debug`, in runc's (logrus') line format.
//!
//! Without `--log`, warnings and errors go to stderr. The container's first process has no
//! logger of its own: its lines travel to the parent over the sync channel (see
//! spawn/sync.rs) and are written here, so lines from after pivot_root reach the log too.

use std::io::Write;
use std::sync::Mutex;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
    pub fn parse(s: &str) -> Level {
        match s {
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warning" | "warn" => Level::Warn,
            _ => Level::Error,
        }
    }
}

struct Logger {
    file: Option<std::fs::File>,
    json: bool,
    min: Level,
    /// In the container's first process: where lines go instead (the sync channel fd).
    forward: Option<i32>,
    /// Length of the log file when we opened it (see `fatal`).
    start_len: u64,
}

static LOGGER: Mutex<Option<Logger>> = Mutex::new(None);

pub fn init(path: Option<&std::path::Path>, json: bool, debug: bool) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::unix::fs::OpenOptionsExt;
    let file = match path {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(libc::O_CLOEXEC)
                .mode(0o644)
                .open(p)
                .with_context(|| format!("open log file {}", p.display()))?,
        ),
        None => None,
    };
    let min = if debug {
        Level::Debug
    } else if path.is_some() {
        Level::Info
    } else {
        Level::Warn
    };
    let start_len = file
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .map(|m| m.len())
        .unwrap_or(0);
    *LOGGER.lock().unwrap_or_else(|e| e.into_inner()) = Some(Logger {
        file,
        json,
        min,
        forward: None,
        start_len,
    });
    Ok(())
}

pub fn debug_enabled() -> bool {
    LOGGER
        .lock()
        .map(|l| l.as_ref().map(|l| l.min == Level::Debug).unwrap_or(false))
        .unwrap_or(false)
}

/// In the child: send lines over the sync channel instead of writing them.
pub fn forward_to(fd: i32) {
    if let Ok(mut g) = LOGGER.lock() {
        if let Some(l) = g.as_mut() {
            l.forward = Some(fd);
        }
    }
}

pub fn format_line(level: Level, msg: &str, json: bool) -> String {
    let time = crate::sys::rfc3339_now();
    if json {
        serde_json::json!({"level": level.name(), "msg": msg, "time": time}).to_string() + "\n"
    } else {
        format!(
            "time=\"{}\" level={} msg={}\n",
            time,
            level.name(),
            serde_json::Value::String(msg.to_string())
        )
    }
}

pub fn log(level: Level, msg: &str) {
    let mut g = match LOGGER.lock() {
        Ok(g) => g,
        Err(e) => e.into_inner(),
    };
    let Some(l) = g.as_mut() else {
        if level >= Level::Warn {
            eprintln!("{}", msg);
        }
        return;
    };
    if level < l.min {
        return;
    }
    if let Some(fd) = l.forward {
        let m = crate::spawn::sync::Msg::Log {
            level: level.name().into(),
            msg: msg.into(),
        };
        if let Ok(buf) = serde_json::to_vec(&m) {
            // SAFETY: fd is the child's end of the sync channel; buf is valid.
            unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
        }
        return;
    }
    match l.file.as_mut() {
        Some(f) => {
            let _ = f.write_all(format_line(level, msg, l.json).as_bytes());
        }
        // Without --log, warnings (and with --debug, everything) go to stderr.
        None => eprintln!("{}", format_line(level, msg, l.json).trim_end()),
    }
}

/// The final error of a failed command: one line on stderr, and in the log file if any.
pub fn fatal(msg: &str) {
    let g = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = g.as_ref() {
        if let Some(mut f) = l.file.as_ref() {
            // podman (4.3) reads the log of a failed create as ONE JSON object: without
            // --debug, the lines this command wrote before are dropped so that our error is
            // what it shows. (With --debug every line stays, for people reading the log.)
            if l.json && l.min > Level::Debug {
                let _ = f.set_len(l.start_len);
            }
            let _ = f.write_all(format_line(Level::Error, msg, l.json).as_bytes());
        }
    }
    eprintln!("husk: {msg}");
}

#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { if $crate::log::debug_enabled() { $crate::log::log($crate::log::Level::Debug, &format!($($t)*)) } };
}
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log::log($crate::log::Level::Warn, &format!($($t)*)) };
}
