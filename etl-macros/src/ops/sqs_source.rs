//! `sqs(queue_url = "..", wait_time_seconds = 20, ...) [as T]`: an Amazon SQS source (feature
//! `sqs`).

use super::{ArgSpec, Args, Category, Kind, Op, BATCH_ARGS};
use quote::{quote, quote_spanned};

/// The `sqs` source.
pub const OP: Op = Op {
    name: "sqs",
    category: Category::Source,
    positional: None,
    args: &[
        ArgSpec { name: "queue_url", kind: Kind::Str, required: true, default: None, doc: "The queue's URL (`${VAR}` resolved at start-up)." },
        ArgSpec { name: "endpoint_url", kind: Kind::Str, required: false, default: Some("AWS, or `AWS_ENDPOINT_URL`"), doc: "A custom endpoint (moto, LocalStack)." },
        ArgSpec { name: "region", kind: Kind::Str, required: false, default: Some("`AWS_REGION` / the profile"), doc: "The AWS region." },
        ArgSpec { name: "wait_time_seconds", kind: Kind::Int, required: false, default: Some("20"), doc: "Long-polling wait of one receive, 0 to 20 seconds." },
        ArgSpec { name: "visibility_timeout", kind: Kind::Duration, required: false, default: Some("the queue's"), doc: "How long received messages stay invisible; extended by a heartbeat while in flight." },
        ArgSpec { name: "max_receives", kind: Kind::Int, required: false, default: Some("no limit"), doc: "Dead-letter (then delete) a message received more times than this." },
        ArgSpec { name: "max_messages_per_poll", kind: Kind::Int, required: false, default: Some("10"), doc: "Messages asked for per receive, 1 to 10." },
        ArgSpec { name: "heartbeat", kind: Kind::Expr, required: false, default: Some("true"), doc: "Extend the visibility of messages in flight past half their timeout." },
    ],
    shared: BATCH_ARGS,
    accepts_as: true,
    doc: "Reads an SQS queue with long polling; deletes a batch's messages once it is delivered or dead-lettered, makes them visible again when it failed. Needs etl's `sqs` feature.",
    example: "sqs(queue_url = \"${QUEUE_URL}\", visibility_timeout = 60s, max_receives = 5, batch_size = 100) as Order | ...",
    gen,
};

fn gen(a: &Args<'_>) -> proc_macro2::TokenStream {
    let ty = a.record_type();
    let url = a.get("queue_url").map(|u| quote!(#u)).unwrap_or_else(|| quote!(""));
    let mut src = quote_spanned!(a.span=> ::etl::source::sqs::<#ty>(#url));
    for name in ["endpoint_url", "region", "wait_time_seconds", "visibility_timeout", "max_receives", "max_messages_per_poll", "heartbeat"]
    {
        if let Some(v) = a.get(name) {
            let method = syn::Ident::new(name, a.span);
            src = quote!(#src.#method(#v));
        }
    }
    quote_spanned!(a.span=> ::etl::__with_sqs!{ #src })
}
