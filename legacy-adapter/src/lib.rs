//! The legacy side of the strangler fig: the OFS protocol ([`ofs`]) and the core's own
//! formats ([`formats`]); the mock legacy core ([`mock_core`], `corebank serve legacy-core`),
//! a T24-style monolith with its own schema and books; and the anti-corruption layer
//! ([`adapter`], `corebank serve legacy-adapter`) that serves the canonical gRPC contracts in
//! front of it. The protocol and the core's applications: `legacy-adapter/README.md`.

pub mod adapter;
pub mod formats;
pub mod mock_core;
pub mod ofs;
