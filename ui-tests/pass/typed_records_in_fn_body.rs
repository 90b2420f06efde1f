// Records declared in a function body, private and `pub`, through schema steps: no warning
// from the generated schema macros (`#[macro_export]` in a function would draw
// `non_local_definitions`), and no unused-import warning for records no pipeline uses.
#![deny(warnings)]

use etl::prelude::*;

fn build() -> impl std::any::Any {
    #[derive(Debug, Clone, Record, Serialize, Deserialize)]
    struct Local {
        id: i64,
        name: String,
    }

    #[derive(Debug, Clone, Record, Serialize, Deserialize)]
    pub struct Exported {
        pub id: i64,
    }

    #[derive(Debug, Clone, Record, Serialize, Deserialize)]
    struct Unused {
        id: i64,
    }

    let _ = Unused { id: 0 };
    let _ = Exported { id: 0 };
    pipeline! { iter(vec![Local { id: 1, name: "a".into() }]) as Local | rename(name -> title) | select(title) | blackhole() }
}

fn main() {
    let _ = build;
}
