//! Products: a new product or the next version of its code, and reading them back (each
//! version, which never changes once written, is kept once read).

use corebank_kernel::Currency;
use rust_decimal::Decimal;

use super::{Deposits, parse_currency, parse_money};
use crate::domain::error::DepositsError;
use crate::domain::interest::{DayCount, PostingFrequency, RateTier};
use crate::domain::model::{Product, ProductKind};
use crate::store;

/// A product as a client asks for it. A blank text field is one the client leaves unset:
/// no minimum balance, no overdraft, no transfer limits, a zero rate.
#[derive(Debug, Clone, Default)]
pub struct NewProduct {
    pub code: String,
    pub name: String,
    pub kind: String,
    pub currency: String,
    pub rate_tiers: Vec<(String, String)>,
    pub day_count: String,
    pub posting_frequency: String,
    pub minimum_balance: String,
    pub overdraft_limit: String,
    pub overdraft_rate: String,
    pub dormancy_days: u32,
    pub per_transfer_limit: String,
    pub daily_transfer_limit: String,
}

impl NewProduct {
    /// A current account in EUR with interest at zero, posted monthly, and nothing else set.
    pub fn current(code: &str, name: &str) -> NewProduct {
        NewProduct {
            code: code.to_owned(),
            name: name.to_owned(),
            kind: "current".to_owned(),
            currency: "EUR".to_owned(),
            day_count: "act_365_fixed".to_owned(),
            posting_frequency: "monthly".to_owned(),
            ..NewProduct::default()
        }
    }
}

fn optional_amount(
    field: &str,
    text: &str,
    currency: Currency,
) -> Result<Option<Decimal>, DepositsError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(parse_money(field, text, currency)?.amount()))
}

fn decimal(field: &str, text: &str) -> Result<Decimal, DepositsError> {
    if text.trim().is_empty() {
        return Ok(Decimal::ZERO);
    }
    text.parse::<Decimal>()
        .map_err(|_| DepositsError::invalid(field, format!("{text:?} is not a decimal number")))
}

impl Deposits {
    /// A new product, or the next version of its code.
    pub async fn create_product(&self, new: NewProduct) -> Result<Product, DepositsError> {
        let mut product = self.checked_product(new)?;
        let product_ref = &product;
        let version = self
            .in_tx("deposits_create_product", |tx| {
                Box::pin(async move { store::insert_product(&tx, product_ref).await })
            })
            .await?;
        product.version = version;
        Ok(product)
    }

    /// `new` as [`Deposits::create_product`] would store it (version 0), or its refusal:
    /// nothing is stored (`validate_only`, for a definition proposed under four eyes).
    pub fn checked_product(&self, new: NewProduct) -> Result<Product, DepositsError> {
        let currency = parse_currency(&new.currency)?;
        let kind = ProductKind::parse(&new.kind)
            .ok_or_else(|| DepositsError::invalid("kind", "current or savings"))?;
        let rate_tiers = if new.rate_tiers.is_empty() {
            vec![RateTier {
                from_balance: Decimal::ZERO,
                annual_rate: Decimal::ZERO,
            }]
        } else {
            new.rate_tiers
                .iter()
                .map(|(from, rate)| {
                    Ok(RateTier {
                        from_balance: decimal("rate_tiers.from_balance", from)?,
                        annual_rate: decimal("rate_tiers.annual_rate", rate)?,
                    })
                })
                .collect::<Result<Vec<_>, DepositsError>>()?
        };
        let product = Product {
            code: new.code,
            version: 0,
            name: new.name,
            kind,
            currency,
            rate_tiers,
            day_count: DayCount::parse(&new.day_count)
                .map_err(|e| DepositsError::invalid("day_count", e.to_string()))?,
            posting_frequency: PostingFrequency::parse(&new.posting_frequency)
                .map_err(|e| DepositsError::invalid("posting_frequency", e.to_string()))?,
            minimum_balance: optional_amount("minimum_balance", &new.minimum_balance, currency)?
                .unwrap_or_default(),
            overdraft_limit: optional_amount("overdraft_limit", &new.overdraft_limit, currency)?
                .unwrap_or_default(),
            overdraft_rate: decimal("overdraft_rate", &new.overdraft_rate)?,
            dormancy_days: new.dormancy_days,
            per_transfer_limit: optional_amount(
                "per_transfer_limit",
                &new.per_transfer_limit,
                currency,
            )?,
            daily_transfer_limit: optional_amount(
                "daily_transfer_limit",
                &new.daily_transfer_limit,
                currency,
            )?,
            created_at: self.now(),
        };
        product.validate()?;
        Ok(product)
    }

    pub async fn product(
        &self,
        code: &str,
        version: Option<i64>,
    ) -> Result<Product, DepositsError> {
        if let Some(version) = version
            && let Some(known) = self
                .product_versions
                .lock()
                .ok()
                .and_then(|known| known.get(&(code.to_owned(), version)).cloned())
        {
            return Ok(known);
        }
        let product = self
            .in_tx("deposits_product", |tx| {
                Box::pin(async move { store::product(&tx, code, version).await })
            })
            .await?
            .ok_or_else(|| DepositsError::UnknownProduct {
                code: code.to_owned(),
            })?;
        if let Ok(mut known) = self.product_versions.lock() {
            known.insert((product.code.clone(), product.version), product.clone());
        }
        Ok(product)
    }

    pub async fn products(&self) -> Result<Vec<Product>, DepositsError> {
        self.in_tx("deposits_products", |tx| {
            Box::pin(async move { store::latest_products(&tx).await })
        })
        .await
    }
}
