//! SQL for the ledger's own schema (`ledger`), and nothing else. Batches read and write with
//! array parameters (`= ANY($1)`, `UNNEST`), so a batch costs a fixed number of statements
//! whatever its size. Balances and chain heads are read without `FOR UPDATE`; the batch's
//! `UPDATE`s take the row locks, in sorted order, and SERIALIZABLE catches a conflict (ADR
//! 0004, "Row locks").

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use corebank_db::tokio_postgres::Row;
use corebank_db::tokio_postgres::types::ToSql;
use corebank_db::{Transaction, TxError};
use corebank_kernel::{AccountId, Currency, JournalEntryId};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::domain::apply::{BatchWrites, ChainHead, ReversalTarget};
use crate::domain::command::CanonicalRequest;
use crate::domain::error::LedgerError;
use crate::domain::model::{
    Account, AccountStatus, AccountType, BalanceLimit, Balances, Bucket, Direction, Entry,
    EntryKind, Hold, HoldStatus, LimitKind, Posting,
};

pub type StoreResult<T> = Result<T, TxError<LedgerError>>;

/// A stored value that does not parse: the database holds something the code never writes.
pub fn corrupt(what: impl Into<String>) -> TxError<LedgerError> {
    TxError::Abort(LedgerError::Internal {
        message: format!("stored data does not parse: {}", what.into()),
    })
}

fn uuids<T>(ids: impl IntoIterator<Item = T>, to_uuid: impl Fn(T) -> Uuid) -> Vec<Uuid> {
    ids.into_iter().map(to_uuid).collect()
}

pub fn account_id(uuid: Uuid) -> StoreResult<AccountId> {
    AccountId::from_uuid(uuid).map_err(|e| corrupt(e.to_string()))
}

pub fn entry_id(uuid: Uuid) -> StoreResult<JournalEntryId> {
    JournalEntryId::from_uuid(uuid).map_err(|e| corrupt(e.to_string()))
}

fn currency(code: &str) -> StoreResult<Currency> {
    Currency::from_code(code).map_err(|e| corrupt(e.to_string()))
}

fn metadata_of(value: serde_json::Value) -> StoreResult<BTreeMap<String, String>> {
    serde_json::from_value(value).map_err(|e| corrupt(format!("metadata: {e}")))
}

fn to_i64(value: u64) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| corrupt(format!("{value} does not fit INT8")))
}

fn to_u64(value: i64) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| corrupt(format!("{value} is negative")))
}

fn to_u32(value: i64) -> StoreResult<u32> {
    u32::try_from(value).map_err(|_| corrupt(format!("{value} does not fit u32")))
}

const ACCOUNT_COLUMNS: &str = "id, code, name, currency, account_type, limit_kind, limit_amount, status, \
     debits_frozen, credits_frozen, external_ref, metadata, balance_shards, created_at";

pub fn account_from_row(row: &Row) -> StoreResult<Account> {
    Ok(Account {
        id: account_id(row.get("id"))?,
        code: row.get("code"),
        name: row.get("name"),
        currency: currency(row.get("currency"))?,
        account_type: AccountType::parse(row.get("account_type"))
            .ok_or_else(|| corrupt("account_type"))?,
        limit: BalanceLimit {
            kind: LimitKind::parse(row.get("limit_kind")).ok_or_else(|| corrupt("limit_kind"))?,
            amount: row.get("limit_amount"),
        },
        status: AccountStatus::parse(row.get("status")).ok_or_else(|| corrupt("status"))?,
        debits_frozen: row.get("debits_frozen"),
        credits_frozen: row.get("credits_frozen"),
        external_ref: row.get("external_ref"),
        metadata: metadata_of(row.get("metadata"))?,
        balance_shards: to_u32(row.get("balance_shards"))?,
        created_at: row.get("created_at"),
    })
}

/// The accounts with these ids (missing ones are simply absent).
pub async fn load_accounts(
    tx: &Transaction<'_>,
    ids: &BTreeSet<AccountId>,
) -> StoreResult<HashMap<AccountId, Account>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let statement = tx
        .prepare_cached(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ANY($1)"
        ))
        .await?;
    let rows = tx
        .query(&statement, &[&uuids(ids.iter(), |id| id.as_uuid())])
        .await?;
    rows.iter()
        .map(|row| account_from_row(row).map(|a| (a.id, a)))
        .collect()
}

/// The total balances of these accounts, read in sorted order (not locked: the batch's
/// `UPDATE`s lock the rows; ADR 0004).
pub async fn lock_balances(
    tx: &Transaction<'_>,
    ids: &BTreeSet<AccountId>,
) -> StoreResult<HashMap<AccountId, Balances>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let statement = tx
        .prepare_cached(
            "SELECT account_id, debits_posted, credits_posted, debits_pending, credits_pending \
             FROM account_balances WHERE account_id = ANY($1) ORDER BY account_id, shard",
        )
        .await?;
    let rows = tx
        .query(&statement, &[&uuids(ids.iter(), |id| id.as_uuid())])
        .await?;
    let mut totals: HashMap<AccountId, Balances> = HashMap::new();
    for row in &rows {
        let shard = Balances {
            debits_posted: row.get(1),
            credits_posted: row.get(2),
            debits_pending: row.get(3),
            credits_pending: row.get(4),
        };
        totals
            .entry(account_id(row.get(0))?)
            .or_default()
            .add(&shard);
    }
    Ok(totals)
}

/// The current balances of one account (all shards).
pub async fn balances(tx: &Transaction<'_>, id: AccountId) -> StoreResult<Balances> {
    let statement = tx
        .prepare_cached(
            "SELECT coalesce(sum(debits_posted), 0), coalesce(sum(credits_posted), 0), \
             coalesce(sum(debits_pending), 0), coalesce(sum(credits_pending), 0) \
             FROM account_balances WHERE account_id = $1",
        )
        .await?;
    let row = tx.query_one(&statement, &[&id.as_uuid()]).await?;
    Ok(Balances {
        debits_posted: row.get(0),
        credits_posted: row.get(1),
        debits_pending: row.get(2),
        credits_pending: row.get(3),
    })
}

/// The requests stored under these ids, for idempotency.
pub async fn load_existing(
    tx: &Transaction<'_>,
    ids: &BTreeSet<JournalEntryId>,
) -> StoreResult<HashMap<JournalEntryId, CanonicalRequest>> {
    let statement = tx
        .prepare_cached("SELECT id, request FROM journal_entries WHERE id = ANY($1)")
        .await?;
    let rows = tx
        .query(&statement, &[&uuids(ids.iter(), |id| id.as_uuid())])
        .await?;
    let mut existing = HashMap::with_capacity(rows.len());
    for row in &rows {
        let request: CanonicalRequest =
            serde_json::from_value(row.get(1)).map_err(|e| corrupt(format!("request: {e}")))?;
        existing.insert(entry_id(row.get(0))?, request);
    }
    Ok(existing)
}

fn posting_from_row(row: &Row) -> StoreResult<Posting> {
    Ok(Posting {
        account_id: account_id(row.get("account_id"))?,
        direction: Direction::parse(row.get("direction")).ok_or_else(|| corrupt("direction"))?,
        bucket: Bucket::parse(row.get("bucket")).ok_or_else(|| corrupt("bucket"))?,
        amount: row.get("amount"),
        currency: currency(row.get("currency"))?,
    })
}

async fn postings_of(
    tx: &Transaction<'_>,
    ids: &[Uuid],
) -> StoreResult<HashMap<JournalEntryId, Vec<Posting>>> {
    let statement = tx
        .prepare_cached(
            "SELECT entry_id, account_id, direction, bucket, amount, currency FROM postings \
             WHERE entry_id = ANY($1) ORDER BY entry_id, leg",
        )
        .await?;
    let rows = tx.query(&statement, &[&ids]).await?;
    let mut postings: HashMap<JournalEntryId, Vec<Posting>> = HashMap::new();
    for row in &rows {
        postings
            .entry(entry_id(row.get("entry_id"))?)
            .or_default()
            .push(posting_from_row(row)?);
    }
    Ok(postings)
}

/// The holds and reversal targets among `ids`, holds locked until commit.
pub async fn load_referenced(
    tx: &Transaction<'_>,
    ids: &BTreeSet<JournalEntryId>,
) -> StoreResult<(
    HashMap<JournalEntryId, Hold>,
    HashMap<JournalEntryId, ReversalTarget>,
)> {
    if ids.is_empty() {
        return Ok((HashMap::new(), HashMap::new()));
    }
    let ids: Vec<Uuid> = uuids(ids.iter(), |id| id.as_uuid());
    let entries = tx
        .query(
            &tx.prepare_cached(
                "SELECT e.id, e.kind, r.id AS reversal_id FROM journal_entries e \
                 LEFT JOIN journal_entries r ON r.linked_entry_id = e.id AND r.kind = 'reversal' \
                 WHERE e.id = ANY($1)",
            )
            .await?,
            &[&ids],
        )
        .await?;
    let holds = tx
        .query(
            &tx.prepare_cached(
                "SELECT entry_id, status, expires_at FROM holds WHERE entry_id = ANY($1) ORDER BY entry_id FOR UPDATE",
            )
            .await?,
            &[&ids],
        )
        .await?;
    let mut postings = postings_of(tx, &ids).await?;
    let mut loaded_holds = HashMap::new();
    for row in &holds {
        let id = entry_id(row.get(0))?;
        loaded_holds.insert(
            id,
            Hold {
                entry_id: id,
                status: HoldStatus::parse(row.get(1)).ok_or_else(|| corrupt("hold status"))?,
                expires_at: row.get(2),
                postings: postings.get(&id).cloned().unwrap_or_default(),
            },
        );
    }
    let mut targets = HashMap::new();
    for row in &entries {
        let id = entry_id(row.get(0))?;
        let kind = EntryKind::parse(row.get(1)).ok_or_else(|| corrupt("entry kind"))?;
        let reversed = row.get::<_, Option<Uuid>>(2).is_some();
        targets.insert(
            id,
            ReversalTarget {
                kind,
                postings: postings.remove(&id).unwrap_or_default(),
                reversed,
            },
        );
    }
    Ok((loaded_holds, targets))
}

/// The heads of these chains, read in partition order (not locked: the batch's `UPDATE`
/// locks them; ADR 0004).
pub async fn lock_heads(
    tx: &Transaction<'_>,
    partitions: &BTreeSet<u32>,
) -> StoreResult<HashMap<u32, ChainHead>> {
    let partitions: Vec<i64> = partitions.iter().map(|p| i64::from(*p)).collect();
    let statement = tx
        .prepare_cached(
            "SELECT chain_partition, chain_sequence, hash FROM chain_heads \
             WHERE chain_partition = ANY($1) ORDER BY chain_partition",
        )
        .await?;
    let rows = tx.query(&statement, &[&partitions]).await?;
    let mut heads = HashMap::new();
    for row in &rows {
        heads.insert(
            to_u32(row.get(0))?,
            ChainHead {
                sequence: to_u64(row.get(1))?,
                hash: row.get(2),
            },
        );
    }
    Ok(heads)
}

/// The event published for an entry.
fn event_of(entry: &Entry) -> (String, i64, &'static str, serde_json::Value) {
    let (aggregate, sequence, event_type) = match (entry.kind, entry.linked_entry_id) {
        (EntryKind::PostPending, Some(pending)) => (pending, 2, "ledger.hold.posted"),
        (EntryKind::VoidPending, Some(pending)) => (pending, 2, "ledger.hold.voided"),
        (EntryKind::ExpirePending, Some(pending)) => (pending, 2, "ledger.hold.expired"),
        (EntryKind::Pending, _) => (entry.id, 1, "ledger.hold.created"),
        (EntryKind::Reversal, _) => (entry.id, 1, "ledger.entry.reversed"),
        _ => (entry.id, 1, "ledger.entry.posted"),
    };
    let payload = serde_json::json!({
        "entry_id": entry.id.to_string(),
        "kind": entry.kind.as_str(),
        "linked_entry_id": entry.linked_entry_id.map(|id| id.to_string()),
        "value_date": entry.value_date.to_string(),
        "recorded_at": entry.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "postings": entry.postings.iter().map(|p| serde_json::json!({
            "account_id": p.account_id.to_string(),
            "direction": p.direction.as_str(),
            "bucket": p.bucket.as_str(),
            "amount": p.amount.normalize().to_string(),
            "currency": p.currency.code(),
        })).collect::<Vec<_>>(),
        "hash": entry.hash,
    });
    (aggregate.to_string(), sequence, event_type, payload)
}

const INSERT_ENTRIES: &str = "INSERT INTO journal_entries (id, kind, linked_entry_id, value_date, recorded_at, \
     description, external_ref, metadata, request, chain_partition, chain_sequence, prev_hash, hash) \
     SELECT * FROM UNNEST($1::UUID[], $2::TEXT[], $3::UUID[], $4::DATE[], $5::TIMESTAMPTZ[], $6::TEXT[], \
     $7::TEXT[], $8::JSONB[], $9::JSONB[], $10::INT8[], $11::INT8[], $12::TEXT[], $13::TEXT[])";

const INSERT_POSTINGS: &str = "INSERT INTO postings (entry_id, leg, account_id, direction, bucket, amount, currency, \
     value_date, recorded_at) SELECT * FROM UNNEST($1::UUID[], $2::INT8[], $3::UUID[], $4::TEXT[], $5::TEXT[], \
     $6::NUMERIC[], $7::TEXT[], $8::DATE[], $9::TIMESTAMPTZ[])";

const UPDATE_BALANCES: &str = "UPDATE account_balances AS b SET debits_posted = b.debits_posted + d.dp, \
     credits_posted = b.credits_posted + d.cp, debits_pending = b.debits_pending + d.dpend, \
     credits_pending = b.credits_pending + d.cpend \
     FROM UNNEST($1::UUID[], $2::INT8[], $3::NUMERIC[], $4::NUMERIC[], $5::NUMERIC[], $6::NUMERIC[]) \
     AS d(account_id, shard, dp, cp, dpend, cpend) \
     WHERE b.account_id = d.account_id AND b.shard = d.shard";

const INSERT_HOLDS: &str = "INSERT INTO holds (entry_id, status, expires_at) \
     SELECT id, 'pending', expires_at FROM UNNEST($1::UUID[], $2::TIMESTAMPTZ[]) AS h(id, expires_at)";

const RESOLVE_HOLDS: &str = "UPDATE holds AS h SET status = r.status, resolved_by = r.resolved_by, \
     resolved_at = r.resolved_at FROM UNNEST($1::UUID[], $2::TEXT[], $3::UUID[], $4::TIMESTAMPTZ[]) \
     AS r(entry_id, status, resolved_by, resolved_at) WHERE h.entry_id = r.entry_id AND h.status = 'pending'";

const UPDATE_HEADS: &str = "UPDATE chain_heads AS c SET chain_sequence = h.chain_sequence, hash = h.hash \
     FROM UNNEST($1::INT8[], $2::INT8[], $3::TEXT[]) AS h(chain_partition, chain_sequence, hash) \
     WHERE c.chain_partition = h.chain_partition";

/// The aggregate type of every ledger event: the journal entry (a hold's events belong to
/// the pending entry that created it).
pub const OUTBOX_AGGREGATE_TYPE: &str = "journal_entry";

const INSERT_EVENTS: &str = "INSERT INTO outbox (id, aggregatetype, aggregateid, aggregate_sequence, type, payload, \
     created_at, partition) SELECT id, $7::TEXT, aggregateid, aggregate_sequence, type, payload, $6, partition \
     FROM UNNEST($1::UUID[], $2::TEXT[], $3::INT8[], $4::TEXT[], $5::JSONB[], $8::INT8[]) \
     AS e(id, aggregateid, aggregate_sequence, type, payload, partition)";

/// Writes everything a batch decided: one statement per table, all sent at once
/// (pipelined on the connection), so a batch pays one round trip for its writes.
pub async fn write_batch(tx: &Transaction<'_>, writes: &BatchWrites) -> StoreResult<()> {
    if writes.entries.is_empty() {
        return Ok(());
    }
    let count = writes.entries.len();
    let mut ids = Vec::with_capacity(count);
    let mut kinds = Vec::with_capacity(count);
    let mut linked: Vec<Option<Uuid>> = Vec::with_capacity(count);
    let mut value_dates: Vec<NaiveDate> = Vec::with_capacity(count);
    let mut recorded: Vec<DateTime<Utc>> = Vec::with_capacity(count);
    let mut descriptions = Vec::with_capacity(count);
    let mut external_refs = Vec::with_capacity(count);
    let mut metadata = Vec::with_capacity(count);
    let mut requests = Vec::with_capacity(count);
    let mut partitions = Vec::with_capacity(count);
    let mut sequences = Vec::with_capacity(count);
    let mut prev_hashes = Vec::with_capacity(count);
    let mut hashes = Vec::with_capacity(count);

    let mut p_entry = Vec::new();
    let mut p_leg: Vec<i64> = Vec::new();
    let mut p_account = Vec::new();
    let mut p_direction = Vec::new();
    let mut p_bucket = Vec::new();
    let mut p_amount: Vec<Decimal> = Vec::new();
    let mut p_currency = Vec::new();
    let mut p_value_date = Vec::new();
    let mut p_recorded = Vec::new();

    let mut o_id = Vec::with_capacity(count);
    let mut o_aggregate = Vec::with_capacity(count);
    let mut o_sequence = Vec::with_capacity(count);
    let mut o_type = Vec::with_capacity(count);
    let mut o_payload = Vec::with_capacity(count);
    let mut o_partition = Vec::with_capacity(count);

    for (entry, request) in &writes.entries {
        ids.push(entry.id.as_uuid());
        kinds.push(entry.kind.as_str());
        linked.push(entry.linked_entry_id.map(|id| id.as_uuid()));
        value_dates.push(entry.value_date);
        recorded.push(entry.recorded_at);
        descriptions.push(entry.description.as_str());
        external_refs.push(entry.external_ref.as_str());
        metadata.push(serde_json::to_value(&entry.metadata).map_err(|e| corrupt(e.to_string()))?);
        requests.push(serde_json::to_value(request).map_err(|e| corrupt(e.to_string()))?);
        partitions.push(i64::from(entry.chain_partition));
        sequences.push(to_i64(entry.chain_sequence)?);
        prev_hashes.push(entry.prev_hash.as_str());
        hashes.push(entry.hash.as_str());
        for (leg, posting) in entry.postings.iter().enumerate() {
            p_entry.push(entry.id.as_uuid());
            p_leg.push(i64::try_from(leg).map_err(|_| corrupt("leg index"))?);
            p_account.push(posting.account_id.as_uuid());
            p_direction.push(posting.direction.as_str());
            p_bucket.push(posting.bucket.as_str());
            p_amount.push(posting.amount);
            p_currency.push(posting.currency.code());
            p_value_date.push(entry.value_date);
            p_recorded.push(entry.recorded_at);
        }
        let (aggregate, sequence, event_type, payload) = event_of(entry);
        // The relay partition, as corebank-outbox's writer computes it, so relays lease it.
        o_partition.push(corebank_outbox::partition_of(
            OUTBOX_AGGREGATE_TYPE,
            &aggregate,
            corebank_outbox::PARTITION_COUNT_DEFAULT,
        ));
        o_id.push(Uuid::new_v4());
        o_aggregate.push(aggregate);
        o_sequence.push(sequence);
        o_type.push(event_type);
        o_payload.push(payload);
    }

    let mut d_account = Vec::with_capacity(writes.deltas.len());
    let mut d_shard = Vec::with_capacity(writes.deltas.len());
    let mut d_dp = Vec::with_capacity(writes.deltas.len());
    let mut d_cp = Vec::with_capacity(writes.deltas.len());
    let mut d_dpend = Vec::with_capacity(writes.deltas.len());
    let mut d_cpend = Vec::with_capacity(writes.deltas.len());
    for ((account, shard), delta) in &writes.deltas {
        d_account.push(account.as_uuid());
        d_shard.push(i64::from(*shard));
        d_dp.push(delta.debits_posted);
        d_cp.push(delta.credits_posted);
        d_dpend.push(delta.debits_pending);
        d_cpend.push(delta.credits_pending);
    }
    let new_hold_ids: Vec<Uuid> = writes
        .new_holds
        .iter()
        .map(|(id, _)| id.as_uuid())
        .collect();
    let expiries: Vec<Option<DateTime<Utc>>> = writes.new_holds.iter().map(|(_, at)| *at).collect();
    let resolved_ids: Vec<Uuid> = writes
        .resolved_holds
        .iter()
        .map(|h| h.0.as_uuid())
        .collect();
    let statuses: Vec<&str> = writes.resolved_holds.iter().map(|h| h.1.as_str()).collect();
    let resolved_by: Vec<Uuid> = writes
        .resolved_holds
        .iter()
        .map(|h| h.2.as_uuid())
        .collect();
    let resolved_at: Vec<DateTime<Utc>> = writes.resolved_holds.iter().map(|h| h.3).collect();
    let head_partitions: Vec<i64> = writes.heads.keys().map(|p| i64::from(*p)).collect();
    let head_sequences: Vec<i64> = writes
        .heads
        .values()
        .map(|h| to_i64(h.sequence))
        .collect::<StoreResult<_>>()?;
    let head_hashes: Vec<&str> = writes.heads.values().map(|h| h.hash.as_str()).collect();
    let created_at = writes
        .entries
        .first()
        .map_or_else(Utc::now, |(entry, _)| entry.recorded_at);

    let insert_entries = tx.prepare_cached(INSERT_ENTRIES).await?;
    let insert_postings = tx.prepare_cached(INSERT_POSTINGS).await?;
    let update_balances = tx.prepare_cached(UPDATE_BALANCES).await?;
    let insert_holds = tx.prepare_cached(INSERT_HOLDS).await?;
    let resolve_holds = tx.prepare_cached(RESOLVE_HOLDS).await?;
    let update_heads = tx.prepare_cached(UPDATE_HEADS).await?;
    let insert_events = tx.prepare_cached(INSERT_EVENTS).await?;

    let entries_params: [&(dyn ToSql + Sync); 13] = [
        &ids,
        &kinds,
        &linked,
        &value_dates,
        &recorded,
        &descriptions,
        &external_refs,
        &metadata,
        &requests,
        &partitions,
        &sequences,
        &prev_hashes,
        &hashes,
    ];
    let postings_params: [&(dyn ToSql + Sync); 9] = [
        &p_entry,
        &p_leg,
        &p_account,
        &p_direction,
        &p_bucket,
        &p_amount,
        &p_currency,
        &p_value_date,
        &p_recorded,
    ];
    let balances_params: [&(dyn ToSql + Sync); 6] =
        [&d_account, &d_shard, &d_dp, &d_cp, &d_dpend, &d_cpend];
    let new_holds_params: [&(dyn ToSql + Sync); 2] = [&new_hold_ids, &expiries];
    let resolve_params: [&(dyn ToSql + Sync); 4] =
        [&resolved_ids, &statuses, &resolved_by, &resolved_at];
    let heads_params: [&(dyn ToSql + Sync); 3] = [&head_partitions, &head_sequences, &head_hashes];
    let events_params: [&(dyn ToSql + Sync); 8] = [
        &o_id,
        &o_aggregate,
        &o_sequence,
        &o_type,
        &o_payload,
        &created_at,
        &OUTBOX_AGGREGATE_TYPE,
        &o_partition,
    ];

    // Polled together, these go out back to back on the one connection; PostgreSQL runs them
    // in order, and the batch waits for all the answers at once.
    let (entries, postings, balances, holds_new, holds_done, heads, events) = tokio::join!(
        tx.execute(&insert_entries, &entries_params),
        tx.execute(&insert_postings, &postings_params),
        tx.execute(&update_balances, &balances_params),
        tx.execute(&insert_holds, &new_holds_params),
        tx.execute(&resolve_holds, &resolve_params),
        tx.execute(&update_heads, &heads_params),
        tx.execute(&insert_events, &events_params),
    );
    // Once one statement fails, PostgreSQL refuses the rest ("transaction is aborted"): the
    // first failure in statement order is the cause (a serialization failure, say, which
    // run_tx retries), so results are checked in that order.
    entries?;
    postings?;
    let balances_updated = balances?;
    let holds_inserted = holds_new?;
    let holds_resolved = holds_done?;
    heads?;
    events?;

    // The write path checks its own work: every balance row and hold it meant to change.
    let expected = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    if balances_updated != expected(writes.deltas.len())
        || holds_inserted != expected(writes.new_holds.len())
        || holds_resolved != expected(writes.resolved_holds.len())
    {
        return Err(TxError::Abort(LedgerError::Internal {
            message: format!(
                "balance rows {balances_updated}/{}, holds created {holds_inserted}/{}, holds resolved {holds_resolved}/{}",
                writes.deltas.len(),
                writes.new_holds.len(),
                writes.resolved_holds.len()
            ),
        }));
    }
    Ok(())
}

const ENTRY_COLUMNS: &str = "id, kind, linked_entry_id, value_date, recorded_at, description, external_ref, \
     metadata, chain_partition, chain_sequence, prev_hash, hash";

fn entry_from_row(row: &Row, postings: Vec<Posting>) -> StoreResult<Entry> {
    Ok(Entry {
        id: entry_id(row.get("id"))?,
        kind: EntryKind::parse(row.get("kind")).ok_or_else(|| corrupt("entry kind"))?,
        linked_entry_id: row
            .get::<_, Option<Uuid>>("linked_entry_id")
            .map(entry_id)
            .transpose()?,
        value_date: row.get("value_date"),
        recorded_at: row.get("recorded_at"),
        description: row.get("description"),
        external_ref: row.get("external_ref"),
        metadata: metadata_of(row.get("metadata"))?,
        postings,
        chain_partition: to_u32(row.get("chain_partition"))?,
        chain_sequence: to_u64(row.get("chain_sequence"))?,
        prev_hash: row.get("prev_hash"),
        hash: row.get("hash"),
    })
}

/// Entries by id, with their postings.
pub async fn entries(
    tx: &Transaction<'_>,
    ids: &[JournalEntryId],
) -> StoreResult<HashMap<JournalEntryId, Entry>> {
    let ids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
    let statement = tx
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM journal_entries WHERE id = ANY($1)"
        ))
        .await?;
    let rows = tx.query(&statement, &[&ids]).await?;
    let mut postings = postings_of(tx, &ids).await?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in &rows {
        let id = entry_id(row.get("id"))?;
        found.insert(
            id,
            entry_from_row(row, postings.remove(&id).unwrap_or_default())?,
        );
    }
    Ok(found)
}

/// The most recent entry with this external reference.
pub async fn entry_by_external_ref(
    tx: &Transaction<'_>,
    external_ref: &str,
) -> StoreResult<Option<Entry>> {
    let statement = tx
        .prepare_cached("SELECT id FROM journal_entries WHERE external_ref = $1 AND external_ref <> '' ORDER BY recorded_at DESC, id DESC LIMIT 1")
        .await?;
    let Some(row) = tx.query_opt(&statement, &[&external_ref]).await? else {
        return Ok(None);
    };
    let id = entry_id(row.get(0))?;
    Ok(entries(tx, &[id]).await?.remove(&id))
}

/// The state of a hold.
pub async fn hold(
    tx: &Transaction<'_>,
    id: JournalEntryId,
) -> StoreResult<Option<(HoldStatus, Option<DateTime<Utc>>)>> {
    let statement = tx
        .prepare_cached("SELECT status, expires_at FROM holds WHERE entry_id = $1")
        .await?;
    match tx.query_opt(&statement, &[&id.as_uuid()]).await? {
        Some(row) => Ok(Some((
            HoldStatus::parse(row.get(0)).ok_or_else(|| corrupt("hold status"))?,
            row.get(1),
        ))),
        None => Ok(None),
    }
}

fn sums_to_balances(rows: &[Row]) -> StoreResult<Balances> {
    let mut balances = Balances::default();
    for row in rows {
        let direction = Direction::parse(row.get(0)).ok_or_else(|| corrupt("direction"))?;
        let bucket = Bucket::parse(row.get(1)).ok_or_else(|| corrupt("bucket"))?;
        balances.apply(direction, bucket, row.get(2));
    }
    Ok(balances)
}

/// Balances from the entries recorded at or before `at`.
pub async fn balances_as_of_time(
    tx: &Transaction<'_>,
    id: AccountId,
    at: DateTime<Utc>,
) -> StoreResult<Balances> {
    let statement = tx
        .prepare_cached(
            "SELECT direction, bucket, sum(amount) FROM postings WHERE account_id = $1 AND recorded_at <= $2 \
             GROUP BY direction, bucket",
        )
        .await?;
    sums_to_balances(&tx.query(&statement, &[&id.as_uuid(), &at]).await?)
}

/// Posted balances from the entries with a value date on or before `date`.
pub async fn balances_as_of_value_date(
    tx: &Transaction<'_>,
    id: AccountId,
    date: NaiveDate,
) -> StoreResult<Balances> {
    let statement = tx
        .prepare_cached(
            "SELECT direction, bucket, sum(amount) FROM postings WHERE account_id = $1 AND value_date <= $2 \
             AND bucket = 'posted' GROUP BY direction, bucket",
        )
        .await?;
    sums_to_balances(&tx.query(&statement, &[&id.as_uuid(), &date]).await?)
}

/// Where a statement page starts: after this posting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementCursor {
    pub recorded_at: DateTime<Utc>,
    pub entry_id: Uuid,
    pub leg: i64,
}

/// One posting as a statement shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementRow {
    pub entry_id: JournalEntryId,
    pub leg: i64,
    pub kind: EntryKind,
    pub recorded_at: DateTime<Utc>,
    pub value_date: NaiveDate,
    pub direction: Direction,
    pub bucket: Bucket,
    pub amount: Decimal,
    pub description: String,
}

/// Posted balances of all postings before the cursor, and the page after it.
pub async fn statement_page(
    tx: &Transaction<'_>,
    id: AccountId,
    after: Option<StatementCursor>,
    page_size: i64,
) -> StoreResult<(Balances, Vec<StatementRow>)> {
    // Nothing is recorded before 1970: the epoch stands before every posting.
    let start = after.unwrap_or(StatementCursor {
        recorded_at: DateTime::<Utc>::UNIX_EPOCH,
        entry_id: Uuid::nil(),
        leg: -1,
    });
    let opening = tx
        .query(
            &tx.prepare_cached(
                "SELECT direction, bucket, sum(amount) FROM postings WHERE account_id = $1 \
                 AND (recorded_at, entry_id, leg) <= ($2, $3, $4) GROUP BY direction, bucket",
            )
            .await?,
            &[
                &id.as_uuid(),
                &start.recorded_at,
                &start.entry_id,
                &start.leg,
            ],
        )
        .await?;
    let rows = tx
        .query(
            &tx.prepare_cached(
                "SELECT p.entry_id, p.leg, e.kind, p.recorded_at, p.value_date, p.direction, p.bucket, p.amount, \
                 e.description FROM postings p JOIN journal_entries e ON e.id = p.entry_id \
                 WHERE p.account_id = $1 AND (p.recorded_at, p.entry_id, p.leg) > ($2, $3, $4) \
                 ORDER BY p.recorded_at, p.entry_id, p.leg LIMIT $5",
            )
            .await?,
            &[&id.as_uuid(), &start.recorded_at, &start.entry_id, &start.leg, &page_size],
        )
        .await?;
    let lines = rows
        .iter()
        .map(|row| {
            Ok(StatementRow {
                entry_id: entry_id(row.get(0))?,
                leg: row.get(1),
                kind: EntryKind::parse(row.get(2)).ok_or_else(|| corrupt("entry kind"))?,
                recorded_at: row.get(3),
                value_date: row.get(4),
                direction: Direction::parse(row.get(5)).ok_or_else(|| corrupt("direction"))?,
                bucket: Bucket::parse(row.get(6)).ok_or_else(|| corrupt("bucket"))?,
                amount: row.get(7),
                description: row.get(8),
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((sums_to_balances(&opening)?, lines))
}

/// Posted debits and credits per (currency, account type), from entries recorded by `at`.
pub async fn trial_balance(
    tx: &Transaction<'_>,
    at: DateTime<Utc>,
) -> StoreResult<Vec<(Currency, AccountType, Decimal, Decimal)>> {
    let statement = tx
        .prepare_cached(
            "SELECT p.currency, a.account_type, \
             coalesce(sum(CASE WHEN p.direction = 'debit' THEN p.amount END), 0), \
             coalesce(sum(CASE WHEN p.direction = 'credit' THEN p.amount END), 0) \
             FROM postings p JOIN accounts a ON a.id = p.account_id \
             WHERE p.bucket = 'posted' AND p.recorded_at <= $1 \
             GROUP BY p.currency, a.account_type ORDER BY p.currency, a.account_type",
        )
        .await?;
    let rows = tx.query(&statement, &[&at]).await?;
    rows.iter()
        .map(|row| {
            Ok((
                currency(row.get(0))?,
                AccountType::parse(row.get(1)).ok_or_else(|| corrupt("account_type"))?,
                row.get(2),
                row.get(3),
            ))
        })
        .collect()
}

/// A page of one chain, from `after_sequence` on, with postings.
pub async fn chain_page(
    tx: &Transaction<'_>,
    partition: u32,
    after_sequence: u64,
    limit: i64,
) -> StoreResult<Vec<Entry>> {
    let statement = tx
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM journal_entries WHERE chain_partition = $1 AND chain_sequence > $2 \
             ORDER BY chain_sequence LIMIT $3"
        ))
        .await?;
    let rows = tx
        .query(
            &statement,
            &[&i64::from(partition), &to_i64(after_sequence)?, &limit],
        )
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|row| row.get::<_, Uuid>("id")).collect();
    let mut postings = postings_of(tx, &ids).await?;
    rows.iter()
        .map(|row| {
            let id = entry_id(row.get("id"))?;
            entry_from_row(row, postings.remove(&id).unwrap_or_default())
        })
        .collect()
}

/// The head of one chain, as stored.
pub async fn chain_head(tx: &Transaction<'_>, partition: u32) -> StoreResult<ChainHead> {
    let statement = tx
        .prepare_cached("SELECT chain_sequence, hash FROM chain_heads WHERE chain_partition = $1")
        .await?;
    let row = tx.query_one(&statement, &[&i64::from(partition)]).await?;
    Ok(ChainHead {
        sequence: to_u64(row.get(0))?,
        hash: row.get(1),
    })
}

/// Holds due to expire at `now`, oldest first.
pub async fn due_holds(
    tx: &Transaction<'_>,
    now: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<JournalEntryId>> {
    let statement = tx
        .prepare_cached(
            "SELECT entry_id FROM holds WHERE status = 'pending' AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
        )
        .await?;
    tx.query(&statement, &[&now, &limit])
        .await?
        .iter()
        .map(|row| entry_id(row.get(0)))
        .collect()
}
