//! The table people read.

use std::fmt::Write;

use crate::Report;

pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "audit of {}", r.target);
    if r.findings.is_empty() {
        let _ = writeln!(s, "no findings");
    } else {
        let _ = writeln!(s, "{:<9} {:<24} FINDING", "SEVERITY", "ID");
    }
    for f in &r.findings {
        let _ = writeln!(s, "{:<9} {:<24} {}", f.severity.as_str(), f.id, f.title);
        let _ = writeln!(s, "{:<34} risk: {}", "", f.risk);
        let _ = writeln!(s, "{:<34} fix:  {}", "", f.fix);
    }
    let _ = writeln!(
        s,
        "verdict: {} (Pod Security Standards)",
        r.verdict.as_str()
    );
    s
}
