//! Bulk OFS: several input messages carried out in one transaction of the core, the way
//! Temenos's OFS bulk manager takes a batch of messages in one go.
//!
//! A bulk is a header line `OFS.BULK,<count>` followed by `count` request lines; the core
//! answers with `count` answer lines, in the same order, after one commit. Each message is
//! carried out on its own (a refusal of one is its answer and undoes only that message);
//! the bulk as a whole commits once, so it takes the core's journal counter once. Only
//! messages that [`bulkable`] allows may be in a bulk: the core's account migration
//! actions, each idempotent by the account's state, so a bulk whose answer was lost is
//! settled message by message as any lost input is.

use crate::{Function, OfsError, Process, Request};

/// What a bulk's header line starts with.
pub const BULK_PREFIX: &str = "OFS.BULK,";

/// The most messages in one bulk.
pub const BULK_MAX: usize = 64;

/// The header line of a bulk of `count` messages.
pub fn bulk_header(count: usize) -> String {
    format!("{BULK_PREFIX}{count}")
}

/// `None` for a line that is not a bulk's header; else the count of messages that follow,
/// or why the header is wrong.
pub fn parse_bulk_header(line: &str) -> Option<Result<usize, OfsError>> {
    let count = line.strip_prefix(BULK_PREFIX)?;
    Some(
        count
            .parse::<usize>()
            .ok()
            .filter(|count| (1..=BULK_MAX).contains(count))
            .ok_or_else(|| OfsError::Malformed {
                part: "OFS.BULK".to_owned(),
                message: format!("the count must be 1 to {BULK_MAX}, not {count:?}"),
            }),
    )
}

/// Whether `request` may travel in a bulk: an input, carried out, of the core's account
/// migration (`AC.ACCOUNT.MIGRATION`).
pub fn bulkable(request: &Request) -> bool {
    request.application == "AC.ACCOUNT.MIGRATION"
        && request.function == Function::Input
        && request.process == Process::Process
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_counts_one_to_bulk_max_messages() {
        assert_eq!(parse_bulk_header(&bulk_header(3)), Some(Ok(3)));
        assert_eq!(
            parse_bulk_header(&bulk_header(BULK_MAX)),
            Some(Ok(BULK_MAX))
        );
        for bad in [
            "OFS.BULK,0",
            "OFS.BULK,65",
            "OFS.BULK,",
            "OFS.BULK,x",
            "OFS.BULK,-1",
        ] {
            let error = parse_bulk_header(bad).unwrap_or_else(|| panic!("{bad} is a header"));
            assert_eq!(error.unwrap_err().code(), "ofs_malformed", "{bad}");
        }
        assert_eq!(parse_bulk_header("ACCOUNT,/S/PROCESS//0,U/P,EUR1"), None);
    }

    #[test]
    fn only_migration_inputs_travel_in_a_bulk() {
        let request = |application: &str, function: Function, process: Process| Request {
            application: application.to_owned(),
            version: String::new(),
            function,
            process,
            authorisers: None,
            user: String::new(),
            password: String::new(),
            transaction_id: "EUR1".to_owned(),
            fields: Vec::new(),
        };
        let migration = "AC.ACCOUNT.MIGRATION";
        assert!(bulkable(&request(
            migration,
            Function::Input,
            Process::Process
        )));
        assert!(!bulkable(&request(
            migration,
            Function::See,
            Process::Process
        )));
        assert!(!bulkable(&request(
            migration,
            Function::Input,
            Process::Validate
        )));
        assert!(!bulkable(&request(
            "FUNDS.TRANSFER",
            Function::Input,
            Process::Process
        )));
    }
}
