//! The job form: `pipeline! { extract | transform | load }`, every step a bare name or path
//! without arguments (no source, operator or sink of the table, no `as`): stages run once on an
//! input value, `::etl::job::Job::new(extract).stage(transform).stage(load)`.
//!
//! Each `.stage(..)` call carries its stage's span, so a stage that does not take the previous
//! stage's output is rustc's error on that stage's token (the `JobStage` trait's message, with
//! its `help:` line). A stage named twice is this macro's error (checkpoints name stages).

use super::parse::{Ast, Head};
use crate::diagnostic::Diagnostics;
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;

/// The stages' paths, when the pipeline has the job form.
pub fn stages(ast: &Ast) -> Option<Vec<&syn::Path>> {
    let mut out = Vec::new();
    for step in &ast.steps {
        match step.as_ref()? {
            super::parse::Step { head: Head::Path { path, call: None }, as_type: None } => out.push(path),
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The job's builder calls, or the errors.
pub fn generate(stages: &[&syn::Path]) -> Result<TokenStream, Diagnostics> {
    let mut errors = Diagnostics::default();
    for (i, path) in stages.iter().enumerate() {
        let text = path.to_token_stream().to_string();
        if stages[..i].iter().any(|p| p.to_token_stream().to_string() == text) {
            errors.error(
                path.span(),
                format!("stage `{text}` appears twice in this job"),
                "checkpoints name a job's stages, so each stage runs once: write a second `#[stage]` function with its own name",
            );
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let first = stages[0];
    let mut job = quote_spanned!(first.span()=> ::etl::job::Job::new(#first));
    for path in &stages[1..] {
        job = quote_spanned!(path.span()=> #job.stage(#path));
    }
    Ok(quote!({ #job }))
}
