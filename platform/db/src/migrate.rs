//! The migrations runner: `migrations/<component>/NNNN_name.sql`, one schema per component,
//! each file applied once in its own SERIALIZABLE transaction and recorded with a checksum
//! in `<component>.schema_migrations`.
//!
//! Tables that a platform library owns (the saga library's, the outbox's, the inbox's) are
//! written once, as a **package** in the library's folder ([`PACKAGES`]), and instantiated in
//! every schema whose `migrations/<component>/uses` names the package: package file `n`
//! becomes version `version_base + n` of that component, applied before the component's own
//! files, with the package file's checksum. A database migrated before the packages existed
//! holds the same tables under the component's own numbers: a package migration whose name
//! the component's history already has (at an own number) is **adopted**, recorded under its
//! new version without running again.

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

/// The packages' files, `component` holding the package's name.
const EMBEDDED_PACKAGES: &[EmbeddedMigration] =
    include!(concat!(env!("OUT_DIR"), "/embedded_packages.rs"));

/// Each component's `uses` file: (component, text).
const EMBEDDED_USES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/embedded_uses.rs"));

/// A set of tables a platform library owns, instantiated in every schema that uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package {
    /// As a component's `uses` file names it.
    pub name: &'static str,
    /// Its folder, from the workspace root (`platform/db/build.rs` embeds the same list).
    pub dir: &'static str,
    /// Package file `n` is version `version_base + n` in a component's history: above every
    /// own file's four digits, so the two never collide.
    pub version_base: i64,
}

/// The packages, in the order a component applies them.
pub const PACKAGES: &[Package] = &[
    Package {
        name: "saga",
        dir: "platform/saga/migrations",
        version_base: 10_000,
    },
    Package {
        name: "outbox",
        dir: "platform/outbox/migrations/outbox",
        version_base: 20_000,
    },
    Package {
        name: "inbox",
        dir: "platform/outbox/migrations/inbox",
        version_base: 30_000,
    },
];

/// One validated migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub component: String,
    pub version: i64,
    pub name: String,
    pub sql: String,
    /// FNV-1a of the file's bytes, in hex: enough to notice an edited file.
    pub checksum: String,
    /// The package this is an instance of, if any.
    pub package: Option<&'static Package>,
}

impl Migration {
    /// `component/NNNN_name.sql` as the file is named in the repository, or
    /// `component/package/NNNN_name.sql` for a package's file instantiated in a component.
    pub fn path(&self) -> String {
        match self.package {
            Some(package) => format!(
                "{}/{}/{:04}_{}.sql",
                self.component,
                package.name,
                self.version - package.version_base,
                self.name
            ),
            None => format!("{}/{:04}_{}.sql", self.component, self.version, self.name),
        }
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
/// `embedded_for(Mocks::Include)`), the packages instantiated, validated and in apply order.
pub fn embedded() -> Result<Vec<Migration>, MigrateError> {
    let own = EMBEDDED
        .iter()
        .map(|m| parse(m.component, m.file_name, m.sql))
        .collect::<Result<Vec<_>, _>>()?;
    let packages = EMBEDDED_PACKAGES
        .iter()
        .map(|m| parse(m.component, m.file_name, m.sql))
        .collect::<Result<Vec<_>, _>>()?;
    let uses = EMBEDDED_USES
        .iter()
        .map(|(component, text)| ((*component).to_owned(), (*text).to_owned()))
        .collect();
    instantiate(own, &packages, &uses)
}

/// The migrations under `dir/<component>/*.sql`, with the packages their `uses` files name
/// read from `dir/../<package dir>`; validated and in apply order.
pub fn load_dir(dir: &Path) -> Result<Vec<Migration>, MigrateError> {
    let io = |source| MigrateError::Io {
        dir: dir.display().to_string(),
        source,
    };
    let mut own = Vec::new();
    let mut uses = BTreeMap::new();
    for component in std::fs::read_dir(dir).map_err(io)? {
        let component = component.map_err(io)?.path();
        if !component.is_dir() {
            continue;
        }
        let component_name = name_of(&component);
        let list = component.join("uses");
        if list.is_file() {
            uses.insert(
                component_name.clone(),
                std::fs::read_to_string(&list).map_err(io)?,
            );
        }
        own.extend(read_sql_files(&component, &component_name)?);
    }
    let mut packages = Vec::new();
    if !uses.is_empty() {
        let root = dir.join("..");
        // A package no component uses may be absent; one that is used and absent is refused
        // by `instantiate`, naming it.
        for package in PACKAGES {
            let dir = root.join(package.dir);
            if dir.is_dir() {
                packages.extend(read_sql_files(&dir, package.name)?);
            }
        }
    }
    instantiate(own, &packages, &uses)
}

/// The `*.sql` files of `dir`, parsed as migrations of `component` (or package).
fn read_sql_files(dir: &Path, component: &str) -> Result<Vec<Migration>, MigrateError> {
    let io = |source| MigrateError::Io {
        dir: dir.display().to_string(),
        source,
    };
    let mut migrations = Vec::new();
    for file in std::fs::read_dir(dir).map_err(io)? {
        let file = file.map_err(io)?.path();
        if file.extension().is_none_or(|ext| ext != "sql") {
            continue;
        }
        let file_name = name_of(&file);
        let sql = std::fs::read_to_string(&file).map_err(io)?;
        migrations.push(parse(component, &file_name, &sql)?);
    }
    Ok(migrations)
}

/// The last part of `path` as text (empty when it has none, or none in UTF-8).
fn name_of(path: &Path) -> String {
    path.file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("")
        .to_owned()
}

/// The components' own migrations plus, for each component, an instance of every package
/// its `uses` names (`packages` holds the packages' files, `component` naming the package).
fn instantiate(
    mut migrations: Vec<Migration>,
    packages: &[Migration],
    uses: &BTreeMap<String, String>,
) -> Result<Vec<Migration>, MigrateError> {
    for (component, text) in uses {
        let names = text
            .lines()
            .map(|line| line.split('#').next().unwrap_or("").trim())
            .filter(|name| !name.is_empty());
        for name in names {
            let package =
                PACKAGES
                    .iter()
                    .find(|p| p.name == name)
                    .ok_or_else(|| MigrateError::BadFile {
                        path: format!("{component}/uses"),
                        problem: format!(
                            "no package {name:?}; the packages are {}",
                            PACKAGES
                                .iter()
                                .map(|p| p.name)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    })?;
            let files: Vec<&Migration> = packages
                .iter()
                .filter(|m| m.component == package.name)
                .collect();
            if files.is_empty() {
                return Err(MigrateError::BadFile {
                    path: format!("{component}/uses"),
                    problem: format!("package {name:?} has no files in {}", package.dir),
                });
            }
            migrations.extend(files.into_iter().map(|file| Migration {
                component: component.clone(),
                version: package.version_base + file.version,
                package: Some(package),
                ..file.clone()
            }));
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
        package: None,
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
    // A component's packages first (their tables are what the component's own files may
    // build on), then its own files; each in version order.
    migrations.sort_by_key(|m| (m.component.clone(), m.package.is_none(), m.version));
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
    /// Package migrations found already applied under the component's own numbers (a
    /// database from before the packages), recorded under their package versions.
    pub adopted: Vec<String>,
}

impl fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} applied, {} already in place",
            self.applied.len(),
            self.already_applied
        )?;
        if !self.adopted.is_empty() {
            write!(
                f,
                ", {} adopted from the components' own files",
                self.adopted.len()
            )?;
        }
        Ok(())
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
                Some((_, found)) if *found == migration.checksum => report.already_applied += 1,
                Some((_, found)) => {
                    return Err(MigrateError::Edited {
                        path: migration.path(),
                        applied: found.clone(),
                        found: migration.checksum.clone(),
                    });
                }
                None if migration.package.is_some()
                    && applied.iter().any(|(version, (name, _))| {
                        *version < PACKAGE_VERSION_MIN && *name == migration.name
                    }) =>
                {
                    adopt(db, migration).await?;
                    tracing::debug!(migration = %migration.path(), "adopted migration");
                    report.adopted.push(migration.path());
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

/// Below this, a component's own versions; from it, its packages' (the first package's base).
const PACKAGE_VERSION_MIN: i64 = PACKAGES[0].version_base;

/// Records a package migration as applied without running it: its tables are there already,
/// made by the component's own file of the same name before the package existed.
async fn adopt(db: &Db, migration: &Migration) -> Result<(), MigrateError> {
    db.run_tx::<(), std::convert::Infallible, _>("migrate_adopt", |tx| {
        Box::pin(async move {
            tx.execute(
                &format!(
                    "INSERT INTO {}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3) \
                     ON CONFLICT (version) DO NOTHING",
                    migration.component
                ),
                &[&migration.version, &migration.name, &migration.checksum],
            )
            .await?;
            Ok(())
        })
    })
    .await
    .map_err(|error| match error {
        TxError::Abort(never) => match never {},
        TxError::Db(source) => MigrateError::Apply {
            path: migration.path(),
            source,
        },
    })
}

/// A component's history: version → (name, checksum).
async fn applied_checksums(
    db: &Db,
    component: &str,
) -> Result<BTreeMap<i64, (String, String)>, MigrateError> {
    let client = db.client().await.map_err(|source| MigrateError::Apply {
        path: format!("{component}/ (history)"),
        source,
    })?;
    let rows = client
        .query(
            &format!("SELECT version, name, checksum FROM {component}.schema_migrations"),
            &[],
        )
        .await
        .map_err(|error| MigrateError::Apply {
            path: format!("{component}/ (history)"),
            source: DbError::Query(error),
        })?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                row.get::<_, i64>(0),
                (row.get::<_, String>(1), row.get::<_, String>(2)),
            )
        })
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
            if applied
                .get(&migration.version)
                .is_some_and(|(_, checksum)| *checksum == migration.checksum)
            {
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

    #[test]
    fn every_package_is_embedded_and_instantiated_where_it_is_used() {
        // build.rs embeds the packages from its own list: the same names as PACKAGES.
        let embedded_names: std::collections::BTreeSet<&str> =
            EMBEDDED_PACKAGES.iter().map(|m| m.component).collect();
        let names: std::collections::BTreeSet<&str> = PACKAGES.iter().map(|p| p.name).collect();
        assert_eq!(embedded_names, names);
        let all = embedded().unwrap();
        let saga_in_payments: Vec<String> = all
            .iter()
            .filter(|m| m.component == "payments" && m.package.is_some_and(|p| p.name == "saga"))
            .map(Migration::path)
            .collect();
        assert_eq!(
            saga_in_payments.first().map(String::as_str),
            Some("payments/saga/0001_create_saga_instances.sql")
        );
        // A component's packages come before its own files.
        let payments: Vec<&Migration> = all.iter().filter(|m| m.component == "payments").collect();
        let first_own = payments.iter().position(|m| m.package.is_none()).unwrap();
        assert!(payments[..first_own].iter().all(|m| m.package.is_some()));
        assert!(payments[first_own..].iter().all(|m| m.package.is_none()));
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
                "migration",
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
