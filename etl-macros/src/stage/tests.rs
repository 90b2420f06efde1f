//! Unit tests of `#[stage]`.

use super::*;

fn errors(args: TokenStream, item: TokenStream) -> Vec<String> {
    let out = expand(args, item).to_string();
    out.split("compile_error !").skip(1).map(|s| s.split(" }").next().unwrap_or_default().to_owned()).collect()
}

fn norm(t: TokenStream) -> String {
    t.to_string().replace(' ', "")
}

#[test]
fn generates_the_function_its_config_and_the_nested_original() {
    let out = norm(expand(
        quote!(retries = 5, backoff = 2.0, timeout = 500ms),
        quote! {
            /// Docs.
            #[tracing::instrument]
            pub async fn enrich(mut o: Order) -> Result<Order, etl::Error> { o.id += 1; Ok(o) }
        },
    ));
    let want = norm(quote! {
        #[doc = r" Docs."]
        pub fn enrich(__etl_record: Order) -> ::etl::stage::Call<impl ::core::future::Future<Output = Result<Order, etl::Error> > + ::core::marker::Send, enrich> {
            #[tracing::instrument]
            async fn enrich(mut o: Order) -> Result<Order, etl::Error> { o.id += 1; Ok(o) }
            let __etl_future = enrich(__etl_record);
            ::etl::__private::stage_call::<enrich, _>(__etl_future)
        }
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        pub struct enrich {}
        impl ::etl::stage::StageConfig for enrich {
            const OPTIONS: ::etl::stage::StageOptions = ::etl::stage::StageOptions::new("enrich")
                .retries(5)
                .backoff(::core::time::Duration::from_nanos(2000000000))
                .timeout(::core::time::Duration::from_nanos(500000000));
        }
    });
    assert_eq!(out, want);
}

#[test]
fn defaults_factor_and_constants() {
    let out = norm(expand(
        quote!(),
        quote!(
            async fn f(x: i64) -> Result<i64, String> {
                Ok(x)
            }
        ),
    ));
    assert!(out.contains("StageOptions::new(\"f\");"), "{out}");
    let out = norm(expand(
        quote!(retries = RETRIES, factor = 3, max_backoff = 1m),
        quote!(
            async fn f(x: i64) -> R {
                Ok(x)
            }
        ),
    ));
    assert!(out.contains(".retries(RETRIES).factor(3.0).max_backoff(::core::time::Duration::from_nanos(60000000000))"), "{out}");
}

#[test]
fn argument_errors() {
    let item = quote!(
        async fn f(x: i64) -> Result<i64, String> {
            Ok(x)
        }
    );
    let e = errors(quote!(retry = 3), item.clone());
    assert!(e[0].contains("unknown argument `retry` for `#[stage]`") && e[0].contains("did you mean `retries`?"), "{e:?}");
    let e = errors(quote!(retries = "x"), item.clone());
    assert!(e[0].contains("`retries` takes an integer, not `\\\"x\\\"`") && e[0].contains("help: write `retries = 3`"), "{e:?}");
    let e = errors(quote!(retries = -1), item.clone());
    assert!(e[0].contains("`retries` cannot be negative: `-1`") && e[0].contains("help: write `retries = 3`"), "{e:?}");
    let e = errors(quote!(backoff = -1s), item.clone());
    assert!(e[0].contains("`backoff` cannot be negative: `-1s`"), "{e:?}");
    let e = errors(quote!(backoff = 2x), item.clone());
    assert!(e[0].contains("unknown duration unit `x`"), "{e:?}");
    let e = errors(quote!(timeout = "5s"), item.clone());
    assert!(e[0].contains("`timeout` takes a duration"), "{e:?}");
    let e = errors(quote!(factor = 0.5), item.clone());
    assert!(e[0].contains("`factor` must be between"), "{e:?}");
    let e = errors(quote!(retries = 1, retries = 2), item.clone());
    assert!(e[0].contains("`retries` is given twice"), "{e:?}");
    let e = errors(quote!(retries), item.clone());
    assert!(e[0].contains("`retries` needs a value"), "{e:?}");
    let e = errors(quote!(3), item.clone());
    assert!(e[0].contains("expected `name = value` arguments"), "{e:?}");
    let e = errors(quote!(zzz = 1), item);
    assert!(e[0].contains("takes `retries`, `backoff`"), "{e:?}");
}

#[test]
fn function_errors() {
    let e = errors(
        quote!(),
        quote!(
            fn f(x: i64) -> Result<i64, String> {
                Ok(x)
            }
        ),
    );
    assert!(e[0].contains("`#[stage]` needs an `async fn`: `f` is not async"), "{e:?}");
    let e = errors(
        quote!(),
        quote!(
            struct S;
        ),
    );
    assert!(e[0].contains("`#[stage]` goes on an `async fn`"), "{e:?}");
    let e = errors(
        quote!(),
        quote!(
            async fn f<T>(x: T) -> Result<T, String> {
                Ok(x)
            }
        ),
    );
    assert!(e[0].contains("a stage cannot be generic"), "{e:?}");
    let e = errors(
        quote!(),
        quote!(
            async fn f(x: i64, y: i64) -> Result<i64, String> {
                Ok(x)
            }
        ),
    );
    assert!(e[0].contains("a stage takes one argument, the record: `f` takes 2"), "{e:?}");
    let e = errors(
        quote!(),
        quote!(
            async fn f() -> Result<i64, String> {
                Ok(1)
            }
        ),
    );
    assert!(e[0].contains("takes 0"), "{e:?}");
    let e = errors(
        quote!(),
        quote!(
            async fn f(&self) -> Result<i64, String> {
                Ok(1)
            }
        ),
    );
    assert!(e[0].contains("a stage is a free function"), "{e:?}");
    let e = errors(
        quote!(),
        quote!(
            async fn f(x: &Order) -> Result<i64, String> {
                Ok(1)
            }
        ),
    );
    assert!(e[0].contains("a stage takes its record by value") && e[0].contains("write `x: Order`"), "{e:?}");
    let e = errors(
        quote!(),
        quote!(
            async fn f(x: i64) {}
        ),
    );
    assert!(e[0].contains("a stage returns `Result<Out, E>`: `f` returns nothing"), "{e:?}");
    // All at once, and the function is still there (no follow-up "cannot find" errors).
    let out = expand(
        quote!(retry = 1),
        quote!(
            fn f(x: i64) -> Result<i64, String> {
                Ok(x)
            }
        ),
    )
    .to_string();
    assert_eq!(out.matches("compile_error").count(), 2, "{out}");
    assert!(out.contains("fn f (x : i64)"), "{out}");
}

/// The table of arguments in `#[stage]`'s documentation (`lib.rs`) lists each argument with
/// its default.
#[test]
fn the_documented_table_lists_every_argument_and_its_default() {
    let docs = include_str!("../lib.rs");
    for arg in ARGS {
        let row = docs.lines().find(|l| l.starts_with(&format!("/// | `{}` |", arg.name)));
        let Some(row) = row else { panic!("`{}` is not in the table", arg.name) };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[3].trim_matches('`'), arg.default, "{row}");
    }
}
