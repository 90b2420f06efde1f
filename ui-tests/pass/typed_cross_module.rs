// Records defined in other modules: by path (`as shop::orders::Order`), and after `use`;
// `into` a record of a third module.
#![deny(warnings)]

use etl::prelude::*;

mod shop {
    pub mod orders {
        use etl::prelude::*;

        #[derive(Debug, Clone, Record, Serialize, Deserialize)]
        pub struct Order {
            pub id: i64,
            pub customer: String,
            pub amount_cents: i64,
        }
    }
}

mod reports {
    use etl::prelude::*;

    #[derive(Debug, Clone, Record, Serialize, Deserialize)]
    pub struct Payment {
        pub id: i64,
        pub amount: i64,
    }
}

async fn by_path(orders: Vec<shop::orders::Order>) -> etl::Result<RunReport> {
    pipeline! {
        iter(orders) as shop::orders::Order
        | rename(amount_cents -> amount)
        | drop(customer)
        | into(reports::Payment)
        | stdout()
    }
    .run()
    .await
}

async fn after_use(orders: Vec<shop::orders::Order>) -> etl::Result<Vec<i64>> {
    use reports::Payment;
    use shop::orders::Order;
    let out = etl::sink::collect::<Payment>();
    pipeline! {
        iter(orders) as Order
        | filter(|o| o.amount_cents > 0)
        | rename(amount_cents -> amount)
        | select(id, amount)
        | into(Payment)
        | collect(out)
    }
    .run()
    .await?;
    Ok(out.records().into_iter().map(|p| p.amount).collect())
}

// By an absolute path from the crate root (the schema macro is then named through the
// re-export, not the `#[macro_export]`ed macro itself: rust#52234 does not apply).
fn from_crate_root(orders: Vec<shop::orders::Order>) -> impl std::any::Any {
    pipeline! { iter(orders) as crate::shop::orders::Order | select(id) | blackhole() }
}

fn main() {
    let _ = (by_path, after_use, from_crate_root);
}
