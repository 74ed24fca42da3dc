//! `husk events [--stats] [--interval 5s] ID`: runc's event stream (stats and OOM) as JSON lines.

use crate::container::{self, Global};
use anyhow::{bail, Result};
use std::io::Write;
use std::time::{Duration, Instant};

pub fn parse_interval(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| (&s[..i], &s[i..]))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid --interval {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid --interval {s:?}"),
    };
    if secs <= 0.0 {
        bail!("--interval must be positive");
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn run(g: &Global, id: &str, stats: bool, interval: &str) -> Result<()> {
    let every = parse_interval(interval)?;
    let (st, _) = container::live_state(g, id)?;
    let event = |typ: &str, data: serde_json::Value| {
        serde_json::json!({"type": typ, "id": id, "data": data}).to_string()
    };
    if stats {
        crate::out!(
            "{}",
            event("stats", crate::cgroups::stats(&st.cgroup_paths))
        );
        return Ok(());
    }
    let store = g.store();
    let mut ooms = crate::cgroups::oom_kills(&st.cgroup_paths);
    let mut next = Instant::now();
    let out = std::io::stdout();
    loop {
        let n = crate::cgroups::oom_kills(&st.cgroup_paths);
        if n > ooms {
            ooms = n;
            let _ = writeln!(
                out.lock(),
                "{}",
                serde_json::json!({"type": "oom", "id": id})
            );
        }
        if Instant::now() >= next {
            if writeln!(
                out.lock(),
                "{}",
                event("stats", crate::cgroups::stats(&st.cgroup_paths))
            )
            .is_err()
            {
                return Ok(());
            }
            next += every;
        }
        if st.status(&store) == crate::state::Status::Stopped {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50).min(every));
    }
}
