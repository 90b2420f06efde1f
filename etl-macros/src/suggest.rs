//! "Did you mean" suggestions: the candidates closest to a misspelt name by edit distance.

/// The edit distance between `a` and `b` in characters (insertions, deletions, substitutions,
/// and transpositions of two adjacent characters: `fliter` is one edit from `filter`).
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The candidates closest to `name`, if close enough to be what was meant.
pub fn close<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let max = match name.chars().count() {
        0..=3 => 1,
        4..=6 => 2,
        _ => 3,
    };
    let found: Vec<(usize, &str)> =
        candidates.into_iter().map(|c| (distance(&name.to_lowercase(), c), c)).filter(|(d, c)| *d <= max && *c != name).collect();
    let best = found.iter().map(|(d, _)| *d).min().unwrap_or(0);
    let mut out: Vec<&str> = found.into_iter().filter(|(d, _)| *d == best).map(|(_, c)| c).collect();
    out.dedup();
    out
}

/// `did you mean `x`?` / `did you mean one of `x`, `y`?`, or `None` when nothing is close.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let close = close(name, candidates);
    match close.as_slice() {
        [] => None,
        [one] => Some(format!("did you mean `{one}`?")),
        many => Some(format!("did you mean one of {}?", quoted(many))),
    }
}

/// `` `a`, `b`, `c` ``.
pub fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("filter", "filter"), 0);
        assert_eq!(distance("fliter", "filter"), 1);
        assert_eq!(distance("batchsize", "batch_size"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        let names = ["iter", "file", "map", "filter", "filter_map", "stdout"];
        assert_eq!(did_you_mean("fliter", names).as_deref(), Some("did you mean `filter`?"));
        assert_eq!(did_you_mean("mpa", names).as_deref(), Some("did you mean `map`?"));
        assert_eq!(did_you_mean("stdot", names).as_deref(), Some("did you mean `stdout`?"));
        assert_eq!(did_you_mean("kafka_consumer", names), None);
        assert_eq!(close("fille", names), ["file"]);
    }
}
