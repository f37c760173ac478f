//! Embeds every migration under the workspace's `migrations/<component>/NNNN_name.sql`, each
//! component's `uses` file, and the platform libraries' table packages (`PACKAGE_DIRS`, the
//! same list as `migrate::PACKAGES`) into the crate, so the one binary can migrate a
//! database without the source tree beside it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir.join("../../migrations").canonicalize()?;
    println!("cargo:rerun-if-changed={}", root.display());

    let mut files: Vec<(String, String, PathBuf)> = Vec::new();
    for component in sorted_entries(&root)? {
        if !component.is_dir() {
            continue;
        }
        let component_name = file_name(&component)?;
        println!("cargo:rerun-if-changed={}", component.display());
        for file in sorted_entries(&component)? {
            if file.extension().is_some_and(|ext| ext == "sql") {
                files.push((component_name.clone(), file_name(&file)?, file));
            }
        }
    }

    let mut uses = String::from("&[\n");
    for component in sorted_entries(&root)? {
        let list = component.join("uses");
        if list.is_file() {
            println!("cargo:rerun-if-changed={}", list.display());
            writeln!(
                uses,
                "    ({:?}, include_str!({:?})),",
                file_name(&component)?,
                list.display().to_string()
            )?;
        }
    }
    uses.push_str("]\n");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("embedded_uses.rs"), uses)?;

    let workspace = manifest_dir.join("../..").canonicalize()?;
    let mut packages: Vec<(String, String, PathBuf)> = Vec::new();
    for (package, dir) in PACKAGE_DIRS {
        let dir = workspace.join(dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        for file in sorted_entries(&dir)? {
            if file.extension().is_some_and(|ext| ext == "sql") {
                packages.push(((*package).to_owned(), file_name(&file)?, file));
            }
        }
    }
    std::fs::write(out_dir.join("embedded_packages.rs"), embedded(&packages)?)?;

    std::fs::write(out_dir.join("embedded_migrations.rs"), embedded(&files)?)?;
    Ok(())
}

/// The platform libraries' table packages: name and folder (from the workspace root).
const PACKAGE_DIRS: &[(&str, &str)] = &[
    ("saga", "platform/saga/migrations"),
    ("outbox", "platform/outbox/migrations/outbox"),
    ("inbox", "platform/outbox/migrations/inbox"),
];

fn embedded(files: &[(String, String, PathBuf)]) -> Result<String, std::fmt::Error> {
    let mut code = String::from("&[\n");
    for (component, file, path) in files {
        writeln!(
            code,
            "    EmbeddedMigration {{ component: {component:?}, file_name: {file:?}, sql: include_str!({:?}) }},",
            path.display().to_string()
        )?;
    }
    code.push_str("]\n");
    Ok(code)
}

fn sorted_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut entries = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    entries.sort();
    Ok(entries)
}

fn file_name(path: &Path) -> Result<String, Box<dyn std::error::Error>> {
    Ok(path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| format!("{} has no UTF-8 file name", path.display()))?
        .to_owned())
}
