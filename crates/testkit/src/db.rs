//! The test's own database, as `#[sqlx::test]` made it (or a private server's).

use sqlx::PgPool;

/// The URL of the database `pool` is connected to, on the server it is connected to (the
/// machine's, or a test's private one), for a service's configuration or a child process.
/// Trust authentication is assumed (no password), as on every test server here.
pub async fn database_url(pool: &PgPool) -> String {
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .expect("the test database answers");
    let options = pool.connect_options();
    format!(
        "postgres://{}@{}:{}/{name}",
        options.get_username(),
        options.get_host(),
        options.get_port()
    )
}
