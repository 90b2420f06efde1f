//! `etl-kafka-mock`: librdkafka's mock Kafka cluster (`rdkafka::mocking::MockCluster`, the real
//! protocol: produce, fetch, consumer groups, offset commits, rebalances, idempotent producers)
//! hosted in a process of its own, so that a test can SIGKILL a pipeline and keep the broker.
//!
//! ```text
//! etl-kafka-mock [--brokers N] [--env-file PATH]
//! ```
//!
//! Prints (and writes to `PATH`, atomically, when given) lines a shell can `source`:
//!
//! ```text
//! KAFKA_BROKERS=127.0.0.1:40211
//! KAFKA_MOCK_CONTROL=127.0.0.1:40212
//! KAFKA_MOCK_PID=31337
//! ```
//!
//! The mock cluster has no CreateTopics handler (the admin API), so topics are created through
//! the control channel: a TCP port on loopback that takes one command per line and answers
//! `ok` or `error <reason>` on a line:
//!
//! * `create <topic> <partitions>`: create a topic (replication factor 1);
//! * `produce-errors <count> <error>`: fail the next `count` Produce requests with `error`
//!   (`not_enough_replicas`, `request_timed_out`, `not_leader`, `message_too_large`), the
//!   way a broker in trouble would;
//! * `clear-errors`: forget the Produce errors not used yet;
//! * `ping`: `ok`.
//!
//! `scripts/services.sh` (`ensure_kafka`) builds and starts it when `KAFKA_BROKERS` is unset;
//! the tests read `KAFKA_BROKERS`, and `KAFKA_MOCK_CONTROL` to create topics (against a real
//! cluster, without `KAFKA_MOCK_CONTROL`, they use the admin API instead). It runs until it is
//! killed.

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

fn main() {
    if let Err(e) = run() {
        eprintln!("etl-kafka-mock: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut brokers = 1;
    let mut env_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--brokers" => {
                brokers = args.next().and_then(|n| n.parse().ok()).ok_or("--brokers takes a number")?;
            }
            "--env-file" => env_file = Some(args.next().ok_or("--env-file takes a path")?),
            "-h" | "--help" => {
                println!("etl-kafka-mock [--brokers N] [--env-file PATH]");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}`; see --help")),
        }
    }
    let cluster = MockCluster::new(brokers).map_err(|e| format!("cannot start the mock cluster: {e}"))?;
    let control = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot open the control port: {e}"))?;
    let control_addr = control.local_addr().map_err(|e| e.to_string())?;
    let env = format!(
        "KAFKA_BROKERS={}\nKAFKA_MOCK_CONTROL={control_addr}\nKAFKA_MOCK_PID={}\n",
        cluster.bootstrap_servers(),
        std::process::id()
    );
    if let Some(path) = env_file {
        let tmp = format!("{path}.tmp");
        std::fs::write(&tmp, &env).map_err(|e| format!("cannot write {tmp}: {e}"))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("cannot rename {tmp} to {path}: {e}"))?;
    }
    print!("{env}");
    let _ = std::io::stdout().flush();
    // One connection at a time, on this thread (the cluster handle is not `Send`): a client
    // sends its commands and closes; a connection idle for 5 s is dropped.
    for stream in control.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
        serve(stream, &cluster);
    }
    Ok(())
}

fn serve(stream: TcpStream, cluster: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>) {
    let Ok(mut out) = stream.try_clone() else { return };
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = command(cluster, &words);
        let reply = match answer {
            Ok(()) => "ok\n".to_owned(),
            Err(e) => format!("error {e}\n"),
        };
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn command(cluster: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>, words: &[&str]) -> Result<(), String> {
    match words {
        ["ping"] => Ok(()),
        ["create", topic, partitions] => {
            let partitions: i32 = partitions.parse().map_err(|_| format!("`{partitions}` is not a number of partitions"))?;
            cluster.create_topic(topic, partitions, 1).map_err(|e| e.to_string())
        }
        ["produce-errors", count, error] => {
            let count: usize = count.parse().map_err(|_| format!("`{count}` is not a count"))?;
            let error = match *error {
                "not_enough_replicas" => RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                "request_timed_out" => RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                "not_leader" => RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                "message_too_large" => RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
                other => return Err(format!("unknown error `{other}`")),
            };
            cluster.request_errors(RDKafkaApiKey::Produce, &vec![error; count]);
            Ok(())
        }
        ["clear-errors"] => {
            cluster.clear_request_errors(RDKafkaApiKey::Produce);
            Ok(())
        }
        _ => Err(format!("unknown command `{}`", words.join(" "))),
    }
}
