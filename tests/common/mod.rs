//! What the tests that run the real binary share: the internal certificates a `serve`
//! process needs (made once per test process with the development CA) and the settings
//! that put its listeners on free ports.
#![allow(
    dead_code,
    clippy::expect_used,
    reason = "each test binary uses part of this; a fixture that cannot be made stops the test"
)]

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// A directory laid out as `corebank certs` writes it, with every component's certificate.
pub fn certs_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory for certificates");
        corebank_service::internal::pki::dev::ensure_dir(
            dir.path(),
            "corebank.internal",
            corebank_service::internal::component_names::ALL,
        )
        .expect("making development certificates");
        dir
    })
    .path()
}

/// Points `command` at [`certs_dir`] (a development CA, so with `COREBANK_DEV=true`) and
/// puts both listeners on free ports of 127.0.0.1.
pub fn internal_env(command: &mut Command) -> &mut Command {
    // The tests' own HTTP clients need a TLS provider too (reqwest has none of its own).
    corebank_service::internal::install_crypto_provider();
    command
        .env("COREBANK_TLS_DIR", certs_dir())
        .env("COREBANK_DEV", "true")
        .env("COREBANK_HTTP_ADDR", "127.0.0.1:0")
        .env("COREBANK_INTERNAL_ADDR", "127.0.0.1:0")
}
