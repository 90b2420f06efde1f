//! `sqs(queue_url = "..")`: a sink sending each record as a JSON message to an Amazon SQS
//! queue (feature `sqs`).

use super::{ArgSpec, Args, Category, Kind, Op};
use quote::{quote, quote_spanned};

/// The `sqs` sink.
pub const OP: Op = Op {
    name: "sqs",
    category: Category::Sink,
    positional: None,
    args: &[
        ArgSpec { name: "queue_url", kind: Kind::Str, required: true, default: None, doc: "The queue's URL (`${VAR}` resolved at start-up)." },
        ArgSpec { name: "endpoint_url", kind: Kind::Str, required: false, default: Some("AWS, or `AWS_ENDPOINT_URL`"), doc: "A custom endpoint (moto, LocalStack)." },
        ArgSpec { name: "region", kind: Kind::Str, required: false, default: Some("`AWS_REGION` / the profile"), doc: "The AWS region." },
        ArgSpec { name: "max_message_bytes", kind: Kind::Int, required: false, default: Some("the queue's `MaximumMessageSize`"), doc: "Largest message body; larger records are dead-lettered." },
    ],
    shared: &[],
    accepts_as: false,
    doc: "Sends records as JSON messages with `SendMessageBatch`; failed entries are retried, refused ones dead-lettered. Needs etl's `sqs` feature.",
    example: "... | sqs(queue_url = \"${OUT_QUEUE_URL}\")",
    gen,
};

fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let url = a.get("queue_url").map(|u| quote!(#u)).unwrap_or_else(|| quote!(""));
    let mut sink = quote_spanned!(a.span=> ::etl::sink::sqs(#url));
    for name in ["endpoint_url", "region", "max_message_bytes"] {
        if let Some(v) = a.get(name) {
            let method = syn::Ident::new(name, a.span);
            sink = quote!(#sink.#method(#v));
        }
    }
    quote_spanned!(a.span=> ::etl::__with_sqs!{ #sink })
}
