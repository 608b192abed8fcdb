//! The Redis cache against the real Redis: an older row never replaces a newer one.

use std::time::Duration;

use chrono::Utc;
use readmodel::{Cache, CacheConfig, SimView};

fn view(position: i64, label: &str) -> SimView {
    SimView {
        label: Some(label.into()),
        status: domain::SimStatus::Active,
        version: position,
        last_position: position,
        updated_at: Utc::now(),
        ..SimView::registered("8988303000000000001", "901405100000001", Utc::now())
    }
}

#[tokio::test]
async fn an_older_row_never_replaces_a_newer_one() {
    let prefix = format!("test-readmodel-{}", uuid::Uuid::new_v4().simple());
    let mut config = CacheConfig::new("redis://127.0.0.1:6379", prefix);
    config.timeout = Duration::from_secs(2);
    let cache = Cache::connect(config).await;
    let iccid = "8988303000000000001";

    cache.put_sim(&view(10, "ten")).await;
    assert_eq!(cache.get_sim(iccid).await.unwrap().last_position, 10);
    // A writer that loaded the row earlier comes late: ignored.
    cache.put_sim(&view(5, "five")).await;
    assert_eq!(cache.get_sim(iccid).await.unwrap().label.as_deref(), Some("ten"));
    // The same or a newer row is written.
    cache.put_sim(&view(10, "ten again")).await;
    assert_eq!(
        cache.get_sim(iccid).await.unwrap().label.as_deref(),
        Some("ten again")
    );
    cache.put_sim(&view(11, "eleven")).await;
    assert_eq!(cache.get_sim(iccid).await.unwrap().last_position, 11);
    cache.invalidate(&[cache.sim_key(iccid)]).await;
    assert!(cache.get_sim(iccid).await.is_none());
}

/// Kills the private redis-server when the test ends, also on a panic.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_cache_started_while_redis_was_down_uses_it_once_it_answers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = CacheConfig::new(format!("redis://127.0.0.1:{port}"), "test-readmodel-late");
    config.timeout = Duration::from_millis(500);
    let cache = Cache::connect(config).await;
    let iccid = "8988303000000000001";
    cache.put_sim(&view(1, "while down")).await;
    assert!(cache.get_sim(iccid).await.is_none(), "a miss while Redis is down");

    let _server = Server(
        std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed"),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        cache.put_sim(&view(2, "after")).await;
        if let Some(found) = cache.get_sim(iccid).await {
            assert_eq!(found.label.as_deref(), Some("after"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cache never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
