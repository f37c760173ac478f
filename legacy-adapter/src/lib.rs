//! The legacy side of the strangler fig: the mock legacy core ([`mock_core`],
//! `corebank serve legacy-core`), a T24-style monolith with its own schema and books; and the
//! anti-corruption layer ([`adapter`], `corebank serve legacy-adapter`) that serves the
//! canonical gRPC contracts in front of it. Both speak OFS with the core's formats, from
//! `corebank-legacy-ofs`. The protocol and the core's applications:
//! `legacy-adapter/README.md`.

pub mod adapter;
pub mod mock_core;
