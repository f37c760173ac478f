//! The portability lint catches each rule in its own bad fixture, passes a portable file,
//! and passes every real migration of the workspace.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use corebank_db::lint::{self, Rule};

const EVERY_RULE: &[Rule] = &[
    Rule::Serial,
    Rule::Sequence,
    Rule::Identity,
    Rule::Trigger,
    Rule::Function,
    Rule::DoBlock,
    Rule::ListenNotify,
    Rule::AdvisoryLock,
    Rule::Domain,
    Rule::RangeType,
    Rule::Extension,
    Rule::BareInt,
    Rule::Float,
    Rule::NumericPrecision,
    Rule::Partitioning,
    Rule::TransactionControl,
    Rule::MultipleSchemaChanges,
    Rule::SchemaChangeWithData,
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lint")
}

#[test]
fn each_bad_fixture_trips_exactly_its_own_rule() {
    for rule in EVERY_RULE {
        let path = fixtures().join(format!("{}.sql", rule.code()));
        let sql = std::fs::read_to_string(&path).unwrap_or_else(|error| {
            panic!("every rule needs a fixture: {}: {error}", path.display())
        });
        let found: BTreeSet<&str> = lint::lint(rule.code(), &sql)
            .iter()
            .map(|f| f.rule.code())
            .collect();
        assert_eq!(
            found,
            BTreeSet::from([rule.code()]),
            "fixture {}",
            path.display()
        );
    }
}

#[test]
fn every_fixture_file_belongs_to_a_rule_or_is_the_portable_one() {
    let codes: BTreeSet<String> = EVERY_RULE
        .iter()
        .map(|r| format!("{}.sql", r.code()))
        .collect();
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            codes.contains(&name) || name == "portable.sql",
            "stray fixture {name}"
        );
    }
}

#[test]
fn a_portable_migration_passes() {
    let sql = std::fs::read_to_string(fixtures().join("portable.sql")).unwrap();
    let findings = lint::lint("portable.sql", &sql);
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn migrations_follow_the_portability_rules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let migrations = corebank_db::migrate::load_dir(&root).unwrap();
    let embedded = corebank_db::migrate::embedded().unwrap();
    assert_eq!(
        migrations, embedded,
        "the binary embeds exactly the files in migrations/"
    );
    let findings: Vec<String> = migrations
        .iter()
        .flat_map(|m| lint::lint(&m.path(), &m.sql))
        .map(|finding| finding.to_string())
        .collect();
    assert!(
        findings.is_empty(),
        "migrations that will not run on CockroachDB:\n{}",
        findings.join("\n")
    );
}
