//! The connection pool and the settings it is built from.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::DbError;
use crate::tx::RetryPolicy;

/// How a component reaches its database.
#[derive(Debug, Clone)]
pub struct DbSettings {
    /// A `postgres://` URL (CockroachDB accepts the same).
    pub url: String,
    /// Connections kept at most by this process's pool.
    pub pool_size_max: usize,
    /// How long to wait for a connection to be made, or for a free one from the pool.
    pub connect_timeout_ms: u64,
    /// The server cancels any statement that runs longer than this.
    pub statement_timeout_ms: u64,
    /// The server gives up waiting for a row lock after this long.
    pub lock_timeout_ms: u64,
    /// Shown in `pg_stat_activity`, to tell components apart.
    pub application_name: String,
    /// How `run_tx` retries serialization failures.
    pub retry: RetryPolicy,
    /// The schema unqualified names resolve to: the component's own (`ledger`, …).
    pub search_path: Option<String>,
    /// Plan every execution of a prepared statement with its parameters
    /// (`plan_cache_mode = force_custom_plan`) instead of reusing a generic plan: the
    /// default. Text statements are kept prepared on their connection
    /// ([`crate::Transaction`]), and a generic plan made while a table was tiny scans it
    /// whole, and is kept until the table is analyzed again; planned each time, a kept
    /// statement costs what an unprepared one did less its parse and a round trip. Off,
    /// text statements are not kept (each is prepared for its one use, and so planned with
    /// its parameters): only the statements prepared by hand get generic plans. The ledger
    /// turns it off: its hot statements were prepared for generic plans, and planning each
    /// of them cost `bench ledger` 15-30%.
    pub custom_plans: bool,
}

impl DbSettings {
    pub fn new(url: impl Into<String>) -> DbSettings {
        DbSettings {
            url: url.into(),
            pool_size_max: 16,
            connect_timeout_ms: 5_000,
            statement_timeout_ms: 10_000,
            lock_timeout_ms: 5_000,
            application_name: "corebank".to_owned(),
            retry: RetryPolicy::default(),
            search_path: None,
            custom_plans: true,
        }
    }

    /// The same settings with unqualified names resolving to `schema`.
    #[must_use]
    pub fn with_search_path(mut self, schema: &str) -> DbSettings {
        self.search_path = Some(schema.to_owned());
        self
    }
}

/// A handle to one database: a pool of connections plus the retry policy. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    pub(crate) retry: RetryPolicy,
    connect_timeout: Duration,
    pub(crate) settings: Arc<DbSettings>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("Db")
            .field("pool_size", &status.size)
            .field("pool_available", &status.available)
            .finish()
    }
}

impl Db {
    /// Builds the pool without connecting: connections are made on first use, so a
    /// component starts (and reports not-ready) while its database is down.
    pub fn connect_lazy(settings: &DbSettings) -> Result<Db, DbError> {
        let mut config: tokio_postgres::Config =
            settings
                .url
                .parse()
                .map_err(|error: tokio_postgres::Error| DbError::Config {
                    setting: "DATABASE_URL",
                    message: format!(
                        "{error}; write it like postgres://user@127.0.0.1:5432/corebank"
                    ),
                })?;
        if settings.pool_size_max == 0 {
            return Err(DbError::Config {
                setting: "pool_size_max",
                message: "must be at least 1".to_owned(),
            });
        }
        let connect_timeout = Duration::from_millis(settings.connect_timeout_ms);
        let mut session_options = format!(
            "{} -c statement_timeout={} -c lock_timeout={}",
            config.get_options().unwrap_or_default(),
            settings.statement_timeout_ms,
            settings.lock_timeout_ms,
        );
        if let Some(schema) = &settings.search_path {
            if !schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(DbError::Config {
                    setting: "search_path",
                    message: format!("{schema:?} is not a plain schema name"),
                });
            }
            session_options.push_str(&format!(" -c search_path={schema}"));
        }
        if settings.custom_plans {
            session_options.push_str(" -c plan_cache_mode=force_custom_plan");
        }
        config
            .options(session_options.trim())
            .application_name(&settings.application_name)
            .connect_timeout(connect_timeout);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size_max)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(connect_timeout))
            .create_timeout(Some(connect_timeout))
            .recycle_timeout(Some(connect_timeout))
            .build()
            .map_err(|error| DbError::Config {
                setting: "pool_size_max",
                message: error.to_string(),
            })?;
        Ok(Db {
            pool,
            retry: settings.retry.clone(),
            connect_timeout,
            settings: Arc::new(settings.clone()),
        })
    }

    /// A separate pool to the same database with the same settings, of at most
    /// `pool_size_max` connections: for a task that runs on a runtime of its own (the
    /// ledger's batcher), whose connections must be driven by that runtime.
    pub fn sibling(&self, pool_size_max: usize) -> Result<Db, DbError> {
        let mut settings = (*self.settings).clone();
        settings.pool_size_max = pool_size_max;
        Db::connect_lazy(&settings)
    }

    /// A connection from the pool, for reads and for work outside `run_tx`.
    pub async fn client(&self) -> Result<deadpool_postgres::Object, DbError> {
        self.pool.get().await.map_err(|error| DbError::Unavailable {
            message: error.to_string(),
        })
    }

    /// Whether the database answers a trivial query within the connect timeout.
    pub async fn ping(&self) -> Result<(), DbError> {
        let probe = async {
            let client = self.client().await?;
            client
                .simple_query("SELECT 1")
                .await
                .map_err(DbError::Query)?;
            Ok::<(), DbError>(())
        };
        tokio::time::timeout(self.connect_timeout, probe)
            .await
            .map_err(|_| DbError::Unavailable {
                message: format!("no answer within {} ms", self.connect_timeout.as_millis()),
            })?
    }

    /// Closes the pool: no new connections, idle ones are dropped.
    pub fn close(&self) {
        self.pool.close();
    }
}
