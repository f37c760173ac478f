//! The PostgreSQL server a run measures on, and the pgbench baseline measured on it in the same
//! run. Durable settings throughout (fsync and synchronous_commit on): a private server is
//! started for the run unless DATABASE_URL is set.

use std::path::PathBuf;
use std::process::Command as Process;

use anyhow::{Context as _, bail};
use corebank_db::Db;
use corebank_db::local::{LocalPostgres, PgBinaries, ServerTuning, free_port};
use corebank_db::url::{host_and_port, url_for};
use corebank_service::Settings;

use super::RunOptions;

/// The baseline's name in the output and the JSON.
pub const BASELINE_NAME: &str = "pgbench_tpcb";

pub struct Server {
    /// How to reach the server as its superuser, with database `postgres`.
    admin: tokio_postgres::Config,
    binaries_dir: Option<PathBuf>,
    private: Option<(LocalPostgres, tempfile::TempDir)>,
}

impl Server {
    /// Starts the server, runs `measure` on it, and stops it whatever `measure` returned.
    pub async fn run(
        settings: &Settings,
        measure: impl AsyncFnOnce(&Server) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let server = Server::start(settings).await?;
        let outcome = measure(&server).await;
        server.stop().await?;
        outcome
    }

    /// The server at DATABASE_URL, or a private one started for this run.
    async fn start(settings: &Settings) -> anyhow::Result<Server> {
        if let Some(url) = &settings.database_url {
            let mut admin: tokio_postgres::Config = url.parse().context("DATABASE_URL")?;
            admin.dbname("postgres");
            println!("server: DATABASE_URL ({})", corebank_db::url::redact(url));
            return Ok(Server {
                admin,
                binaries_dir: PgBinaries::find().ok().map(|b| b.dir().to_path_buf()),
                private: None,
            });
        }
        let binaries = PgBinaries::find()?;
        let dir = tempfile::Builder::new()
            .prefix("corebank-bench-")
            .tempdir()?;
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        let local = LocalPostgres::new(binaries.clone(), dir.path().join("pg"));
        let port = free_port()?;
        println!(
            "server: private PostgreSQL in {} on 127.0.0.1:{port} (fsync on, synchronous_commit on)",
            local.data_dir().display()
        );
        let starting = local.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            starting.init(&ServerTuning::durable())?;
            starting.start(port)?;
            Ok(())
        })
        .await??;
        let admin: tokio_postgres::Config = LocalPostgres::url(port, "postgres").parse()?;
        Ok(Server {
            admin,
            binaries_dir: Some(binaries.dir().to_path_buf()),
            private: Some((local, dir)),
        })
    }

    /// Stops the benchmark's private PostgreSQL, if it started one.
    async fn stop(&self) -> anyhow::Result<()> {
        if let Some((local, _dir)) = &self.private {
            println!("stopping the benchmark's PostgreSQL");
            let local = local.clone();
            tokio::task::spawn_blocking(move || local.stop()).await??;
        }
        Ok(())
    }

    /// Runs the pgbench baseline, then creates the scratch database `database` with every
    /// migration applied: the baseline's tps and the database's URL.
    pub async fn baseline_then_database(
        &self,
        settings: &Settings,
        pgbench: &RunOptions,
        pgbench_seconds: u64,
        database: &str,
    ) -> anyhow::Result<(f64, String)> {
        let tps = self.pgbench(pgbench, pgbench_seconds).await?;
        println!("baseline: {BASELINE_NAME} {tps:.0} tps");
        self.scratch_database(database).await?;
        let url = url_for(&self.admin, database);
        let db = Db::connect_lazy(&settings.db_settings(&url, "bench"))?;
        corebank_db::migrate::apply(&db, &corebank_db::migrate::embedded()?).await?;
        db.close();
        Ok((tps, url))
    }

    pub async fn drop_database(&self, name: &str) {
        if let Ok(admin) = self.admin_client().await {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }

    async fn admin_client(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) = self
            .admin
            .connect(tokio_postgres::NoTls)
            .await
            .context("connecting to the benchmark's server")?;
        tokio::spawn(connection);
        Ok(client)
    }

    async fn scratch_database(&self, name: &str) -> anyhow::Result<()> {
        let admin = self.admin_client().await?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        Ok(())
    }

    /// pgbench's built-in TPC-B on a scratch database: its tps.
    async fn pgbench(&self, options: &RunOptions, seconds: u64) -> anyhow::Result<f64> {
        let pgbench = self
            .binaries_dir
            .as_ref()
            .map(|dir| dir.join("pgbench"))
            .filter(|path| path.is_file())
            .or_else(|| Some(PathBuf::from("pgbench")))
            .context("pgbench not found")?;
        let database = "corebank_bench_pgbench";
        self.scratch_database(database).await?;
        let (host, port) = host_and_port(&self.admin);
        let user = self.admin.get_user().unwrap_or("postgres").to_owned();
        let password = self
            .admin
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let run = |args: Vec<String>| {
            let pgbench = pgbench.clone();
            let (host, user, password) = (host.clone(), user.clone(), password.clone());
            async move {
                tokio::task::spawn_blocking(move || {
                    let mut command = Process::new(&pgbench);
                    command
                        .args(["-h", &host, "-p", &port.to_string(), "-U", &user])
                        .args(&args)
                        .arg(database);
                    if let Some(password) = password {
                        command.env("PGPASSWORD", password);
                    }
                    // TPC-B as pgbench is normally run: READ COMMITTED, whatever the server's
                    // default.
                    command.env(
                        "PGOPTIONS",
                        "-c default_transaction_isolation=read\\ committed",
                    );
                    command.output()
                })
                .await?
                .context("running pgbench (install PostgreSQL's client package, which has it)")
            }
        };
        let (scale, clients) = (options.pgbench_scale, options.pgbench_clients);
        println!("baseline: pgbench -i -s {scale} (loading)");
        let init = run(vec![
            "-i".into(),
            "-q".into(),
            "-s".into(),
            scale.to_string(),
        ])
        .await?;
        if !init.status.success() {
            bail!(
                "pgbench -i failed: {}",
                String::from_utf8_lossy(&init.stderr)
            );
        }
        println!("baseline: pgbench -c {clients} -j 2 -T {seconds} (TPC-B)");
        let bench = run(vec![
            "-c".into(),
            clients.to_string(),
            "-j".into(),
            "2".into(),
            "-T".into(),
            seconds.to_string(),
        ])
        .await?;
        self.drop_database(database).await;
        let stdout = String::from_utf8_lossy(&bench.stdout);
        if !bench.status.success() {
            bail!(
                "pgbench failed: {}{}",
                stdout,
                String::from_utf8_lossy(&bench.stderr)
            );
        }
        parse_tps(&stdout).with_context(|| format!("no tps line in pgbench's output:\n{stdout}"))
    }
}

/// The tps pgbench prints (`tps = 1234.5 (without initial connection time)`).
fn parse_tps(stdout: &str) -> Option<f64> {
    stdout.lines().find_map(|line| {
        line.trim()
            .strip_prefix("tps = ")
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_is_the_tps_line_of_pgbench_output() {
        let stdout = "transaction type: <builtin: TPC-B (sort of)>\n\
                      number of transactions actually processed: 36000\n\
                      latency average = 8.9 ms\n\
                      initial connection time = 12.3 ms\n\
                      tps = 3600.123456 (without initial connection time)\n";
        assert_eq!(parse_tps(stdout), Some(3600.123456));
        assert_eq!(parse_tps("pgbench: error: connection refused\n"), None);
    }
}
