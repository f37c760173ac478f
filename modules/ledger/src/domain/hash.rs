//! Tamper evidence: every entry is hashed together with the previous entry's hash in its
//! partition, so changing any stored amount, account or date breaks the chain from there on.
//! Partitions (chosen by entry id) let writers extend different chains without a global lock.

use std::fmt::Write as _;

use corebank_kernel::JournalEntryId;
use sha2::{Digest, Sha256};

use crate::domain::model::Entry;

/// How many hash chains there are; the migration seeds one head per partition.
pub const CHAIN_PARTITIONS: u32 = 16;

/// The hash that starts every chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain an entry belongs to, from its (random) id.
pub fn partition_of(id: JournalEntryId) -> u32 {
    let uuid = id.as_uuid();
    u32::from(uuid.as_bytes()[0]) % CHAIN_PARTITIONS
}

/// SHA-256 over the previous hash and the entry's canonical text, hex-encoded.
pub fn entry_hash(entry: &Entry) -> String {
    let mut hasher = Sha256::new();
    hasher.update(canonical_text(entry).as_bytes());
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Every stored fact of an entry, in a fixed order, with amounts normalized so the same
/// value always prints the same way.
fn canonical_text(entry: &Entry) -> String {
    let mut text = String::with_capacity(256);
    let _ = write!(
        text,
        "v1|{}|{}|{}|{}|{}|{}|{}|{}|{}|",
        entry.prev_hash,
        entry.chain_partition,
        entry.chain_sequence,
        entry.id,
        entry.kind.as_str(),
        entry
            .linked_entry_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        entry.value_date,
        entry.recorded_at.timestamp_micros(),
        escape(&entry.description),
    );
    let _ = write!(text, "{}|", escape(&entry.external_ref));
    for (key, value) in &entry.metadata {
        let _ = write!(text, "{}={};", escape(key), escape(value));
    }
    text.push('|');
    for posting in &entry.postings {
        let _ = write!(
            text,
            "{},{},{},{},{};",
            posting.account_id,
            posting.direction.as_str(),
            posting.bucket.as_str(),
            posting.amount.normalize(),
            posting.currency.code()
        );
    }
    text
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(';', "\\;")
        .replace('=', "\\=")
}
