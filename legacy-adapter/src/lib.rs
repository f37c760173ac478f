//! The legacy side of the strangler fig: the OFS protocol the mock legacy core speaks
//! ([`ofs`]); the mock core and the adapter build on it.

pub mod formats;
pub mod ofs;
