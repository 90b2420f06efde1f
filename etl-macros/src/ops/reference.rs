//! The operator reference in Markdown, generated from [`TABLE`]: `docs/operators.md`.
//! (A proc-macro crate can export only macros, so a test writes the file; see below.)

use super::{Category, TABLE};

/// The features of `etl` on by default (its `Cargo.toml`; a test checks).
const DEFAULT_FEATURES: &[&str] = &["sse", "cli"];

/// The operator reference: one section per category, one table row per argument.
#[cfg_attr(not(test), allow(dead_code))]
pub fn markdown() -> String {
    let mut md = String::from("## `pipeline!` operator reference\n\n");
    md.push_str(
        "`SOURCE(args) [as Type] | OPERATOR(args) | ... | SINK(args)`. Arguments other than the positional one are `name = value`. \
         A string or integer argument is a literal or any Rust expression of that type (a variable holding a flag's value); \
         `${VAR}` in a string is resolved when the pipeline starts.\n",
    );
    for (category, title) in [(Category::Source, "Sources"), (Category::Operator, "Operators"), (Category::Sink, "Sinks")] {
        md.push_str(&format!("\n### {title}\n"));
        for op in TABLE.iter().filter(|op| op.category == category) {
            md.push_str(&format!("\n#### `{}`\n\n{}\n\n```text\n{}\n```\n", op.name, op.doc, op.example));
            if let Some(feature) = op.feature {
                let default = if DEFAULT_FEATURES.contains(&feature) { " (on by default)" } else { "" };
                md.push_str(&format!("\nNeeds etl's `{feature}` cargo feature{default}.\n"));
            }
            if op.accepts_as {
                md.push_str("\nMay be followed by `as Type`.\n");
            }
            if op.positional.is_none() && op.args.is_empty() && op.shared.is_empty() {
                md.push_str("\nNo arguments.\n");
                continue;
            }
            md.push_str("\n| argument | kind | required | default | description |\n|---|---|---|---|---|\n");
            if let Some(p) = &op.positional {
                md.push_str(&format!("| `{}` (positional) | {} | yes | | {} |\n", p.name, p.kind.describe(), p.doc));
            }
            for a in op.all_args() {
                let required = if a.required { "yes" } else { "no" };
                md.push_str(&format!("| `{}` | {} | {required} | {} | {} |\n", a.name, a.kind.describe(), a.default.unwrap_or(""), a.doc));
            }
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_lists_every_step_and_argument() {
        let md = markdown();
        for op in TABLE {
            assert!(md.contains(&format!("#### `{}`", op.name)), "{}", op.name);
            for a in op.all_args() {
                assert!(md.contains(&format!("`{}`", a.name)));
            }
        }
        assert!(md.contains("### Sources") && md.contains("### Operators") && md.contains("### Sinks"));
        assert!(md.contains("| `batch_timeout` | a duration"));
        assert!(md.contains("| `path` | a string | yes |"));
        assert!(md.contains("Needs etl's `sqs` cargo feature.\n") && md.contains("Needs etl's `sse` cargo feature (on by default).\n"));
    }

    #[test]
    fn default_features_are_etls() {
        let manifest = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml")).unwrap_or_default();
        let quoted: Vec<String> = DEFAULT_FEATURES.iter().map(|f| format!("\"{f}\"")).collect();
        assert!(
            manifest.contains(&format!("default = [{}]", quoted.join(", "))),
            "etl's default features changed: update DEFAULT_FEATURES"
        );
    }

    /// `docs/operators.md` is generated from the table, never edited by hand: this test fails
    /// when it is out of date; `ETL_UPDATE_DOCS=1 cargo test -p etl-macros` rewrites it.
    #[test]
    fn docs_operator_reference_is_up_to_date() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operators.md");
        let want = format!(
            "<!-- Generated from etl-macros/src/ops by `ETL_UPDATE_DOCS=1 cargo test -p etl-macros`; do not edit. -->\n\n{}",
            markdown()
        );
        if std::env::var_os("ETL_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &want).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(have == want, "docs/operators.md is out of date: run `ETL_UPDATE_DOCS=1 cargo test -p etl-macros`");
    }
}
