//! `#[etl::main]`: the program's `async fn main` run under etl's runner (`etl::cli::main`).
//!
//! ```text
//! #[etl::main]
//! async fn main(args: Args) -> etl::Result<()> { body }
//! ```
//! becomes
//! ```text
//! fn main() -> ::std::process::ExitCode {
//!     async fn main(args: Args) -> etl::Result<()> { body }
//!     ::etl::cli::main(main)
//! }
//! ```
//! (without an argument, `::etl::cli::main(|_: ::etl::cli::NoArgs| main())`).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn};

/// Expand `#[etl::main]` on `item` (attribute arguments `attr` must be empty).
pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut function: ItemFn = match syn::parse2(item) {
        Ok(f) => f,
        Err(e) => return e.to_compile_error(),
    };
    let name = function.sig.ident.clone();
    let error = |span, message: &str, help: &str| error(span, message, help, &name);
    if !attr.is_empty() {
        return error(attr.span(), "`#[etl::main]` takes no arguments", "write `#[etl::main]` alone");
    }
    if function.sig.asyncness.is_none() {
        return error(
            function.sig.fn_token.span(),
            "`#[etl::main]` needs an `async fn`",
            "write `#[etl::main] async fn main() -> etl::Result<()> { .. }`",
        );
    }
    let inputs: Vec<&FnArg> = function.sig.inputs.iter().collect();
    let call = match inputs.as_slice() {
        [] => {
            let name = &function.sig.ident;
            quote!(::etl::cli::main(|_: ::etl::cli::NoArgs| #name()))
        }
        [FnArg::Typed(_)] => {
            let name = &function.sig.ident;
            quote!(::etl::cli::main(#name))
        }
        [FnArg::Receiver(r)] => {
            return error(r.span(), "`#[etl::main]` goes on a free function", "remove `self`");
        }
        [_, second, ..] => {
            return error(
                second.span(),
                "`#[etl::main]`'s function takes at most one argument: the program's flags",
                "gather the flags in one `#[derive(clap::Args)]` struct: `async fn main(args: Args)`",
            );
        }
    };
    // The attributes (docs, `#[allow(..)]`) go on the `main` the program gets.
    let outer_attrs = std::mem::take(&mut function.attrs);
    let vis = &function.vis;
    let name = &function.sig.ident;
    quote! {
        #(#outer_attrs)*
        #vis fn #name() -> ::std::process::ExitCode {
            #function
            #call
        }
    }
}

/// The error, and an empty `fn main() {}` in place of the function so that rustc does not
/// add "`main` function not found".
fn error(span: proc_macro2::Span, message: &str, help: &str, name: &syn::Ident) -> TokenStream {
    let text = format!("{message}\nhelp: {help}");
    quote_spanned!(span=> ::core::compile_error!(#text); fn #name() {})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(t: TokenStream) -> String {
        t.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn without_arguments_the_runner_gets_no_flags() {
        let out = expand(
            TokenStream::new(),
            quote!(
                async fn main() -> etl::Result<()> {
                    Ok(())
                }
            ),
        );
        let out = norm(out);
        assert!(
            out.starts_with("fn main () -> :: std :: process :: ExitCode { async fn main () -> etl :: Result < () > { Ok (()) }"),
            "{out}"
        );
        assert!(out.contains(":: etl :: cli :: main (| _ : :: etl :: cli :: NoArgs | main ())"), "{out}");
    }

    #[test]
    fn one_argument_is_the_programs_flags() {
        let out = norm(expand(
            TokenStream::new(),
            quote!(
                pub async fn main(args: Args) -> etl::Result<()> {
                    run(args).await
                }
            ),
        ));
        assert!(out.starts_with("pub fn main () -> :: std :: process :: ExitCode"), "{out}");
        assert!(out.ends_with(":: etl :: cli :: main (main) }"), "{out}");
    }

    #[test]
    fn not_async_and_two_arguments_are_errors() {
        assert!(norm(expand(
            TokenStream::new(),
            quote!(
                fn main() {}
            )
        ))
        .contains("needs an `async fn`"));
        assert!(norm(expand(
            TokenStream::new(),
            quote!(
                async fn main(a: A, b: B) {}
            )
        ))
        .contains("at most one argument"));
    }
}
