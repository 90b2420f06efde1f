// Two records named `Order` in different modules of one crate: each exports its own schema
// macro (the exported names carry a hash of the item), and each pipeline sees its own fields.
#![deny(warnings)]

use etl::prelude::*;

mod eu {
    use etl::prelude::*;

    #[derive(Debug, Clone, Record, Serialize, Deserialize)]
    pub struct Order {
        pub id: i64,
        pub vat_cents: i64,
    }
}

mod us {
    use etl::prelude::*;

    #[derive(Debug, Clone, Record, Serialize, Deserialize)]
    pub struct Order {
        pub id: i64,
        pub sales_tax_cents: i64,
    }
}

fn eu_pipeline(v: Vec<eu::Order>) -> impl std::any::Any {
    pipeline! { iter(v) as eu::Order | rename(vat_cents -> tax) | filter(|o| o.tax > 0) | blackhole() }
}

fn us_pipeline(v: Vec<us::Order>) -> impl std::any::Any {
    use us::Order;
    pipeline! { iter(v) as Order | rename(sales_tax_cents -> tax) | filter(|o| o.tax > 0) | blackhole() }
}

fn main() {
    let _ = (eu_pipeline, us_pipeline);
}
