//! `s3(bucket = "..", format = "csv", key = "..")`: a sink writing each batch as one object in
//! an S3 bucket (feature `s3`).

use super::{ArgSpec, Args, Category, Kind, Op};
use quote::{quote, quote_spanned};

/// The `s3` sink.
pub const OP: Op = Op {
    name: "s3",
    category: Category::Sink,
    positional: None,
    args: &[
        ArgSpec { name: "bucket", kind: Kind::Str, required: true, default: None, doc: "The bucket (`${VAR}` resolved at start-up)." },
        ArgSpec {
            name: "key",
            kind: Kind::Str,
            required: false,
            default: Some("\"{date}/batch-{run}-{seq}.{ext}\""),
            doc: "Object key template: `{seq}`, `{run}`, `{first_position}`, `{date}`, `{hour}`, `{ext}`.",
        },
        ArgSpec {
            name: "format",
            kind: Kind::Format,
            required: false,
            default: Some("\"jsonl\""),
            doc: "`\"jsonl\"` or `\"csv\"` (with a header row).",
        },
        ArgSpec {
            name: "endpoint_url",
            kind: Kind::Str,
            required: false,
            default: Some("AWS, or `AWS_ENDPOINT_URL`"),
            doc: "A custom endpoint (moto, MinIO), with path-style addressing.",
        },
        ArgSpec { name: "region", kind: Kind::Str, required: false, default: Some("`AWS_REGION` / the profile"), doc: "The AWS region." },
    ],
    shared: &[],
    accepts_as: false,
    doc: "Writes each batch as one object (CSV or JSONL) with `PutObject`; a retried batch keeps its key. Needs etl's `s3` feature.",
    example: "... | s3(bucket = \"${BUCKET}\", format = \"csv\", key = \"orders/{date}/{first_position}-{seq}.{ext}\")",
    gen,
};

fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let bucket = a.get("bucket").map(|b| quote!(#b)).unwrap_or_else(|| quote!(""));
    let mut sink = quote_spanned!(a.span=> ::etl::sink::s3(#bucket));
    for name in ["key", "format", "endpoint_url", "region"] {
        if let Some(v) = a.get(name) {
            let method = syn::Ident::new(name, a.span);
            sink = quote!(#sink.#method(#v));
        }
    }
    quote_spanned!(a.span=> ::etl::__with_s3!{ #sink })
}
