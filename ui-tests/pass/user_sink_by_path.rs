use etl::prelude::*;

mod my_sinks {
    use etl::sink::Written;
    use etl::ConnectorError;

    pub struct Sum(pub i64);

    impl etl::Sink<i64> for Sum {
        fn describe(&self) -> String {
            "sum".into()
        }
        async fn write(&mut self, records: &[i64]) -> Result<Written, ConnectorError> {
            self.0 += records.iter().sum::<i64>();
            Ok(Written::all())
        }
    }

    pub fn sum() -> Sum {
        Sum(0)
    }
}

async fn run() -> etl::Result<RunReport> {
    pipeline! { iter(1..=3i64) | map(|n| n * 2) | my_sinks::sum() }.run().await
}

fn main() {
    let _ = run;
}
