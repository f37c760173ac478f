//! The anti-corruption layer (being built): see legacy-adapter/README.md.
