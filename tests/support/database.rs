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

/// The admin URL with its database replaced by `database`, query parameters kept.
fn url_for(database: &str) -> String {
    let admin = admin_url();
    let (base, query) = admin.split_once('?').map_or((admin.as_str(), None), |(base, query)| (base, Some(query)));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
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
                // The guard exists before migrating, so a failing migration still drops the database.
                Self { url: url_for(&name), postgres_name: Some(name), _directory: None }
            }
        };
        linkgate::store::open(&database.url, 2, true).await.expect("migrations apply");
        database
    }
}

impl TestDatabase {
    /// Everything stored, as text to search: every row of every table on PostgreSQL (bytes show
    /// as hex), the raw database files on SQLite (write-ahead log included).
    pub async fn dump(&self) -> String {
        match &self._directory {
            Some(directory) => {
                let mut dump = String::new();
                for entry in std::fs::read_dir(directory.path()).expect("database directory") {
                    let bytes = std::fs::read(entry.expect("entry").path()).expect("database file");
                    dump.push_str(&String::from_utf8_lossy(&bytes));
                }
                dump
            }
            None => {
                use sqlx::Connection;
                let mut connection = sqlx::PgConnection::connect(&self.url).await.expect("test database answers");
                let tables: Vec<(String,)> =
                    sqlx::query_as("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
                        .fetch_all(&mut connection)
                        .await
                        .expect("tables listed");
                let mut dump = String::new();
                for (table,) in tables {
                    let sql = format!("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM {table} t");
                    let (rows,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .fetch_one(&mut connection)
                        .await
                        .expect("table dumped");
                    dump.push_str(&rows);
                }
                dump
            }
        }
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
