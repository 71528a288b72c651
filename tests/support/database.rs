//! Fresh databases for tests: a new PostgreSQL database per test (dropped afterwards, even when
//! the test panics), or a SQLite file in a temporary directory.

use std::time::Duration;

/// Which store backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The local PostgreSQL (`LINKGATE_TEST_POSTGRES_URL`).
    Postgres,
    /// A SQLite file.
    Sqlite,
}

/// A database that exists for one test.
pub struct TestDatabase {
    pub url: String,
    postgres_name: Option<String>,
    _directory: Option<tempfile::TempDir>,
}

/// The server to create PostgreSQL test databases on.
pub fn admin_url() -> String {
    std::env::var("LINKGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn url_for(database: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map(|(base, _)| base).unwrap_or(&admin);
    format!("{base}/{database}")
}

impl TestDatabase {
    /// Creates an empty, migrated database on `backend`.
    pub async fn create(backend: Backend) -> Self {
        let database = match backend {
            Backend::Sqlite => {
                let directory = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}", directory.path().join("linkgate.db").display());
                Self { url, postgres_name: None, _directory: Some(directory) }
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let name = format!("lg_test_{}", uuid::Uuid::now_v7().simple());
                let mut admin = sqlx::PgConnection::connect(&admin_url()).await.expect("PostgreSQL answers");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .expect("test database created");
                Self { url: url_for(&name), postgres_name: Some(name), _directory: None }
            }
        };
        linkgate::store::open(&database.url, 2, true).await.expect("migrations apply");
        database
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else { return };
        // Drop runs outside any async context we can rely on: use a private runtime on a thread.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                use sqlx::Connection;
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url()).await {
                    let drop =
                        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")));
                    let _ = tokio::time::timeout(Duration::from_secs(10), drop.execute(&mut admin)).await;
                }
            });
        });
        let _ = dropper.join();
    }
}
