//! `husk ps [--format table|json] ID [PS_ARGS...]`: the container's processes.

use crate::container::{self, Global};
use anyhow::{bail, Context, Result};

pub fn run(g: &Global, id: &str, format: &str, ps_args: &[String]) -> Result<()> {
    let (st, _) = container::live_state(g, id)?;
    let pids = container::container_pids(&st);
    if format == "json" {
        crate::out!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default();
    let col = head
        .split_whitespace()
        .position(|c| c == "PID")
        .ok_or_else(|| anyhow::anyhow!("ps output has no PID column: {head}"))?;
    crate::out!("{head}");
    for l in lines {
        if let Some(p) = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok())
        {
            if pids.contains(&p) {
                crate::out!("{l}");
            }
        }
    }
    Ok(())
}
