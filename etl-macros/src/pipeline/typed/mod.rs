//! Schema steps on typed records: `rename`, `select`, `drop` and `into` on `#[derive(Record)]`
//! structs, checked at compile time against the fields their schema macros sent.
//!
//! [`walk`] follows the record type from step to step, as each step's table entry says
//! ([`Typing`]): `as Type`, `map(..) as Type`, a source's default (`Json` for `file`, `sse`,
//! `sqs`), the shapes the schema steps produce. When a step needs a record's fields that have
//! not arrived yet, it answers [`Outcome::Need`] with that type (`pipeline!` then calls the
//! type's schema macro, which calls back with the fields prepended, and the walk starts again).
//! With every schema at hand it checks each schema step by its [`SchemaRule`] (in the step's
//! own `ops/*.rs`), reporting every error on the user's token, and generates (see
//! [`generate`]) the record types and the conversions.
//!
//! On `Json` records, or records whose type the macro cannot see, the schema steps are the
//! table's run-time operators (`into(Type)` decodes).
//!
//! Closures written in place that read a field the records do not have are reported by the
//! macro ([`closures`]): on `Json` records any field, after a schema step a field renamed away
//! or removed (with its new name), on a generated record type any unknown field.

mod closures;
mod generate;
#[cfg(test)]
mod tests;

use super::check::{is_json, Checked, What};
use super::graph::Described;
use crate::diagnostic::{first_span, Diagnostics};
use crate::ops::{Category, Op, SchemaRule, Typing, Value};
use crate::record::type_text;
use crate::shape::{quoted, Field, Shape};
use crate::wire::RecordSchema;
use proc_macro2::{Ident, TokenStream};
use quote::ToTokens;
use std::rc::Rc;

/// What [`walk`] found.
pub enum Outcome {
    /// The fields of this record type are needed next, by the step named.
    Need(syn::Path, &'static str),
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
    pub errors: Diagnostics,
    /// The record type after each step, by step position, for the pipeline's graph.
    pub records: Vec<(usize, Described)>,
}

impl Typed {
    /// The generated operator of the step at `index`, if any.
    pub fn op(&self, index: usize) -> Option<&TokenStream> {
        self.ops.iter().find(|(i, _)| *i == index).map(|(_, t)| t)
    }

    /// The record type after the step at `index`.
    pub fn record(&self, index: usize) -> Described {
        self.records.iter().find(|(i, _)| *i == index).map_or_else(Described::unknown, |(_, r)| r.clone())
    }
}

impl Flow {
    /// What the pipeline's graph says of records of this type.
    fn described(&self) -> Described {
        match self {
            Flow::Json => Described::Name("Json".to_owned()),
            Flow::Unknown | Flow::Broken => Described::unknown(),
            Flow::Named(ty, _) | Flow::Opaque(ty) => Described::written(ty),
            Flow::Shape(shape) => Described::Type { ty: shape.ty.clone(), name: shape.name.clone() },
        }
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
    /// A type named by the user (a path: its schema macro's), fields not fetched yet.
    Named(Rc<syn::Type>, syn::Path),
    /// A declared type that is not a struct path (a tuple, a reference, ...).
    Opaque(Rc<syn::Type>),
    /// Fields known.
    Shape(Shape),
}

fn flow_of(ty: &syn::Type) -> Flow {
    match ty {
        _ if is_json(ty) => Flow::Json,
        syn::Type::Path(p) if p.qself.is_none() => Flow::Named(Rc::new(ty.clone()), p.path.clone()),
        syn::Type::Group(g) => flow_of(&g.elem),
        syn::Type::Paren(p) => flow_of(&p.elem),
        _ => Flow::Opaque(Rc::new(ty.clone())),
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

struct Walker<'a> {
    schemas: &'a [&'a RecordSchema],
    /// The types whose schemas were asked for, in order (by their tokens' text).
    requests: Vec<String>,
    /// Whether the record type is only assumed (after a `map` without `as`): a later schema
    /// step uses it, and rustc checks the assumption on the closure that step generates
    /// (`|r: Type| ...`); closures are not checked under it.
    assumed: bool,
    /// The names of the record types generated so far (each unique in the pipeline's block).
    generated: Vec<String>,
    out: Typed,
}

impl Walker<'_> {
    /// The fields of the record type `ty` (at `path`), or the path to fetch them from.
    fn shape(&mut self, ty: &Rc<syn::Type>, path: &syn::Path) -> Result<Shape, syn::Path> {
        let key = ty.to_token_stream().to_string();
        let at = match self.requests.iter().position(|r| *r == key) {
            Some(at) => at,
            None => {
                self.requests.push(key);
                self.requests.len() - 1
            }
        };
        let Some(schema) = self.schemas.get(at) else {
            return Err(path.clone());
        };
        let base = path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
        let name = type_text(ty);
        Ok(Shape {
            ty: ty.to_token_stream(),
            path: struct_path(ty),
            label: format!("`{name}`"),
            name,
            generated: false,
            base: base.trim_start_matches("r#").to_owned(),
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

    /// The name of the record type that `step` (a `rename`, ...) makes of a `base` record:
    /// `Order_after_rename`, then `Order_after_rename_2`: what rustc's messages about it say.
    fn generated_ident(&mut self, base: &str, step_name: &str, step: &Checked) -> Ident {
        let name = format!("{base}_after_{step_name}");
        let n = self.generated.iter().filter(|g| **g == name).count();
        self.generated.push(name.clone());
        let name = if n == 0 { name } else { format!("{name}_{}", n + 1) };
        Ident::new(&name, step.span)
    }

    /// The fields of the record when they are known or can be fetched; `None` for `Json`,
    /// undeclared and opaque records.
    fn known(&mut self, flow: &Flow) -> Result<Option<Shape>, syn::Path> {
        match flow {
            Flow::Named(ty, path) => self.shape(ty, path).map(Some),
            Flow::Shape(shape) => Ok(Some(shape.clone())),
            _ => Ok(None),
        }
    }
}

/// Follow the record type through `steps`, with the schemas received so far (in the order
/// they were asked for).
pub fn walk(steps: &[Checked], schemas: &[&RecordSchema]) -> Outcome {
    let mut w = Walker { schemas, requests: Vec::new(), assumed: false, generated: Vec::new(), out: Typed::default() };
    let mut flow = Flow::Unknown;
    let mut expected = 0;
    for step in steps {
        if step.index != expected {
            // A step that did not parse or resolve: its error is reported; check no further.
            flow = Flow::Broken;
        }
        expected = step.index + 1;
        // A sink's record type is the one it receives.
        let received = (step.role == Category::Sink).then(|| if w.assumed { Described::unknown() } else { flow.described() });
        match walk_step(&mut w, step, flow) {
            Ok(next) => flow = next,
            Err(path) => {
                let name = match &step.what {
                    What::Builtin { op, .. } => op.name,
                    What::User { .. } | What::Fork(_) => "a step",
                };
                return Outcome::Need(path, name);
            }
        }
        // After a `map` without `as`, the type is only assumed: the graph does not know it.
        let described = received.unwrap_or_else(|| if w.assumed { Described::unknown() } else { flow.described() });
        w.out.records.push((step.index, described));
    }
    Outcome::Done(w.out)
}

fn walk_step(w: &mut Walker<'_>, step: &Checked, flow: Flow) -> Result<Flow, syn::Path> {
    let declared = step.as_type.as_ref().map(flow_of);
    let assumed = std::mem::take(&mut w.assumed);
    let (op, positional, named) = match &step.what {
        What::User { .. } | What::Fork(_) => return Ok(declared.unwrap_or(Flow::Unknown)),
        What::Builtin { op, positional, named } => (*op, positional.first(), named),
    };
    let check_closure = |w: &mut Walker<'_>| {
        let records = match (&flow, assumed) {
            (Flow::Shape(shape), false) => closures::Records::Shape(shape),
            (Flow::Json, _) => closures::Records::Json,
            _ => return,
        };
        let values: Vec<&Value> = positional.into_iter().chain(named.iter().map(|(_, v)| v)).collect();
        closures::check(&mut w.out.errors, records, &values);
    };
    match op.typing {
        Typing::JsonSource => Ok(declared.unwrap_or(Flow::Json)),
        Typing::InferredSource => Ok(declared.unwrap_or(Flow::Unknown)),
        Typing::Keep => {
            check_closure(w);
            w.assumed = assumed;
            Ok(flow)
        }
        Typing::Map => {
            check_closure(w);
            Ok(match (declared, flow) {
                (Some(declared), _) => declared,
                (None, flow @ (Flow::Named(..) | Flow::Shape(_))) => {
                    w.assumed = true;
                    flow
                }
                (None, _) => Flow::Unknown,
            })
        }
        Typing::Untyped => {
            check_closure(w);
            Ok(Flow::Unknown)
        }
        Typing::Schema(rule) => match positional {
            Some(value) => schema_step(w, step, op, rule, flow, value),
            None => Ok(Flow::Broken), // reported by the checker
        },
    }
}

/// A schema step, by its rule.
fn schema_step(w: &mut Walker<'_>, step: &Checked, op: &Op, rule: SchemaRule, flow: Flow, value: &Value) -> Result<Flow, syn::Path> {
    let name = op.name;
    let needs_struct = |w: &mut Walker<'_>| {
        w.out.errors.error(
            step.span,
            format!("`{name}` needs a record struct here"),
            "the record type declared upstream is not a `#[derive(Record)]` struct; `map(..) as MyRecord` to one first",
        );
        Ok(Flow::Broken)
    };
    match rule {
        SchemaRule::Reshape { empty: (message, example), apply } => {
            if value.is_empty_list() {
                let help = match w.known(&flow)? {
                    Some(shape) => format!("write e.g. `{example}`; the fields of {} are {}", shape.label, quoted(&shape.names())),
                    None => format!("write e.g. `{example}`"),
                };
                w.out.errors.error(step.span, message, help);
                return Ok(Flow::Broken);
            }
            if let Flow::Opaque(_) = flow {
                return needs_struct(w);
            }
            // `Json`, undeclared: the table's run-time operator.
            let Some(shape) = w.known(&flow)? else { return Ok(flow) };
            let Some(next) = apply(&shape, value, step.span, &mut w.out.errors) else { return Ok(Flow::Broken) };
            let ident = w.generated_ident(&next.shape.base, name, step);
            Ok(Flow::Shape(generate::reshape(&mut w.out, step, &shape, next, ident)))
        }
        SchemaRule::Into { check } => {
            let Value::Type(target) = value else { return Ok(Flow::Broken) };
            let shape = match flow {
                Flow::Broken => return Ok(Flow::Broken),
                // Decoded at run time (the table's generator).
                Flow::Json | Flow::Unknown => return Ok(flow_of(target)),
                Flow::Opaque(_) => return needs_struct(w),
                flow => match w.known(&flow)? {
                    Some(shape) => shape,
                    None => return Ok(Flow::Broken),
                },
            };
            let (target_ty, target_path) = match flow_of(target) {
                Flow::Named(ty, path) => (ty, path),
                Flow::Json => {
                    w.out.errors.error(first_span(target), "`into(Json)` is not supported yet", "use `map(|r| ...)` to build a `Json`");
                    return Ok(Flow::Broken);
                }
                _ => {
                    w.out.errors.error(first_span(target), "`into` takes a `#[derive(Record)]` struct", "write `into(MyRecord)`");
                    return Ok(Flow::Broken);
                }
            };
            let target_shape = w.shape(&target_ty, &target_path)?;
            if !check(&shape, &target_shape, &type_text(&target_ty), first_span(&*target_ty), &mut w.out.errors) {
                return Ok(Flow::Broken);
            }
            Ok(Flow::Shape(generate::into(&mut w.out, step, &shape, &target_ty, target_shape)))
        }
    }
}
