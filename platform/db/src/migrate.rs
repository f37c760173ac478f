//! The migrations runner: `migrations/<component>/NNNN_name.sql`, one schema per component,
//! each file applied once in its own SERIALIZABLE transaction and recorded with a checksum
//! in `<component>.schema_migrations`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use tokio_postgres::error::SqlState;

use crate::{Db, DbError, TxError};

/// A migration as embedded by `build.rs`.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedMigration {
    pub component: &'static str,
    pub file_name: &'static str,
    pub sql: &'static str,
}

const EMBEDDED: &[EmbeddedMigration] =
    include!(concat!(env!("OUT_DIR"), "/embedded_migrations.rs"));

/// One validated migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub component: String,
    pub version: i64,
    pub name: String,
    pub sql: String,
    /// FNV-1a of the file's bytes, in hex: enough to notice an edited file.
    pub checksum: String,
}

impl Migration {
    /// `component/NNNN_name.sql`, as the file is named in the repository.
    pub fn path(&self) -> String {
        format!("{}/{:04}_{}.sql", self.component, self.version, self.name)
    }
}

/// Why migrations could not be loaded or applied.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("migration {path}: {problem}")]
    BadFile { path: String, problem: String },
    #[error(
        "migration {path} was changed after it was applied (checksum {applied} in the database, \
         {found} in the file); restore the file and add a new migration instead"
    )]
    Edited {
        path: String,
        applied: String,
        found: String,
    },
    #[error("migration {path} failed: {source}")]
    Apply {
        path: String,
        #[source]
        source: DbError,
    },
    #[error("could not read migrations from {dir}: {source}")]
    Io {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

/// The schemas of development mocks, not of a bank's components: the mock legacy core
/// (`legacy_core`, standing in for the bank's real core, which owns its own database) and the
/// demo saga (`demo`). A production `corebank migrate` leaves them out; `corebank up` and the
/// tests run the mocks, so they apply them too.
pub const MOCK_SCHEMAS: &[&str] = &["legacy_core", "demo"];

/// Whether a migration set includes the mocks' schemas ([`MOCK_SCHEMAS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mocks {
    /// Every embedded migration: the real components' and the mocks' (development, tests).
    Include,
    /// Only the real components' schemas (production).
    Exclude,
}

/// Whether `component`'s schema belongs to a mock ([`MOCK_SCHEMAS`]).
pub fn is_mock_schema(component: &str) -> bool {
    MOCK_SCHEMAS.contains(&component)
}

/// The embedded migrations of the real components, and of the mocks too with
/// [`Mocks::Include`]; validated and in apply order.
pub fn embedded_for(mocks: Mocks) -> Result<Vec<Migration>, MigrateError> {
    let all = embedded()?;
    Ok(match mocks {
        Mocks::Include => all,
        Mocks::Exclude => all
            .into_iter()
            .filter(|migration| !is_mock_schema(&migration.component))
            .collect(),
    })
}

/// Every migration compiled into this binary, the mocks' included (as
/// `embedded_for(Mocks::Include)`), validated and in apply order.
pub fn embedded() -> Result<Vec<Migration>, MigrateError> {
    let mut migrations = EMBEDDED
        .iter()
        .map(|m| parse(m.component, m.file_name, m.sql))
        .collect::<Result<Vec<_>, _>>()?;
    check_unique(&mut migrations)?;
    Ok(migrations)
}

/// The migrations under `dir/<component>/*.sql`, validated and in apply order.
pub fn load_dir(dir: &Path) -> Result<Vec<Migration>, MigrateError> {
    let io = |source| MigrateError::Io {
        dir: dir.display().to_string(),
        source,
    };
    let mut migrations = Vec::new();
    for component in std::fs::read_dir(dir).map_err(io)? {
        let component = component.map_err(io)?.path();
        if !component.is_dir() {
            continue;
        }
        let component_name = component
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        for file in std::fs::read_dir(&component).map_err(io)? {
            let file = file.map_err(io)?.path();
            if file.extension().is_none_or(|ext| ext != "sql") {
                continue;
            }
            let file_name = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_owned();
            let sql = std::fs::read_to_string(&file).map_err(io)?;
            migrations.push(parse(&component_name, &file_name, &sql)?);
        }
    }
    check_unique(&mut migrations)?;
    Ok(migrations)
}

fn parse(component: &str, file_name: &str, sql: &str) -> Result<Migration, MigrateError> {
    let bad = |problem: &str| MigrateError::BadFile {
        path: format!("{component}/{file_name}"),
        problem: problem.to_owned(),
    };
    if !is_identifier(component) {
        return Err(bad(
            "the component folder must be a lower-case identifier such as `ledger`",
        ));
    }
    let stem = file_name
        .strip_suffix(".sql")
        .ok_or_else(|| bad("the file name must end in .sql"))?;
    let (digits, name) = stem.split_once('_').ok_or_else(|| {
        bad("the file name must be NNNN_name.sql, such as 0001_create_accounts.sql")
    })?;
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) || !is_identifier(name) {
        return Err(bad(
            "the file name must be NNNN_name.sql, such as 0001_create_accounts.sql",
        ));
    }
    let version: i64 = digits
        .parse()
        .map_err(|_| bad("the version is not a number"))?;
    if version == 0 {
        return Err(bad("versions start at 0001"));
    }
    Ok(Migration {
        component: component.to_owned(),
        version,
        name: name.to_owned(),
        sql: sql.to_owned(),
        checksum: checksum(sql),
    })
}

fn is_identifier(text: &str) -> bool {
    text.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && text.len() <= 63
}

fn check_unique(migrations: &mut [Migration]) -> Result<(), MigrateError> {
    migrations.sort_by(|a, b| (&a.component, a.version).cmp(&(&b.component, b.version)));
    for pair in migrations.windows(2) {
        if pair[0].component == pair[1].component && pair[0].version == pair[1].version {
            return Err(MigrateError::BadFile {
                path: pair[1].path(),
                problem: format!(
                    "version {:04} is used twice ({} and {})",
                    pair[1].version,
                    pair[0].path(),
                    pair[1].path()
                ),
            });
        }
    }
    Ok(())
}

/// FNV-1a over bytes, in hex: enough to notice a change, not meant to resist an attacker.
fn fnv1a_hex<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> String {
    format!("{:016x}", crate::fnv1a(chunks))
}

fn checksum(sql: &str) -> String {
    fnv1a_hex([sql.as_bytes()])
}

/// One value for a whole set of migrations (paths and contents): databases migrated from
/// the same set can be told apart from others, as the testkit's templates are.
pub fn fingerprint(migrations: &[Migration]) -> String {
    let paths: Vec<String> = migrations.iter().map(Migration::path).collect();
    fnv1a_hex(
        paths
            .iter()
            .zip(migrations)
            .flat_map(|(path, m)| [path.as_bytes(), m.checksum.as_bytes()]),
    )
}

/// What `apply` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The migrations applied by this call, in order (`component/NNNN_name.sql`).
    pub applied: Vec<String>,
    /// How many were already in place.
    pub already_applied: usize,
}

impl fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} applied, {} already in place",
            self.applied.len(),
            self.already_applied
        )
    }
}

/// Applies every pending migration, component by component. Safe to run from several
/// processes at once: a migration applied by another runner meanwhile is skipped.
pub async fn apply(db: &Db, migrations: &[Migration]) -> Result<MigrationReport, MigrateError> {
    let mut by_component: BTreeMap<&str, Vec<&Migration>> = BTreeMap::new();
    for migration in migrations {
        by_component
            .entry(migration.component.as_str())
            .or_default()
            .push(migration);
    }
    let mut report = MigrationReport::default();
    for (component, files) in by_component {
        prepare_schema(db, component).await?;
        let applied = applied_checksums(db, component).await?;
        for migration in files {
            match applied.get(&migration.version) {
                Some(found) if *found == migration.checksum => report.already_applied += 1,
                Some(found) => {
                    return Err(MigrateError::Edited {
                        path: migration.path(),
                        applied: found.clone(),
                        found: migration.checksum.clone(),
                    });
                }
                None => {
                    if apply_one(db, migration).await? {
                        // One line a file at debug: callers print the summary (`MigrationReport`).
                        tracing::debug!(migration = %migration.path(), "applied migration");
                        report.applied.push(migration.path());
                    } else {
                        report.already_applied += 1;
                    }
                }
            }
        }
    }
    Ok(report)
}

/// Creates the component's schema and history table. Both statements are idempotent; a
/// concurrent runner creating the same object at the same moment is not an error.
async fn prepare_schema(db: &Db, component: &str) -> Result<(), MigrateError> {
    let statements = [
        format!("CREATE SCHEMA IF NOT EXISTS {component}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {component}.schema_migrations (\
             version INT8 PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        ),
    ];
    let client = db.client().await.map_err(|source| MigrateError::Apply {
        path: format!("{component}/ (schema)"),
        source,
    })?;
    for statement in statements {
        if let Err(error) = client.batch_execute(&statement).await {
            // Two runners creating the same schema or table at once: PostgreSQL reports the
            // loser as a duplicate (of the schema, the table, or the table's row type).
            let concurrent = error.code().is_some_and(|code| {
                *code == SqlState::UNIQUE_VIOLATION
                    || *code == SqlState::DUPLICATE_SCHEMA
                    || *code == SqlState::DUPLICATE_TABLE
                    || *code == SqlState::DUPLICATE_OBJECT
            });
            if !concurrent {
                return Err(MigrateError::Apply {
                    path: format!("{component}/ (schema)"),
                    source: DbError::Query(error),
                });
            }
        }
    }
    Ok(())
}

async fn applied_checksums(
    db: &Db,
    component: &str,
) -> Result<BTreeMap<i64, String>, MigrateError> {
    let client = db.client().await.map_err(|source| MigrateError::Apply {
        path: format!("{component}/ (history)"),
        source,
    })?;
    let rows = client
        .query(
            &format!("SELECT version, checksum FROM {component}.schema_migrations"),
            &[],
        )
        .await
        .map_err(|error| MigrateError::Apply {
            path: format!("{component}/ (history)"),
            source: DbError::Query(error),
        })?;
    Ok(rows
        .iter()
        .map(|row| (row.get::<_, i64>(0), row.get::<_, String>(1)))
        .collect())
}

/// Applies one migration; false when another runner had applied it first.
async fn apply_one(db: &Db, migration: &Migration) -> Result<bool, MigrateError> {
    let outcome = db
        .run_tx::<bool, std::convert::Infallible, _>("migrate", |tx| {
            Box::pin(async move {
                let history = format!("{}.schema_migrations", migration.component);
                let already = tx
                    .query_opt(
                        &format!("SELECT checksum FROM {history} WHERE version = $1"),
                        &[&migration.version],
                    )
                    .await?;
                if already.is_some() {
                    return Ok(false);
                }
                tx.batch_execute(&format!("SET LOCAL search_path TO {}", migration.component))
                    .await?;
                tx.batch_execute(&migration.sql).await?;
                tx.execute(
                    &format!("INSERT INTO {history} (version, name, checksum) VALUES ($1, $2, $3)"),
                    &[&migration.version, &migration.name, &migration.checksum],
                )
                .await?;
                Ok(true)
            })
        })
        .await;
    match outcome {
        Ok(applied) => Ok(applied),
        Err(TxError::Abort(never)) => match never {},
        Err(TxError::Db(source)) => {
            // A concurrent runner may have applied the same file: then this one's DDL or
            // history insert conflicts. Look before calling it a failure.
            let applied = applied_checksums(db, &migration.component).await?;
            if applied.get(&migration.version) == Some(&migration.checksum) {
                Ok(false)
            } else {
                Err(MigrateError::Apply {
                    path: migration.path(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_must_follow_the_convention() {
        assert!(parse("ledger", "0001_create_accounts.sql", "").is_ok());
        for bad in [
            "1_x.sql",
            "0001-x.sql",
            "0001_X.sql",
            "0001_x.txt",
            "0000_x.sql",
            "abcd_x.sql",
        ] {
            assert!(parse("ledger", bad, "").is_err(), "{bad}");
        }
        assert!(parse("Ledger", "0001_x.sql", "").is_err());
    }

    #[test]
    fn a_version_used_twice_is_refused() {
        let mut migrations = vec![
            parse("ledger", "0001_a.sql", "").unwrap(),
            parse("ledger", "0001_b.sql", "").unwrap(),
        ];
        let error = check_unique(&mut migrations).unwrap_err();
        assert!(error.to_string().contains("used twice"), "{error}");
    }

    #[test]
    fn the_checksum_notices_any_edit() {
        assert_ne!(checksum("CREATE TABLE a ()"), checksum("CREATE TABLE b ()"));
        assert_eq!(checksum("x"), checksum("x"));
    }

    #[test]
    fn embedded_migrations_are_valid() {
        embedded().unwrap();
    }

    fn components_of(migrations: &[Migration]) -> std::collections::BTreeSet<&str> {
        migrations.iter().map(|m| m.component.as_str()).collect()
    }

    #[test]
    fn without_mocks_only_the_real_components_schemas_are_migrated() {
        let real = embedded_for(Mocks::Exclude).unwrap();
        // A new migrations folder must be classified here: a real component, or a mock in
        // MOCK_SCHEMAS (else production would create a mock's schema).
        assert_eq!(
            components_of(&real).into_iter().collect::<Vec<_>>(),
            [
                "deposits",
                "gateway",
                "ledger",
                "legacy_adapter",
                "payments"
            ]
        );
        let with_mocks = embedded_for(Mocks::Include).unwrap();
        assert_eq!(with_mocks, embedded().unwrap());
        let components = components_of(&with_mocks);
        for mock in MOCK_SCHEMAS {
            // A renamed mock folder would otherwise slip into production unnoticed.
            assert!(
                components.contains(mock),
                "no migrations for the mock {mock}"
            );
        }
        assert_eq!(
            with_mocks.len() - real.len(),
            with_mocks
                .iter()
                .filter(|m| is_mock_schema(&m.component))
                .count()
        );
    }
}
