//! The mock legacy core (being built): see legacy-adapter/README.md.
