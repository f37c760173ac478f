//! The shared vocabulary of corebank: money and currencies, typed ids, idempotency keys and
//! clocks. Everything here is pure (no I/O), validated once at construction ("parse, don't
//! validate"), and safe to pass across component boundaries. [`stable_codes!`] declares an
//! error enum with the stable code of each refusal beside it.

#[macro_use]
mod text_form;

pub mod clock;
pub mod currency;
pub mod id;
pub mod idempotency;
pub mod money;
mod stable_code;

pub use clock::{Clock, SystemClock, TestClock};
pub use currency::{Currency, CurrencyError};
pub use id::{AccountId, EventId, IdError, JournalEntryId, SagaId, TransferId};
pub use idempotency::{IdempotencyKey, IdempotencyKeyError};
pub use money::{Money, MoneyError};
