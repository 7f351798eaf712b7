//! Every acknowledged create survives a SIGKILL during concurrent writes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connvault::pb::v1;

use crate::support::{Server, connection, create};

const ROUNDS: usize = 3;
const WRITERS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_creates_survive_sigkill() {
    let mut server = Server::start();
    server.create_tenant("acme").await;
    let mut total_acked = 0;
    for round in 0..ROUNDS {
        let acked: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut writers = Vec::new();
        for writer in 0..WRITERS {
            let mut client = server.connections().await;
            let acked = Arc::clone(&acked);
            writers.push(tokio::spawn(async move {
                for index in 0.. {
                    let name = format!("r{round}-w{writer}-{index}");
                    match create(&mut client, "acme", connection(&name, "pw")).await {
                        Ok(created) => acked.lock().unwrap().push(created.name),
                        Err(_) => return,
                    }
                }
            }));
        }
        // Kill mid-write once the writers have run for 1.5 s and at least as
        // many creates as writers were acknowledged (a loaded machine may
        // need longer for that than a quiet one).
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(1500)
            || acked.lock().unwrap().len() < WRITERS
        {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "round {round}: creates are not being acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.kill();
        for writer in writers {
            let _ = writer.await;
        }
        server.spawn().unwrap();
        let mut client = server.connections().await;
        let acked = acked.lock().unwrap().clone();
        assert!(
            !acked.is_empty(),
            "round {round}: no create was acknowledged"
        );
        for name in &acked {
            client
                .get_connection(v1::GetConnectionRequest { name: name.clone() })
                .await
                .unwrap_or_else(|error| {
                    panic!("round {round}: acknowledged {name} lost: {error:?}")
                });
        }
        total_acked += acked.len();
        eprintln!(
            "durability round {round}: {} acknowledged creates, all present after SIGKILL",
            acked.len()
        );
    }
    eprintln!("durability: {total_acked} acknowledged creates over {ROUNDS} rounds, none lost");
}
