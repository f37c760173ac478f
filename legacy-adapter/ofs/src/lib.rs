//! What the legacy core and its clients share: OFS, the core's line protocol (the codec, at
//! the crate root), and the core's own formats ([`formats`]). The mock core
//! (`corebank-legacy-core`) and the adapter (`corebank-legacy`) both build on this crate, so
//! the adapter never depends on the mock. The protocol and the formats:
//! `legacy-adapter/README.md`.

pub mod bulk;
pub mod formats;
// The codec is a file of its own that needs nothing but `thiserror`, so the fuzz targets
// (`fuzz/`) compile it alone with `#[path]`.
mod ofs;

pub use ofs::*;
