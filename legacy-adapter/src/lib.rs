//! The legacy adapter ([`adapter`], `corebank serve legacy-adapter`): the anti-corruption
//! layer that serves the canonical gRPC contracts in front of the legacy core, speaking OFS
//! to it over TCP (the codec and the core's formats: `corebank-legacy-ofs`). The mock core it
//! is tested against is a crate of its own, `corebank-legacy-core`, and only a
//! dev-dependency here. The protocol and the mapping: `legacy-adapter/README.md`.

pub mod adapter;
