//! A small line diff for readable test failures.

/// Renders a line diff of `a` (labelled `a_name`, lines prefixed `-`) against `b` (`+`);
/// common lines are prefixed with a space. Very long outputs are shown in full instead.
pub fn line_diff(a_name: &str, a: &str, b_name: &str, b: &str) -> String {
    let al: Vec<&str> = a.split_inclusive('\n').collect();
    let bl: Vec<&str> = b.split_inclusive('\n').collect();
    let mut out = format!("--- {a_name}\n+++ {b_name}\n");
    if al.len() * bl.len() > 4_000_000 {
        out.push_str(&format!("(too long to diff)\n-{a:?}\n+{b:?}\n"));
        return out;
    }
    // lcs[i][j] = length of the longest common subsequence of al[i..] and bl[j..].
    let (n, m) = (al.len(), bl.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if al[i] == bl[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut push = |tag: char, line: &str| {
        out.push(tag);
        out.push_str(&show(line));
        out.push('\n');
    };
    while i < n || j < m {
        if i < n && j < m && al[i] == bl[j] {
            push(' ', al[i]);
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            push('-', al[i]);
            i += 1;
        } else {
            push('+', bl[j]);
            j += 1;
        }
    }
    out
}

/// One line for display: the trailing newline dropped, a missing one marked.
fn show(line: &str) -> String {
    match line.strip_suffix('\n') {
        Some(l) => l.to_string(),
        None => format!("{line}\\ (no newline at end)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_changed_lines() {
        let d = line_diff("a", "x\ny\nz\n", "b", "x\nY\nz\n");
        assert_eq!(d, "--- a\n+++ b\n x\n-y\n+Y\n z\n");
    }

    #[test]
    fn marks_missing_newline() {
        let d = line_diff("a", "x\n", "b", "x");
        assert!(d.contains("-x\n+x\\ (no newline at end)\n"), "{d}");
    }
}
