//! Schema steps on typed records: `rename`, `select`, `drop` and `into` on `#[derive(Record)]`
//! structs, checked at compile time against the fields their schema macros sent.
//!
//! [`walk`] follows the record type from step to step (`as Type`, `map(..) as Type`,
//! `into(Type)`, the shapes the schema steps produce). When a step needs a record's fields that
//! have not arrived yet, it answers [`Outcome::Need`] with that type (`pipeline!` then calls the
//! type's schema macro, which calls back with the fields prepended, and the walk starts again).
//! With every schema at hand it checks each step, reporting every error on the user's token, and
//! generates:
//!
//! * for `rename` / `select` / `drop`, a record type (hidden in the pipeline's block, named
//!   `__{Record}{Step}{position}`) whose fields are typed through the original record
//!   (`<Order as ::etl::__private::FieldType<N>>::Type`) and keep their serde names and options,
//!   and a `map` that moves the fields over: the old record is destructured by the user's field
//!   tokens, so rustc re-checks every name on them;
//! * for `into(Type)`, a `map` that moves the fields into `Type`'s struct literal by name, each
//!   value through `::etl::__private::into_field` so a type mismatch is an error naming the field.
//!
//! Closures after a schema step that read a field renamed away or removed (`|o| o.amount_cents`)
//! are reported by the macro with the field's new name, when the closure is written in place.

use super::check::{is_json, Checked, What};
use super::schema::{Options, RecordSchema};
use super::suggest;
use crate::ops::{Category, FieldRef, Value};
use crate::record::{self, FieldDef, RecordDef};
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use std::rc::Rc;
use syn::Ident;

/// What [`walk`] found.
pub enum Outcome {
    /// The fields of this record type are needed next.
    Need(syn::Path),
    /// Every schema needed is there.
    Done(Typed),
}

/// The typed steps, checked and generated.
#[derive(Default)]
pub struct Typed {
    /// Generated record types, placed in the pipeline's block.
    pub items: Vec<TokenStream>,
    /// Builder-method suffixes (`.map(..)`) replacing the table's generator, by step position.
    pub ops: Vec<(usize, TokenStream)>,
    /// Errors, each on the user's token.
    pub errors: Vec<syn::Error>,
}

impl Typed {
    /// The generated operator of the step at `index`, if any.
    pub fn op(&self, index: usize) -> Option<&TokenStream> {
        self.ops.iter().find(|(i, _)| *i == index).map(|(_, t)| t)
    }
}

/// Why a field is no longer there.
#[derive(Clone)]
enum Why {
    /// A `rename` renamed it to this.
    Renamed(String),
    /// This step (`select` or `drop`) removed it.
    Removed(&'static str),
    /// `into(Type)` converted the record to a type without it.
    Into(String),
}

/// One field of the record at some point of the pipeline.
#[derive(Clone)]
struct Field {
    /// Its Rust name here.
    rust: String,
    /// The name serde writes here.
    serde: String,
    /// The user's record type it comes from (its `FieldType<index>` gives the Rust type).
    origin: Rc<syn::Type>,
    /// Its declaration position in `origin`.
    index: usize,
    /// Its type as written in `origin`, for the generated schema.
    ty: String,
    /// The serde options it keeps.
    options: Options,
    /// Whether a `rename` gave it its name (then `alias`es no longer apply).
    renamed: bool,
}

/// The record at some point of the pipeline, with its fields known.
#[derive(Clone)]
struct Shape {
    /// The type in type position (`Order`, `shop::Page<i64>`, `__OrderRename2`).
    ty: TokenStream,
    /// The same as a struct path for patterns and literals (`shop::Page::<i64>`).
    path: TokenStream,
    /// How messages name it: "`Order`", "the record after `rename`".
    label: String,
    /// The user's record name the generated types are named after.
    base: String,
    /// Its fields, in serialisation order.
    fields: Vec<Field>,
    /// Fields that earlier steps renamed away or removed, newest last.
    gone: Vec<(String, Why)>,
    /// Fields of the user's struct that serde skips (`into` fills them with `Default`).
    skipped: Vec<String>,
}

impl Shape {
    fn names(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.rust.as_str()).collect()
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.rust == name)
    }

    fn gone(&self, name: &str) -> Option<&Why> {
        self.gone.iter().rev().find(|(n, _)| n == name).map(|(_, w)| w)
    }
}

/// The record type flowing at a point of the pipeline, as far as the macro can tell.
#[derive(Clone)]
enum Flow {
    /// `Json`: schema steps run at run time.
    Json,
    /// Not declared: left to rustc (schema steps are the `Json` ones).
    Unknown,
    /// After an error: nothing more is checked, so no error follows from another.
    Broken,
    /// A type named by the user, fields not fetched yet.
    Named(Rc<syn::Type>),
    /// A declared type that is not a struct path (a tuple, a reference, ...).
    Opaque,
    /// Fields known.
    Shape(Shape),
    /// After a `map` without `as`, assumed to be the record type before it (`Named` or
    /// `Shape`): a later schema step uses it, and rustc checks the assumption on the closure
    /// the step generates (`|r: Type| ...`). Closures are not checked under it.
    Assumed(Box<Flow>),
}

fn flow_of(ty: &syn::Type) -> Flow {
    match ty {
        _ if is_json(ty) => Flow::Json,
        syn::Type::Path(p) if p.qself.is_none() => Flow::Named(Rc::new(ty.clone())),
        syn::Type::Group(g) => flow_of(&g.elem),
        syn::Type::Paren(p) => flow_of(&p.elem),
        _ => Flow::Opaque,
    }
}

fn first_span(tokens: &impl ToTokens) -> Span {
    tokens.to_token_stream().into_iter().next().map_or_else(Span::call_site, |t| t.span())
}

fn err(span: Span, msg: impl std::fmt::Display, help: impl std::fmt::Display) -> syn::Error {
    syn::Error::new(span, format!("{msg}\nhelp: {help}"))
}

/// A field name as an identifier (raw when it is a keyword: `r#type`).
fn field_ident(name: &str, span: Span) -> Ident {
    match syn::parse_str::<Ident>(name) {
        Ok(_) => Ident::new(name, span),
        Err(_) => Ident::new_raw(name, span),
    }
}

/// `shop::Page<i64>` as an expression/pattern path: `shop::Page::<i64>`.
fn struct_path(ty: &syn::Type) -> TokenStream {
    match ty {
        syn::Type::Path(p) => {
            let mut p = p.clone();
            for seg in &mut p.path.segments {
                if let syn::PathArguments::AngleBracketed(a) = &mut seg.arguments {
                    a.colon2_token = Some(Default::default());
                }
            }
            p.into_token_stream()
        }
        syn::Type::Group(g) => struct_path(&g.elem),
        syn::Type::Paren(p) => struct_path(&p.elem),
        other => other.into_token_stream(),
    }
}

fn type_path(ty: &syn::Type) -> Option<&syn::Path> {
    match ty {
        syn::Type::Path(p) => Some(&p.path),
        syn::Type::Group(g) => type_path(&g.elem),
        syn::Type::Paren(p) => type_path(&p.elem),
        _ => None,
    }
}

fn quoted(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        suggest::quoted(names)
    }
}

struct Walker<'a> {
    schemas: &'a [&'a RecordSchema],
    /// The types whose schemas were asked for, in order (by their tokens' text).
    requests: Vec<String>,
    out: Typed,
}

impl Walker<'_> {
    /// The fields of `ty`, or the type to fetch.
    fn shape(&mut self, ty: &Rc<syn::Type>) -> Result<Shape, syn::Path> {
        let key = ty.to_token_stream().to_string();
        let at = match self.requests.iter().position(|r| *r == key) {
            Some(at) => at,
            None => {
                self.requests.push(key);
                self.requests.len() - 1
            }
        };
        let Some(schema) = self.schemas.get(at) else {
            return Err(type_path(ty).cloned().expect("a named flow is a path"));
        };
        let base = type_path(ty).and_then(|p| p.segments.last()).map(|s| s.ident.to_string()).unwrap_or_default();
        let base = base.trim_start_matches("r#").to_owned();
        Ok(Shape {
            ty: ty.to_token_stream(),
            path: struct_path(ty),
            label: format!("`{}`", type_text(ty)),
            base,
            fields: schema
                .fields
                .iter()
                .map(|f| Field {
                    rust: f.rust_name.clone(),
                    serde: f.serde_name.clone(),
                    origin: Rc::clone(ty),
                    index: f.index,
                    ty: f.ty.clone(),
                    options: f.options.clone(),
                    renamed: false,
                })
                .collect(),
            gone: Vec::new(),
            skipped: schema.skipped.clone(),
        })
    }

    fn error(&mut self, e: syn::Error) {
        self.out.errors.push(e);
    }
}

fn type_text(ty: &syn::Type) -> String {
    record::type_text(ty)
}

/// Follow the record type through `steps`, with the schemas received so far (in the order
/// they were asked for).
pub fn walk(steps: &[Checked], schemas: &[&RecordSchema]) -> Outcome {
    let mut w = Walker { schemas, requests: Vec::new(), out: Typed::default() };
    let mut flow = Flow::Unknown;
    let mut expected = 0;
    for step in steps {
        if step.index != expected {
            // A step that did not parse or resolve: its error is reported; check no further.
            flow = Flow::Broken;
        }
        expected = step.index + 1;
        match walk_step(&mut w, step, flow) {
            Ok(next) => flow = next,
            Err(path) => return Outcome::Need(path),
        }
    }
    Outcome::Done(w.out)
}

fn walk_step(w: &mut Walker<'_>, step: &Checked, flow: Flow) -> Result<Flow, syn::Path> {
    let declared = step.as_type.as_ref().map(flow_of);
    let (op, positional) = match &step.what {
        What::User { .. } => return Ok(declared.unwrap_or(Flow::Unknown)),
        What::Builtin { op, positional, .. } => (op, positional),
    };
    match (op.category, op.name) {
        (Category::Source, "file") => Ok(declared.unwrap_or(Flow::Json)),
        (Category::Source, _) => Ok(declared.unwrap_or(Flow::Unknown)),
        (Category::Sink, _) => Ok(flow),
        (_, "filter" | "inspect") => {
            closures(w, step, &flow, positional);
            Ok(flow)
        }
        (_, "map") => {
            closures(w, step, &flow, positional);
            Ok(match (declared, flow) {
                (Some(declared), _) => declared,
                (None, flow @ (Flow::Named(_) | Flow::Shape(_))) => Flow::Assumed(Box::new(flow)),
                (None, flow @ Flow::Assumed(_)) => flow,
                (None, _) => Flow::Unknown,
            })
        }
        (_, "filter_map" | "flat_map") => {
            closures(w, step, &flow, positional);
            Ok(Flow::Unknown)
        }
        (_, name @ ("rename" | "select" | "drop")) => {
            let flow = match flow {
                Flow::Assumed(flow) => *flow,
                flow => flow,
            };
            let empty = match positional.first() {
                Some(Value::Renames(r)) => r.is_empty(),
                Some(Value::Fields(f)) => f.is_empty(),
                _ => false,
            };
            if empty {
                let fields = match &flow {
                    Flow::Named(ty) => Some(w.shape(ty)?),
                    Flow::Shape(shape) => Some(shape.clone()),
                    _ => None,
                };
                w.error(empty_list(step, name, fields.as_ref()));
                return Ok(Flow::Broken);
            }
            let shape = match flow {
                Flow::Json | Flow::Unknown | Flow::Broken => return Ok(flow),
                Flow::Opaque => {
                    w.error(err(
                        step.span,
                        format!("`{name}` needs a record struct here"),
                        "the record type declared upstream is not a `#[derive(Record)]` struct; `map(..) as MyRecord` to one first",
                    ));
                    return Ok(Flow::Broken);
                }
                Flow::Named(ty) => w.shape(&ty)?,
                Flow::Shape(shape) => shape,
                Flow::Assumed(_) => unreachable!("unwrapped above"),
            };
            let Some(value) = positional.first() else { return Ok(Flow::Broken) };
            let next = match (name, value) {
                ("rename", Value::Renames(pairs)) => rename(w, &shape, pairs),
                ("select", Value::Fields(fields)) => select(w, &shape, fields),
                ("drop", Value::Fields(fields)) => drop_fields(w, step, &shape, fields),
                _ => None,
            };
            let Some(next) = next else { return Ok(Flow::Broken) };
            let op_name = match name {
                "rename" => "Rename",
                "select" => "Select",
                _ => "Drop",
            };
            let generated = format_ident(&format!("__{}{op_name}{}", next.0.base, step.index), step.span);
            Ok(Flow::Shape(generate(w, step, &shape, next, generated, name)))
        }
        (_, "into") => {
            let Some(Value::Type(target)) = positional.first() else { return Ok(Flow::Broken) };
            let flow = match flow {
                Flow::Assumed(flow) => *flow,
                flow => flow,
            };
            let shape = match flow {
                Flow::Broken => return Ok(Flow::Broken),
                Flow::Json => return Ok(flow_of(target)),
                Flow::Unknown => {
                    w.error(err(
                        step.span,
                        "`into` needs to know the record type here",
                        "name it upstream: `iter(items) as Order`, or `map(..) as Order`",
                    ));
                    return Ok(Flow::Broken);
                }
                Flow::Opaque => {
                    w.error(err(step.span, "`into` needs a record struct here", "`map` to a `#[derive(Record)]` struct first"));
                    return Ok(Flow::Broken);
                }
                Flow::Named(ty) => w.shape(&ty)?,
                Flow::Shape(shape) => shape,
                Flow::Assumed(_) => unreachable!("unwrapped above"),
            };
            let target_ty = match flow_of(target) {
                Flow::Named(ty) => ty,
                Flow::Json => {
                    w.error(err(first_span(target), "`into(Json)` is not supported yet", "use `map(|r| ...)` to build a `Json`"));
                    return Ok(Flow::Broken);
                }
                _ => {
                    w.error(err(first_span(target), "`into` takes a `#[derive(Record)]` struct", "write `into(MyRecord)`"));
                    return Ok(Flow::Broken);
                }
            };
            let target_shape = w.shape(&target_ty)?;
            match into(w, step, &shape, &target_ty, &target_shape) {
                Some(mut next) => {
                    next.gone = shape.gone.clone();
                    for f in &shape.fields {
                        if next.position(&f.rust).is_none() {
                            next.gone.push((f.rust.clone(), Why::Into(type_text(&target_ty))));
                        }
                    }
                    Ok(Flow::Shape(next))
                }
                None => Ok(Flow::Broken),
            }
        }
        _ => Ok(Flow::Unknown),
    }
}

fn format_ident(name: &str, span: Span) -> Ident {
    Ident::new(name, span)
}

/// `select()`, `drop()`, `rename()`: what to write, with the fields when they are known.
fn empty_list(step: &Checked, name: &str, shape: Option<&Shape>) -> syn::Error {
    let (msg, example) = match name {
        "rename" => ("`rename` needs at least one `old -> new`", "rename(ts -> timestamp)"),
        "select" => ("`select` needs at least one field to keep", "select(id, title)"),
        _ => ("`drop` needs at least one field to remove", "drop(internal_id)"),
    };
    let help = match shape {
        Some(shape) => format!("write e.g. `{example}`; the fields of {} are {}", shape.label, quoted(&shape.names())),
        None => format!("write e.g. `{example}`"),
    };
    err(step.span, msg, help)
}

/// The error for a field `name` that `shape` does not have, in step `step`.
fn missing(shape: &Shape, name: &str, span: Span, step: &str, this_step: &[(String, String)]) -> syn::Error {
    if let Some((_, to)) = this_step.iter().find(|(from, _)| from == name) {
        return err(
            span,
            format!("field `{name}` is renamed twice"),
            format!("this `rename` already renamed `{name}` to `{to}`; to rename it again, write `{to} -> ...`"),
        );
    }
    match shape.gone(name) {
        Some(Why::Renamed(to)) => err(
            span,
            format!("no field `{name}` in {}: an earlier `rename` renamed it to `{to}`", shape.label),
            format!("use its new name `{to}`"),
        ),
        Some(Why::Removed(by)) => err(
            span,
            format!("no field `{name}` in {}: an earlier `{by}` removed it", shape.label),
            format!("keep it in that `{by}`, or use it before that step"),
        ),
        Some(Why::Into(ty)) => err(
            span,
            format!("no field `{name}` in {}", shape.label),
            format!("`{ty}` has no field `{name}`; its fields are {}", quoted(&shape.names())),
        ),
        None => {
            let help = suggest::did_you_mean(name, shape.names())
                .unwrap_or_else(|| format!("the fields of {} are {}", shape.label, quoted(&shape.names())));
            err(span, format!("unknown field `{name}` in `{step}`: {} has no field `{name}`", shape.label), help)
        }
    }
}

/// Typed records take field names; a dotted path or a literal is an error.
fn simple(w: &mut Walker<'_>, f: &FieldRef, step: &str) -> bool {
    if !f.simple {
        w.error(err(
            f.span,
            format!("`{step}` on a typed record takes field names, not `{}`", f.path),
            "name a field of the struct (nested fields of typed records are reached with `map`)",
        ));
    }
    f.simple
}

/// The new shape; per new field, its position in the old shape and the user's token for its
/// name (if this step names it); per old field, the user's token for its name, if any. Fields
/// without a token of the user's get the step's span.
type Next = (Shape, Vec<(usize, Option<Span>)>, Vec<Option<Span>>);

fn rename(w: &mut Walker<'_>, shape: &Shape, pairs: &[(FieldRef, FieldRef)]) -> Option<Next> {
    let mut fields = shape.fields.clone();
    let mut spans: Vec<Option<Span>> = vec![None; fields.len()];
    let mut old_spans: Vec<Option<Span>> = vec![None; fields.len()];
    let mut done: Vec<(String, String)> = Vec::new();
    let mut gone = shape.gone.clone();
    let mut ok = true;
    for (from, to) in pairs {
        if !(simple(w, from, "rename") & simple(w, to, "rename")) {
            ok = false;
            continue;
        }
        if matches!(to.path.as_str(), "self" | "Self" | "super" | "crate" | "_") {
            w.error(err(
                to.span,
                format!("`{}` cannot name a field of a Rust struct", to.path),
                format!("choose another name; to write the column as `{}`, `map` into a record of your own whose field has `#[serde(rename = \"{}\")]`", to.path, to.path),
            ));
            ok = false;
            continue;
        }
        let current = Shape { fields: fields.clone(), ..shape.clone() };
        let Some(at) = current.position(&from.path) else {
            w.error(missing(shape, &from.path, from.span, "rename", &done));
            ok = false;
            continue;
        };
        if from.path == to.path {
            w.error(err(to.span, format!("`{}` is renamed to itself", from.path), format!("remove `{0} -> {0}`", from.path)));
            ok = false;
            continue;
        }
        if current.position(&to.path).is_some() {
            w.error(err(
                to.span,
                format!("cannot rename `{}` to `{}`: {} already has a field `{}`", from.path, to.path, shape.label, to.path),
                format!("drop or rename the existing `{0}` first (`drop({0})`), or choose another name", to.path),
            ));
            ok = false;
            continue;
        }
        let f = &mut fields[at];
        f.rust = to.path.clone();
        f.serde = to.path.clone();
        f.renamed = true;
        spans[at] = Some(to.span);
        old_spans[at].get_or_insert(from.span);
        gone.retain(|(n, _)| *n != to.path);
        gone.push((from.path.clone(), Why::Renamed(to.path.clone())));
        done.push((from.path.clone(), to.path.clone()));
    }
    if !ok {
        return None;
    }
    let map = spans.into_iter().enumerate().collect();
    Some((Shape { fields, gone, ..shape.clone() }, map, old_spans))
}

/// Check `fields` of a `select`/`drop`: each a field of `shape`, none twice.
fn named_fields(w: &mut Walker<'_>, shape: &Shape, fields: &[FieldRef], step: &'static str) -> Option<Vec<(usize, Span)>> {
    let mut ok = true;
    let mut out: Vec<(usize, Span)> = Vec::new();
    for f in fields {
        if !simple(w, f, step) {
            ok = false;
            continue;
        }
        let Some(at) = shape.position(&f.path) else {
            w.error(missing(shape, &f.path, f.span, step, &[]));
            ok = false;
            continue;
        };
        if out.iter().any(|(i, _)| *i == at) {
            w.error(err(f.span, format!("`{}` is named twice in this `{step}`", f.path), "keep one"));
            ok = false;
            continue;
        }
        out.push((at, f.span));
    }
    ok.then_some(out)
}

fn select(w: &mut Walker<'_>, shape: &Shape, fields: &[FieldRef]) -> Option<Next> {
    let chosen = named_fields(w, shape, fields, "select")?;
    let mut gone = shape.gone.clone();
    let mut old = vec![None; shape.fields.len()];
    for (i, f) in shape.fields.iter().enumerate() {
        match chosen.iter().find(|(at, _)| *at == i) {
            Some((_, span)) => old[i] = Some(*span),
            None => gone.push((f.rust.clone(), Why::Removed("select"))),
        }
    }
    let new = chosen.iter().map(|(at, _)| shape.fields[*at].clone()).collect();
    let chosen = chosen.into_iter().map(|(at, span)| (at, Some(span))).collect();
    Some((Shape { fields: new, gone, ..shape.clone() }, chosen, old))
}

fn drop_fields(w: &mut Walker<'_>, step: &Checked, shape: &Shape, fields: &[FieldRef]) -> Option<Next> {
    let dropped = named_fields(w, shape, fields, "drop")?;
    if dropped.len() == shape.fields.len() {
        w.error(err(
            step.span,
            format!("`drop` removes every field of {}", shape.label),
            "keep at least one field; to discard records, use `filter`",
        ));
        return None;
    }
    let mut gone = shape.gone.clone();
    let mut kept = Vec::new();
    let mut old = vec![None; shape.fields.len()];
    for (i, f) in shape.fields.iter().enumerate() {
        match dropped.iter().find(|(at, _)| *at == i) {
            Some((_, span)) => {
                gone.push((f.rust.clone(), Why::Removed("drop")));
                old[i] = Some(*span);
            }
            None => kept.push((i, None)),
        }
    }
    let new = kept.iter().map(|(at, _)| shape.fields[*at].clone()).collect();
    Some((Shape { fields: new, gone, ..shape.clone() }, kept, old))
}

/// The generated record type for `next`, and the `map` into it; the shape it is.
fn generate(w: &mut Walker<'_>, step: &Checked, old: &Shape, next: Next, ident: Ident, name: &str) -> Shape {
    let (mut shape, map, old_spans) = next;
    let span = step.span;
    let or_step = |s: Option<Span>| s.unwrap_or(span);
    w.out.items.push(record_type(&ident, &shape.fields));

    // The `map`: destructure the old record by name, build the new one.
    let record = Ident::new("__etl_record", Span::mixed_site());
    let mut pattern = Vec::new();
    let mut literal = Vec::new();
    for (k, ((at, new_span), f)) in map.iter().zip(&shape.fields).enumerate() {
        let bind = Ident::new(&format!("__etl_{k}"), Span::mixed_site());
        let old_name = field_ident(&old.fields[*at].rust, or_step(old_spans[*at]));
        let new_name = field_ident(&f.rust, or_step(*new_span));
        pattern.push(quote!(#old_name: #bind));
        literal.push(quote!(#new_name: #bind));
    }
    // Fields the user named that do not go on (`drop(x)`): in the pattern too, so that rustc
    // checks those names on the user's tokens as well.
    for (i, span) in old_spans.iter().enumerate() {
        if let (Some(span), false) = (span, map.iter().any(|(at, _)| *at == i)) {
            let name = field_ident(&old.fields[i].rust, *span);
            pattern.push(quote!(#name: _));
        }
    }
    let (old_ty, old_path) = (&old.ty, &old.path);
    w.out.ops.push((
        step.index,
        quote_spanned! {span=>
            .map(|#record: #old_ty| -> #ident {
                let #old_path { #(#pattern,)* .. } = #record;
                #ident { #(#literal),* }
            })
        },
    ));
    shape.ty = ident.to_token_stream();
    shape.path = ident.to_token_stream();
    shape.skipped = Vec::new();
    shape.label = format!("the record after `{name}`");
    shape
}

/// A record type with `fields`: serde derives (the fields' serde names and options), `Record`,
/// and `Clone` / `Debug` when every field has them.
fn record_type(ident: &Ident, fields: &[Field]) -> TokenStream {
    let mut defs = Vec::new();
    let mut field_tys = Vec::new();
    let mut names = Vec::new();
    for f in fields {
        let origin = &*f.origin;
        let n = f.index;
        let ty = quote!(<#origin as ::etl::__private::FieldType<#n>>::Type);
        let name = field_ident(&f.rust, ident.span());
        let serde_name = &f.serde;
        let helper = |tr: &str, func: &str| {
            let text = format!("<{} as ::etl::__private::{tr}<{n}>>::{func}", origin.to_token_stream());
            syn::LitStr::new(&text, first_span(origin))
        };
        let mut attrs = vec![quote!(rename = #serde_name)];
        let o = &f.options;
        if o.default {
            attrs.push(quote!(default));
        }
        if o.default_with {
            let p = helper("FieldDefault", "default");
            attrs.push(quote!(default = #p));
        }
        if o.skip_serializing_if {
            let p = helper("FieldSkipIf", "skip_serializing_if");
            attrs.push(quote!(skip_serializing_if = #p));
        }
        if o.serialize_with {
            let p = helper("FieldSerializeWith", "serialize_with");
            attrs.push(quote!(serialize_with = #p));
        }
        if o.deserialize_with {
            let p = helper("FieldDeserializeWith", "deserialize_with");
            attrs.push(quote!(deserialize_with = #p));
        }
        if o.skip_deserializing {
            attrs.push(quote!(skip_deserializing));
        }
        if !f.renamed {
            for alias in &o.aliases {
                attrs.push(quote!(alias = #alias));
            }
        }
        defs.push(quote!(#[serde(#(#attrs),*)] #name: #ty));
        field_tys.push(ty);
        names.push(name);
    }
    let def = RecordDef {
        ident: ident.clone(),
        vis: syn::Visibility::Inherited,
        generics: syn::Generics::default(),
        fields: fields
            .iter()
            .zip(&field_tys)
            .zip(&names)
            .map(|((f, ty), name)| FieldDef {
                ident: name.clone(),
                index: f.index,
                name: f.serde.clone(),
                rust_name: f.rust.clone(),
                ty: syn::parse2(ty.clone()).expect("a projection is a type"),
                ty_text: f.ty.clone(),
                serde: Default::default(),
            })
            .collect(),
        skipped: Vec::new(),
    };
    let record_impl = record::expand(&def);
    let shown = ident.to_string().trim_start_matches('_').to_owned();
    // `for<'__etl>` makes each bound non-trivial: where a field is not `Clone` (or `Debug`),
    // the impl does not apply, instead of being an error.
    quote! {
        #[allow(non_camel_case_types, dead_code)]
        #[derive(::etl::__private::serde::Serialize, ::etl::__private::serde::Deserialize)]
        #[serde(crate = "::etl::__private::serde")]
        struct #ident { #(#defs),* }
        #record_impl
        #[automatically_derived]
        impl ::core::clone::Clone for #ident where #(for<'__etl> #field_tys: ::core::clone::Clone),* {
            fn clone(&self) -> Self { #ident { #(#names: ::core::clone::Clone::clone(&self.#names)),* } }
        }
        #[automatically_derived]
        impl ::core::fmt::Debug for #ident where #(for<'__etl> #field_tys: ::core::fmt::Debug),* {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#shown) #(.field(::core::stringify!(#names), &self.#names))* .finish()
            }
        }
    }
}

/// `into(Type)`: every field of `Type` (but those serde skips) must be here, and nothing else.
fn into(w: &mut Walker<'_>, step: &Checked, shape: &Shape, target: &Rc<syn::Type>, target_shape: &Shape) -> Option<Shape> {
    let at = first_span(&**target);
    let name = type_text(target);
    let mut ok = true;
    let missing_names: Vec<&str> = target_shape.names().into_iter().filter(|n| shape.position(n).is_none()).collect();
    let extra_names: Vec<&str> = shape.names().into_iter().filter(|n| target_shape.position(n).is_none()).collect();
    for m in &missing_names {
        let help = match (shape.gone(m), suggest::did_you_mean(m, extra_names.iter().copied())) {
            (_, Some(_)) => {
                let close = suggest::close(m, extra_names.iter().copied());
                format!("did you mean to rename it first: `rename({} -> {m})`?", close[0])
            }
            (Some(Why::Renamed(to)), None) => format!("an earlier `rename` renamed `{m}` to `{to}`"),
            (Some(Why::Removed(by)), None) => format!("an earlier `{by}` removed `{m}`; keep it there"),
            _ => format!("the fields here are {}; add `{m}` with a `map` to a struct of your own", quoted(&shape.names())),
        };
        w.error(err(at, format!("`into({name})`: field `{m}` of `{name}` is missing in {}", shape.label), help));
        ok = false;
    }
    for x in &extra_names {
        let help = match suggest::did_you_mean(x, missing_names.iter().copied()) {
            Some(_) => format!("did you mean to rename it: `rename({x} -> {})`?", suggest::close(x, missing_names.iter().copied())[0]),
            None => format!("`{name}` has no field `{x}`; remove it first with `drop({x})`"),
        };
        w.error(err(at, format!("`into({name})`: field `{x}` has no place in `{name}`"), help));
        ok = false;
    }
    if !ok {
        return None;
    }
    let record = Ident::new("__etl_record", Span::mixed_site());
    let target_path = struct_path(target);
    let target_ty = &**target;
    let mut pattern = Vec::new();
    let mut literal = Vec::new();
    for (k, f) in shape.fields.iter().enumerate() {
        let bind = Ident::new(&format!("__etl_{k}"), Span::mixed_site());
        let old_name = field_ident(&f.rust, step.span);
        let new_name = field_ident(&f.rust, at);
        let marker = field_ident(&f.rust, step.span);
        pattern.push(quote!(#old_name: #bind));
        // The target field's type, explicit: inferred, it would be taken from the value (the
        // blanket impl is the only one) and the mismatch reported as a bare E0308.
        let n = target_shape.fields[target_shape.position(&f.rust).expect("checked above")].index;
        let want = quote!(<#target_ty as ::etl::__private::FieldType<#n>>::Type);
        let infer = quote_spanned!(at=> _);
        literal.push(quote! {
            #new_name: {
                #[allow(non_camel_case_types, dead_code)]
                enum #marker {}
                ::etl::__private::into_field::<#target_ty, #marker, #want, #infer>(#bind)
            }
        });
    }
    for s in &target_shape.skipped {
        let s = field_ident(s, at);
        literal.push(quote!(#s: ::core::default::Default::default()));
    }
    let (old_ty, old_path) = (&shape.ty, &shape.path);
    w.out.ops.push((
        step.index,
        quote_spanned! {step.span=>
            .map(|#record: #old_ty| -> #target_ty {
                let #old_path { #(#pattern,)* .. } = #record;
                #target_path { #(#literal),* }
            })
        },
    ));
    Some(target_shape.clone())
}

/// Closures of `filter`, `map`, ... after a schema step: a field read on the closure's
/// argument that an earlier step renamed away or removed is reported with what became of it.
fn closures(w: &mut Walker<'_>, step: &Checked, flow: &Flow, positional: &[Value]) {
    let Flow::Shape(shape) = flow else { return };
    if shape.gone.is_empty() {
        return;
    }
    let Some(Value::Expr(syn::Expr::Closure(closure))) = positional.first() else { return };
    let Some(param) = closure.inputs.first().and_then(pat_ident) else { return };
    let mut scan = Scan { param: param.clone(), shadowed: false, reads: Vec::new() };
    syn::visit::Visit::visit_expr(&mut scan, &closure.body);
    if scan.shadowed {
        return;
    }
    let _ = step;
    for field in scan.reads {
        let name = field.to_string();
        let name = name.trim_start_matches("r#");
        if shape.position(name).is_some() {
            continue;
        }
        let (msg, help) = match shape.gone(name) {
            Some(Why::Renamed(to)) => {
                (format!("no field `{name}` on the record here: an earlier `rename` renamed it to `{to}`"), format!("write `{param}.{to}`"))
            }
            Some(Why::Removed(by)) => (
                format!("no field `{name}` on the record here: an earlier `{by}` removed it"),
                format!("keep `{name}` in that `{by}`, or use it before that step; the fields here are {}", quoted(&shape.names())),
            ),
            Some(Why::Into(ty)) => (
                format!("no field `{name}` on the record here: `{ty}` has no field `{name}`"),
                format!("the fields here are {}", quoted(&shape.names())),
            ),
            None => continue, // never a field: rustc's own error lists the fields
        };
        w.error(err(field.span(), msg, help));
    }
}

/// The identifier a closure parameter binds: `o`, `o: T`, `&o`, `mut o`.
fn pat_ident(pat: &syn::Pat) -> Option<&Ident> {
    match pat {
        syn::Pat::Ident(p) if p.subpat.is_none() => Some(&p.ident),
        syn::Pat::Type(t) => pat_ident(&t.pat),
        syn::Pat::Reference(r) => pat_ident(&r.pat),
        _ => None,
    }
}

/// Reads `param.field` in a closure body; gives up (`shadowed`) where the body binds `param`
/// again, since a later `param.x` may then be another value.
struct Scan {
    param: Ident,
    shadowed: bool,
    reads: Vec<Ident>,
}

impl<'ast> syn::visit::Visit<'ast> for Scan {
    fn visit_expr_field(&mut self, e: &'ast syn::ExprField) {
        if let (syn::Expr::Path(p), syn::Member::Named(field)) = (&*e.base, &e.member) {
            if p.qself.is_none() && p.path.is_ident(&self.param) {
                self.reads.push(field.clone());
            }
        }
        syn::visit::visit_expr_field(self, e);
    }

    fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
        if p.ident == self.param {
            self.shadowed = true;
        }
        syn::visit::visit_pat_ident(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // `println!("{}", o.amount_cents)`: read the arguments of the usual formatting macros.
        if let Ok(args) = m.parse_body_with(syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated) {
            for a in &args {
                self.visit_expr(a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{check, parse, schema};
    use super::*;

    /// `Order { id: i64, customer: String, #[serde(rename = "cents", alias = "c")] amount_cents: i64 }`,
    /// with a skipped field at position 2.
    fn order() -> TokenStream {
        quote!(@etl_record { "Order", 0usize, [
            ("id", 0usize, "id", "i64", []),
            ("customer", 1usize, "customer", "String", []),
            ("amount_cents", 3usize, "cents", "i64", [alias = "c"])
        ], ["cache"] })
    }

    /// `Payment { id: i64, amount: i64, #[serde(skip)] note: String }`.
    fn payment() -> TokenStream {
        quote!(@etl_record { "Payment", 0usize, [("id", 0usize, "id", "i64", []), ("amount", 1usize, "amount", "i64", [])], ["note"] })
    }

    fn walk_with(input: TokenStream, schemas: &[TokenStream]) -> Outcome {
        let (ast, errors) = parse::parse(input);
        assert!(errors.is_empty(), "{:?}", errors.iter().map(ToString::to_string).collect::<Vec<_>>());
        let (steps, errors) = check::check(&ast);
        assert!(errors.is_empty(), "{:?}", errors.iter().map(ToString::to_string).collect::<Vec<_>>());
        let received: Vec<schema::RecordSchema> =
            schemas.iter().map(|t| schema::split(t.clone()).expect("a schema").0.remove(0).schema).collect();
        let refs: Vec<&schema::RecordSchema> = received.iter().collect();
        walk(&steps, &refs)
    }

    fn done(input: TokenStream, schemas: &[TokenStream]) -> Typed {
        match walk_with(input, schemas) {
            Outcome::Done(t) => t,
            Outcome::Need(p) => panic!("needs {}", p.to_token_stream()),
        }
    }

    fn errors(input: TokenStream) -> Vec<String> {
        done(input, &[order(), payment()]).errors.iter().map(ToString::to_string).collect()
    }

    fn norm(t: impl ToTokens) -> String {
        t.to_token_stream().to_string().replace(' ', "")
    }

    #[test]
    fn schemas_are_asked_for_in_order_and_once() {
        let input =
            quote!(iter(v) as Order | rename(amount_cents -> amount) | drop(customer) | into(shop::Payment) | select(id) | stdout());
        let Outcome::Need(first) = walk_with(input.clone(), &[]) else { panic!("needs Order") };
        assert_eq!(norm(first), "Order");
        let Outcome::Need(second) = walk_with(input.clone(), &[order()]) else { panic!("needs Payment") };
        assert_eq!(norm(second), "shop::Payment");
        let typed = done(input, &[order(), payment()]);
        assert!(typed.errors.is_empty(), "{:?}", typed.errors.iter().map(ToString::to_string).collect::<Vec<_>>());
        assert_eq!(typed.ops.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(typed.items.len(), 3, "rename, drop and select generate types; into does not");
    }

    #[test]
    fn json_and_undeclared_records_need_no_schema() {
        for input in [
            quote!(file(path = "in.jsonl") | rename(a -> b) | select(b) | stdout()),
            quote!(iter(v) as etl::Json | drop(a.b) | stdout()),
            quote!(iter(v) | rename(a -> b) | stdout()),
            quote!(iter(v) as Order | map(|o| o.id) | filter(|n| *n > 0) | stdout()),
        ] {
            let typed = done(input, &[]);
            assert!(typed.ops.is_empty() && typed.items.is_empty() && typed.errors.is_empty());
        }
        // `into` on `Json` is the run-time decoder (the table's generator): no op here.
        assert!(done(quote!(file(path = "x") | into(Order) | select(id) | stdout()), &[order()]).ops.len() == 1);
    }

    #[test]
    fn generic_records_call_the_macro_by_the_bare_path() {
        let Outcome::Need(p) = walk_with(quote!(iter(v) as shop::Page<i64> | select(n) | stdout()), &[]) else { panic!() };
        assert_eq!(norm(p), "shop::Page<i64>", "the callback strips the arguments (schema::callback)");
    }

    #[test]
    fn field_errors_with_help() {
        let e = errors(quote!(iter(v) as Order | select(id, amount_cent) | stdout()));
        assert_eq!(e, ["unknown field `amount_cent` in `select`: `Order` has no field `amount_cent`\nhelp: did you mean `amount_cents`?"]);
        let e = errors(quote!(iter(v) as Order | drop(zzz) | stdout()));
        assert_eq!(
            e,
            ["unknown field `zzz` in `drop`: `Order` has no field `zzz`\nhelp: the fields of `Order` are `id`, `customer`, `amount_cents`"]
        );
        let e = errors(quote!(iter(v) as Order | rename(amount_cents -> id) | stdout()));
        assert!(e[0].starts_with("cannot rename `amount_cents` to `id`: `Order` already has a field `id`\nhelp: "), "{e:?}");
        let e = errors(quote!(iter(v) as Order | rename(amount_cents -> a, amount_cents -> b) | stdout()));
        assert!(
            e[0].starts_with("field `amount_cents` is renamed twice\nhelp: this `rename` already renamed `amount_cents` to `a`"),
            "{e:?}"
        );
        let e = errors(quote!(iter(v) as Order | rename(id -> id) | stdout()));
        assert!(e[0].starts_with("`id` is renamed to itself"), "{e:?}");
        let e = errors(quote!(iter(v) as Order | rename(amount_cents -> amount) | select(amount_cents) | stdout()));
        assert!(e[0].contains("an earlier `rename` renamed it to `amount`\nhelp: use its new name `amount`"), "{e:?}");
        let e = errors(quote!(iter(v) as Order | select(id) | drop(customer) | stdout()));
        assert!(e[0].contains("no field `customer` in the record after `select`: an earlier `select` removed it"), "{e:?}");
        let e = errors(quote!(iter(v) as Order | select(id, id) | stdout()));
        assert!(e[0].starts_with("`id` is named twice in this `select`"), "{e:?}");
        let e = errors(quote!(iter(v) as Order | drop(id, customer, amount_cents) | stdout()));
        assert!(e[0].starts_with("`drop` removes every field of `Order`"), "{e:?}");
        let e = errors(quote!(iter(v) as Order | select(customer.name, "id") | stdout()));
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("`select` on a typed record takes field names, not `customer.name`"), "{e:?}");
        let e = errors(quote!(iter(v) as Order | select() | stdout()));
        assert_eq!(e, ["`select` needs at least one field to keep\nhelp: write e.g. `select(id, title)`; the fields of `Order` are `id`, `customer`, `amount_cents`"]);
        let e = errors(quote!(iter(v) as etl::Json | drop() | stdout()));
        assert_eq!(e, ["`drop` needs at least one field to remove\nhelp: write e.g. `drop(internal_id)`"]);
    }

    #[test]
    fn all_errors_at_once_and_none_after_a_failed_step() {
        let e = errors(quote!(iter(v) as Order | select(idd, customr) | rename(nope -> x) | into(Payment) | stdout()));
        assert_eq!(e.len(), 2, "the select's two fields; nothing after it: {e:?}");
        let e = errors(quote!(iter(v) as (i64, String) | select(a) | stdout()));
        assert!(e[0].starts_with("`select` needs a record struct here"), "{e:?}");
    }

    #[test]
    fn into_errors_name_the_field() {
        let e = errors(quote!(iter(v) as Order | into(Payment) | stdout()));
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("`into(Payment)`: field `amount` of `Payment` is missing in `Order`\nhelp: "), "{e:?}");
        assert!(e[1].starts_with("`into(Payment)`: field `customer` has no place in `Payment`\nhelp: `Payment` has no field `customer`; remove it first with `drop(customer)`"), "{e:?}");
        assert!(e[2].contains("field `amount_cents` has no place"), "{e:?}");
        let e = errors(quote!(iter(v) as Order | drop(customer) | rename(amount_cents -> amont) | into(Payment) | stdout()));
        assert!(e[0].contains("help: did you mean to rename it first: `rename(amont -> amount)`?"), "{e:?}");
        let e = errors(quote!(iter(v) | into(Payment) | stdout()));
        assert!(e[0].starts_with("`into` needs to know the record type here"), "{e:?}");
    }

    #[test]
    fn closures_reading_a_field_renamed_away_or_removed() {
        let e = errors(quote!(iter(v) as Order | rename(amount_cents -> amount) | filter(|o| o.amount_cents > 0) | stdout()));
        assert_eq!(e, ["no field `amount_cents` on the record here: an earlier `rename` renamed it to `amount`\nhelp: write `o.amount`"]);
        let e = errors(quote!(
            iter(v) as Order
                | select(id)
                | map(|o: Order| {
                    println!("{}", o.customer);
                    o.id
                })
                | stdout()
        ));
        assert!(e[0].starts_with("no field `customer` on the record here: an earlier `select` removed it"), "{e:?}");
        // Fields that exist, methods, another binding, a shadowed parameter: not the macro's business.
        for ok in [
            quote!(iter(v) as Order | rename(amount_cents -> amount) | filter(|o| o.amount > 0 && o.id.is_positive()) | stdout()),
            quote!(iter(v) as Order | rename(amount_cents -> amount) | filter(|o| { let o = &o.amount; *o > 0 }) | stdout()),
            quote!(iter(v) as Order | rename(amount_cents -> amount) | filter(|x| other.amount_cents > x.amount) | stdout()),
            quote!(iter(v) as Order | rename(amount_cents -> amount) | map(|o| o.amount) | filter(|o| o.amount_cents > 0) | stdout()),
        ] {
            assert!(errors(ok.clone()).is_empty(), "{ok}");
        }
    }

    #[test]
    fn generated_type_keeps_serde_names_and_is_typed_through_the_record() {
        let typed = done(quote!(iter(v) as Order | rename(customer -> buyer) | select(amount_cents, buyer) | stdout()), &[order()]);
        assert!(typed.errors.is_empty());
        let rename = norm(&typed.items[0]);
        assert!(rename.contains("struct__OrderRename1{"), "{rename}");
        assert!(rename.contains("#[serde(rename=\"buyer\")]buyer:<Orderas::etl::__private::FieldType<1usize>>::Type"), "{rename}");
        assert!(
            rename.contains("#[serde(rename=\"cents\",alias=\"c\")]amount_cents:<Orderas::etl::__private::FieldType<3usize>>::Type"),
            "kept fields keep their serde name and aliases: {rename}"
        );
        assert!(rename.contains("impl::etl::record::Recordfor__OrderRename1"), "{rename}");
        assert!(rename.contains("for<'__etl><Orderas::etl::__private::FieldType<0usize>>::Type:::core::clone::Clone"), "{rename}");
        let select = norm(&typed.items[1]);
        assert!(select.contains("struct__OrderSelect2{#[serde(rename=\"cents\",alias=\"c\")]amount_cents"), "{select}");
        // The conversions move fields by name, the old record destructured.
        assert_eq!(
            norm(typed.op(1).expect("rename op")),
            norm(quote!(.map(|__etl_record: Order| -> __OrderRename1 {
                let Order { id: __etl_0, customer: __etl_1, amount_cents: __etl_2, .. } = __etl_record;
                __OrderRename1 { id: __etl_0, buyer: __etl_1, amount_cents: __etl_2 }
            })))
        );
        assert_eq!(
            norm(typed.op(2).expect("select op")),
            norm(quote!(.map(|__etl_record: __OrderRename1| -> __OrderSelect2 {
                let __OrderRename1 { amount_cents: __etl_0, buyer: __etl_1, .. } = __etl_record;
                __OrderSelect2 { amount_cents: __etl_0, buyer: __etl_1 }
            })))
        );
    }

    #[test]
    fn serde_helpers_are_called_through_the_record() {
        let rec = quote!(@etl_record { "Price", 0usize, [("amount", 0usize, "amount", "i64", [default_with, skip_serializing_if, serialize_with, deserialize_with, skip_deserializing])], [] });
        let typed = done(quote!(iter(v) as shop::Price | rename(amount -> total) | stdout()), &[rec]);
        let item = norm(&typed.items[0]);
        for want in [
            "default=\"<shop::Priceas::etl::__private::FieldDefault<0>>::default\"",
            "skip_serializing_if=\"<shop::Priceas::etl::__private::FieldSkipIf<0>>::skip_serializing_if\"",
            "serialize_with=\"<shop::Priceas::etl::__private::FieldSerializeWith<0>>::serialize_with\"",
            "deserialize_with=\"<shop::Priceas::etl::__private::FieldDeserializeWith<0>>::deserialize_with\"",
            "skip_deserializing",
        ] {
            assert!(item.contains(&want.replace(' ', "")), "{want} in {item}");
        }
    }

    #[test]
    fn into_moves_each_field_through_a_type_check_and_defaults_skipped_fields() {
        let typed = done(
            quote!(iter(v) as Order | drop(customer) | rename(amount_cents -> amount) | into(Payment) | stdout()),
            &[order(), payment()],
        );
        assert!(typed.errors.is_empty());
        let op = norm(typed.op(3).expect("into op"));
        assert!(
            op.starts_with(
                ".map(|__etl_record:__OrderRename2|->Payment{let__OrderRename2{id:__etl_0,amount:__etl_1,..}=__etl_record;Payment{"
            ),
            "{op}"
        );
        assert!(
            op.contains(&norm(quote!(amount: { #[allow(non_camel_case_types, dead_code)] enum amount {}
            ::etl::__private::into_field::<Payment, amount, <Payment as ::etl::__private::FieldType<1usize>>::Type, _>(__etl_1) }))),
            "{op}"
        );
        assert!(op.contains("note:::core::default::Default::default()"), "{op}");
    }
}
