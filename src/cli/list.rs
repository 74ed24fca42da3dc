//! `husk list [--format table|json] [--quiet]`.

use crate::container::Global;
use anyhow::Result;

pub fn run(g: &Global, format: &str, quiet: bool) -> Result<()> {
    let store = g.store();
    let mut states = vec![];
    for id in store.ids()? {
        if let Ok(st) = store.load(&id) {
            let status = st.status(&store);
            states.push((st, status));
        }
    }
    if quiet {
        for (st, _) in &states {
            crate::out!("{}", st.id);
        }
        return Ok(());
    }
    match format {
        "json" => {
            let v: Vec<_> = states.iter().map(|(s, st)| s.report(*st)).collect();
            crate::out!("{}", serde_json::to_string(&v)?);
        }
        _ => {
            let rows: Vec<[String; 6]> = states
                .iter()
                .map(|(s, st)| {
                    let r = s.report(*st);
                    [
                        r.id.to_string(),
                        r.pid.to_string(),
                        r.status.to_string(),
                        r.bundle.display().to_string(),
                        r.created.to_string(),
                        r.owner.to_string(),
                    ]
                })
                .collect();
            let head = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            let mut w = [0usize; 6];
            for r in std::iter::once(&head).chain(rows.iter()) {
                for (i, c) in r.iter().enumerate() {
                    w[i] = w[i].max(c.len());
                }
            }
            for r in std::iter::once(&head).chain(rows.iter()) {
                let line: Vec<String> = r
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        if i < 5 {
                            format!("{:<width$}", c, width = w[i] + 3)
                        } else {
                            c.clone()
                        }
                    })
                    .collect();
                crate::out!("{}", line.concat().trim_end());
            }
        }
    }
    Ok(())
}
