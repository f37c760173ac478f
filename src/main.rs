//! The one corebank binary: `up`, `serve`, `migrate`, `config`, `bench`, `outbox`, `legacy`, `token`. The work lives in the library
//! crates; this file only parses the command line and reports errors.

mod cli;
mod legacy;
mod migrate_accounts;
mod outbox;
mod serve;
mod token;
#[cfg(feature = "mocks")]
mod up;

use std::process::ExitCode;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // reqwest is built without a TLS provider of its own: ring, for every client.
    corebank_service::internal::install_crypto_provider();
    match runtime.block_on(cli::run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
