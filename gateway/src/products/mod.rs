//! `/admin/v1/products`: both sides' product catalogues side by side (the legacy adapter's
//! and deposits'), each code with its parity ([`parity`]); and defining or versioning a
//! modern product under four eyes: one operator proposes a definition
//! (`POST /admin/v1/products/proposals`), deposits checks it without storing anything, and
//! only another operator's approval (`/admin/v1/approvals/{id}/approve`, scope
//! `products:approve`) makes deposits store it.
//!
//! - [`definition`]: the body and answer types.
//! - [`parity`]: how two definitions of one code compare.

pub mod definition;
pub mod parity;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use corebank_api::deposits::v1 as pb;
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use crate::approvals::{ApprovalKind, Approvals};
use crate::error::ApiError;
use crate::operator::{self, Context, Reply};
use crate::principal::scope;
use crate::routing::Side;
use crate::upstream::api_error_of;
use definition::{ProductDefinition, ProductView};
use parity::{Difference, Parity};

/// The catalogues' clients and the approvals a definition goes through.
#[derive(Debug, Clone)]
pub struct Products {
    legacy: DepositsClient<Channel>,
    modern: DepositsClient<Channel>,
    approvals: Arc<Approvals>,
}

impl Products {
    pub fn new(
        legacy: DepositsClient<Channel>,
        modern: DepositsClient<Channel>,
        approvals: Arc<Approvals>,
    ) -> Arc<Products> {
        Arc::new(Products {
            legacy,
            modern,
            approvals,
        })
    }
}

/// The routes, over `products`.
pub fn router(products: Arc<Products>) -> axum::Router {
    axum::Router::new()
        .route("/admin/v1/products", get(catalogue))
        .route("/admin/v1/products/proposals", post(propose))
        .with_state(products)
}

/// One product code on both sides.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProductPair {
    pub code: String,
    /// The legacy core's definition (the adapter's catalogue); absent when it has none.
    pub legacy: Option<ProductView>,
    /// Deposits' newest version; absent when it has none.
    pub modern: Option<ProductView>,
    pub parity: Parity,
    /// Each compared field on which the two disagree (only with `different`).
    pub differences: Vec<Difference>,
}

/// Both catalogues, by code.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Catalogue {
    pub products: Vec<ProductPair>,
}

/// The two catalogues paired by code, in code order.
pub fn pair(legacy: &[pb::Product], modern: &[pb::Product]) -> Vec<ProductPair> {
    let mut by_code: BTreeMap<&str, (Option<&pb::Product>, Option<&pb::Product>)> = BTreeMap::new();
    for product in legacy {
        by_code.entry(product.code.as_str()).or_default().0 = Some(product);
    }
    for product in modern {
        by_code.entry(product.code.as_str()).or_default().1 = Some(product);
    }
    by_code
        .into_iter()
        .map(|(code, (legacy, modern))| {
            let (parity, differences) = parity::compare(legacy, modern);
            ProductPair {
                code: code.to_owned(),
                legacy: legacy.map(ProductView::from),
                modern: modern.map(ProductView::from),
                parity,
                differences,
            }
        })
        .collect()
}

async fn listed(
    mut client: DepositsClient<Channel>,
    side: Side,
) -> Result<Vec<pb::Product>, ApiError> {
    client
        .list_products(pb::ListProductsRequest {})
        .await
        .map(|answer| answer.into_inner().products)
        .map_err(|status| api_error_of(&status, side))
}

#[utoipa::path(
    get, path = "/admin/v1/products", tag = "admin: products", operation_id = "list_products",
    summary = "Both sides' product catalogues, side by side, with their parity",
    description = "Scope `routes:read`. Every product code either side knows: the legacy core's definition (from the adapter's catalogue), deposits' newest version, and their parity (`equal`, `different` with each differing field named with both values, `legacy_only`, `modern_only`). Compared: kind, currency, rate tiers, day count, posting frequency, minimum balance, overdraft limit and rate, dormancy, transfer limits; by value (`0` equals `0.00`). Neither catalogue defines fees.",
    responses((status = 200, description = "The paired catalogues", body = Catalogue))
)]
async fn catalogue(
    State(products): State<Arc<Products>>,
    context: Context,
) -> Result<Json<Catalogue>, ApiError> {
    operator::reader(context, scope::ROUTES_READ)?;
    let (legacy, modern) = tokio::try_join!(
        listed(products.legacy.clone(), Side::Legacy),
        listed(products.modern.clone(), Side::Modern),
    )?;
    Ok(Json(Catalogue {
        products: pair(&legacy, &modern),
    }))
}

/// `{"product": {...}, "reason": "..."}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductProposalBody {
    pub product: ProductDefinition,
    #[schema(schema_with = operator::reason_schema)]
    pub reason: String,
}

/// Deposits' answer to the definition, stored nothing: its refusal of a well-formed
/// definition (a product rule) is 422 `invalid_product` with deposits' message.
async fn checked_by_deposits(
    products: &Products,
    definition: &ProductDefinition,
) -> Result<(), ApiError> {
    let mut client = products.modern.clone();
    match client.create_product(definition.request(true)).await {
        Ok(_) => Ok(()),
        Err(status) if status.code() == tonic::Code::InvalidArgument => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_product",
            status.message().to_owned(),
        )),
        Err(status) => Err(api_error_of(&status, Side::Modern)),
    }
}

#[utoipa::path(
    post, path = "/admin/v1/products/proposals", tag = "admin: products",
    operation_id = "propose_product",
    summary = "Propose a modern product, or the next version of one",
    description = "Scope `routes:write`. Deposits checks the definition without storing it (422 `invalid_product` with its reason when a product rule refuses it); the proposal (`product_define`) is stored and audited. Another operator with `products:approve` approves it at `/admin/v1/approvals/{id}/approve`, and only then does deposits store it (a code it has becomes its next version).",
    request_body = ProductProposalBody,
    responses(
        (status = 202, description = "The proposal, `pending`", body = crate::approvals::Approval),
        (status = 422, description = "`invalid_product`: a rule of deposits refuses the definition (an amount's decimals in its currency, a minimum balance with an overdraft, a rate out of bounds); nothing is stored", body = crate::error::ErrorBody),
    )
)]
async fn propose(State(products): State<Arc<Products>>, context: Context, body: Bytes) -> Reply {
    let context = operator::authenticated(context)?;
    let body: ProductProposalBody = operator::parse_body(
        &body,
        r#"{"product": {code, name, kind, currency, day_count, posting_frequency, ...}, "reason": "..."}"#,
    )?;
    body.product.check().map_err(ApiError::invalid)?;
    let parameters = serde_json::to_value(&body.product).map_err(ApiError::internal)?;
    let code = body.product.code.as_str().to_owned();
    // A caller who may not propose is refused (and audited) by `propose` before deposits
    // is asked anything.
    if context.principal.has_scope(scope::ROUTES_WRITE) {
        checked_by_deposits(&products, &body.product).await?;
    }
    crate::approvals::admin::propose(
        &products.approvals,
        &context,
        ApprovalKind::ProductDefine,
        &code,
        parameters,
        &body.reason,
    )
    .await
}

/// Deposits' request for the same definition as `product` (another side's).
pub fn same_definition(product: &pb::Product) -> pb::CreateProductRequest {
    pb::CreateProductRequest {
        code: product.code.clone(),
        name: product.name.clone(),
        kind: product.kind.clone(),
        currency: product.currency.clone(),
        rate_tiers: product.rate_tiers.clone(),
        day_count: product.day_count.clone(),
        posting_frequency: product.posting_frequency.clone(),
        minimum_balance: product.minimum_balance.clone(),
        overdraft_limit: product.overdraft_limit.clone(),
        overdraft_rate: product.overdraft_rate.clone(),
        dormancy_days: product.dormancy_days,
        per_transfer_limit: product.per_transfer_limit.clone(),
        daily_transfer_limit: product.daily_transfer_limit.clone(),
        validate_only: false,
    }
}

/// A development convenience of `corebank up` (never of `serve`): gives the modern side an
/// equivalent, at parity, of every legacy product it lacks, without four eyes, so that a
/// newcomer's tour can route, shadow and migrate a product. Answers each legacy code and
/// whether it was defined on the modern side now (a second run defines nothing).
/// `clients` call as the migration tooling, which may read both catalogues.
pub async fn seed_modern_equivalents(
    clients: &corebank_service::internal::InternalClients,
    legacy_url: &str,
    modern_url: &str,
) -> Result<Vec<(String, bool)>, tonic::Status> {
    use corebank_service::internal::component_names::{DEPOSITS, LEGACY_ADAPTER};
    let client = |url: &str, server: &str| {
        clients
            .endpoint(url, server)
            .map(|endpoint| DepositsClient::new(endpoint.connect_lazy()))
            .map_err(|error| tonic::Status::internal(format!("{server} at {url}: {error}")))
    };
    let (legacy, modern) = (
        client(legacy_url, LEGACY_ADAPTER)?,
        client(modern_url, DEPOSITS)?,
    );
    let list = |mut client: DepositsClient<Channel>| async move {
        client
            .list_products(pb::ListProductsRequest {})
            .await
            .map(|answer| answer.into_inner().products)
    };
    let (legacy_products, modern_products) = tokio::try_join!(list(legacy), list(modern.clone()))?;
    let mut seeded = Vec::new();
    for product in legacy_products {
        let known = modern_products
            .iter()
            .any(|known| known.code == product.code);
        if !known {
            modern
                .clone()
                .create_product(same_definition(&product))
                .await?;
        }
        seeded.push((product.code, !known));
    }
    Ok(seeded)
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(
        paths(catalogue, propose),
        components(schemas(Catalogue, ProductPair, ProductProposalBody))
    )]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(code: &str, day_count: &str) -> pb::Product {
        pb::Product {
            code: code.to_owned(),
            version: 1,
            name: code.to_owned(),
            kind: "current".to_owned(),
            currency: "EUR".to_owned(),
            day_count: day_count.to_owned(),
            posting_frequency: "monthly".to_owned(),
            ..pb::Product::default()
        }
    }

    #[test]
    fn the_catalogues_pair_by_code_in_code_order() {
        let legacy = [product("B", "act_360"), product("A", "act_360")];
        let modern = [product("B", "act_365_fixed"), product("C", "act_360")];
        let pairs = pair(&legacy, &modern);
        let seen: Vec<(&str, Parity)> = pairs.iter().map(|p| (p.code.as_str(), p.parity)).collect();
        assert_eq!(
            seen,
            [
                ("A", Parity::LegacyOnly),
                ("B", Parity::Different),
                ("C", Parity::ModernOnly)
            ]
        );
        assert_eq!(pairs[1].differences.len(), 1);
        assert_eq!(pairs[1].differences[0].field, "day_count");
    }
}
