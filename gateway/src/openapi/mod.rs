//! The API reference: the OpenAPI 3 document of `/v1` (channels) and `/admin/v1`
//! (operators), generated from the handlers' annotations and the request and answer types,
//! served at `/openapi.json`, and Swagger UI at `/docs` (its assets are compiled into the
//! binary: nothing is fetched at build or run time). Both are served without a token.
//!
//! What every operation shares is added here rather than on each handler: the bearer token
//! of its surface, the `Idempotency-Key` header of the mutating `/v1` operations, the
//! routing headers of the routed ones, and the error responses with the one envelope
//! ([`crate::error::ErrorBody`]) and its stable codes.

pub mod formats;

use utoipa::OpenApi;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Ref, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{RefOr, Required};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ErrorBody;
use crate::idempotency::KEY_LENGTH_MAX;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/openapi.json";
/// Where Swagger UI is served.
pub const DOCS_PATH: &str = "/docs";

/// The security schemes: one per surface, told apart by the token's audience.
pub const CHANNEL_SECURITY: &str = "channel_jwt";
pub const ADMIN_SECURITY: &str = "admin_jwt";

/// The name of the error envelope's schema.
pub const ERROR_SCHEMA: &str = "ErrorBody";

/// The `/v1` operations that answer without routing to a side, so without the routing
/// headers: the customer's account list (the directory) and the payment reads and
/// cancellations (the side that holds the payment).
const UNROUTED: &[&str] = &["list_accounts", "get_payment", "cancel_payment"];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "corebank gateway",
        description = "The channel API (`/v1`) and the operators' admin API (`/admin/v1`) of the \
strangler-fig gateway. Every request carries a bearer JWT of its surface's audience. Every \
mutating `/v1` request carries an `Idempotency-Key`: the same key with the same request replays \
the first answer (`Idempotent-Replayed: true`). Routed `/v1` answers tell which core served them \
(`X-Served-By`), under which route version (`X-Route-Version`) and why (`X-Route-Reason`). \
Every refusal and failure is the one error envelope `{code, message, retry_safe}` with a stable \
`code`.",
    ),
    components(schemas(ErrorBody, formats::Amount, formats::CurrencyCode, formats::AmountInCurrency)),
    tags(
        (name = "accounts", description = "Accounts: open, read, list, close"),
        (name = "money", description = "Deposits, withdrawals, holds and transfers"),
        (name = "payments", description = "Payments to other banks (sagas)"),
        (name = "admin: routes", description = "Route rules and account ownership, four eyes"),
        (name = "admin: shadow", description = "Shadow comparison: mismatches and counts"),
        (name = "admin: sagas", description = "Operator actions on the payments' sagas"),
        (name = "admin: products", description = "Both sides' product catalogues and their parity; modern products under four eyes"),
        (name = "admin: migrations", description = "Moving a product's legacy accounts to the modern side: dry runs, starts under four eyes, progress account by account"),
    )
)]
struct ApiDoc;

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    document.merge(crate::channel::openapi());
    document.merge(crate::routing::Router::admin_openapi());
    document.merge(crate::shadow::Shadow::admin_openapi());
    document.merge(crate::sagas::openapi());
    document.merge(crate::approvals::admin::openapi());
    document.merge(crate::products::openapi());
    document.merge(crate::migrations::openapi());
    add_security_schemes(&mut document);
    tie_amounts_to_currencies(&mut document);
    require_a_change_in_route_proposals(&mut document);
    canaries_go_to_the_other_side(&mut document);
    forbid_nul(&mut document);
    for (path, item) in document.paths.paths.iter_mut() {
        if let Some(operation) = item.get.as_mut() {
            decorate(path, false, operation);
        }
        if let Some(operation) = item.post.as_mut() {
            decorate(path, true, operation);
        }
    }
    document
}

/// `/openapi.json` and `/docs` (unauthenticated).
pub fn router() -> axum::Router {
    SwaggerUi::new(DOCS_PATH)
        .url(DOCUMENT_PATH, document())
        .into()
}

/// The bodies with an amount and a currency admit only amounts with at most the currency's
/// minor units of decimals: a schema of its own (`AmountInCurrency`) joined to each.
fn tie_amounts_to_currencies(document: &mut utoipa::openapi::OpenApi) {
    let components = document.components.get_or_insert_with(Default::default);
    for name in crate::channel::json::MONEY_BODIES {
        if let Some(body) = components.schemas.remove(*name) {
            components
                .schemas
                .insert((*name).to_owned(), formats::with_amount_in_currency(body));
        }
    }
}

/// A route proposal gives the rules, or at least one ownership change (else 400).
fn require_a_change_in_route_proposals(document: &mut utoipa::openapi::OpenApi) {
    let gives = |field: &str, items_min: usize| {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .required(field)
            .property(
                field,
                utoipa::openapi::schema::ArrayBuilder::new().min_items(Some(items_min)),
            )
    };
    let change = utoipa::openapi::schema::AnyOfBuilder::new()
        .description(Some("The rules, or at least one ownership change."))
        .item(gives("rules", 0))
        .item(gives("ownership", 1));
    constrain(document, "RouteProposalBody", change);
}

/// The object schema `name`, if the document has it, joined to `constraint` (both hold).
fn constrain(
    document: &mut utoipa::openapi::OpenApi,
    name: &str,
    constraint: utoipa::openapi::schema::AnyOfBuilder,
) {
    let components = document.components.get_or_insert_with(Default::default);
    let Some(schema) = components.schemas.remove(name) else {
        return;
    };
    components.schemas.insert(
        name.to_owned(),
        utoipa::openapi::schema::AllOfBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::Type(Type::Object))
            .item(schema)
            .item(constraint)
            .into(),
    );
}

/// A rule's canary sends accounts to the side that is not its default (else 400).
fn canaries_go_to_the_other_side(document: &mut utoipa::openapi::OpenApi) {
    let default_then_canary = |default_side: &str, canary_side: &str| {
        let side = |name: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([name.to_owned()]))
        };
        // `properties` holds for objects only: an absent or null canary passes.
        ObjectBuilder::new()
            .property("default_side", side(default_side))
            .property(
                "canary",
                ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::SchemaType::AnyValue)
                    .property("side", side(canary_side)),
            )
    };
    let sides = utoipa::openapi::schema::AnyOfBuilder::new()
        .description(Some("A canary's side differs from the default side."))
        .item(default_then_canary("legacy", "modern"))
        .item(default_then_canary("modern", "legacy"));
    constrain(document, "RouteRuleBody", sides);
}

/// No text the API takes may hold U+0000 ([`crate::nul_text`]): every string schema that
/// says nothing else of its content says so.
fn forbid_nul(document: &mut utoipa::openapi::OpenApi) {
    if let Some(components) = document.components.as_mut() {
        components
            .schemas
            .values_mut()
            .for_each(formats::forbid_nul);
    }
    for item in document.paths.paths.values_mut() {
        for operation in [item.get.as_mut(), item.post.as_mut()]
            .into_iter()
            .flatten()
        {
            for parameter in operation.parameters.iter_mut().flatten() {
                if let RefOr::T(parameter) = parameter
                    && let Some(schema) = parameter.schema.as_mut()
                {
                    formats::forbid_nul(schema);
                }
            }
        }
    }
}

fn add_security_schemes(document: &mut utoipa::openapi::OpenApi) {
    let components = document.components.get_or_insert_with(Default::default);
    let bearer = |description: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(description))
                .build(),
        )
    };
    components.add_security_scheme(
        CHANNEL_SECURITY,
        bearer(
            "A JWT for the channel surface: audience `corebank-channel`, with the scopes the \
             operation names (`accounts:read`, `accounts:write`, `payments:write`); a token \
             with a customer claim reaches only that customer's accounts and payments.",
        ),
    );
    components.add_security_scheme(
        ADMIN_SECURITY,
        bearer(
            "A JWT for the operators' surface: audience `corebank-admin`, with the scopes the \
             operation names (`routes:read`, `routes:write`, `routes:approve`). A channel \
             token is refused here, and an admin token on `/v1`.",
        ),
    );
}

fn string_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn header(description: &str) -> Header {
    HeaderBuilder::new()
        .schema(Some(string_schema()))
        .description(Some(description))
        .build()
}

/// An error response: the envelope, and the stable codes this status carries.
fn error_response(status: u16, codes: &str) -> Response {
    let mut response = ResponseBuilder::new()
        .description(format!("The error envelope. Codes: {codes}."))
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ERROR_SCHEMA)))
                .build(),
        )
        .build();
    if status == 401 {
        response
            .headers
            .insert("WWW-Authenticate".to_owned(), RefOr::T(header("`Bearer`")));
    }
    if status == 409 {
        response.headers.insert(
            "Retry-After".to_owned(),
            RefOr::T(header(
                "With `request_in_flight`: seconds to wait before retrying with the same key",
            )),
        );
    }
    if status == 503 && codes.contains("account_moving") {
        response.headers.insert(
            "Retry-After".to_owned(),
            RefOr::T(header(
                "With `account_moving`: seconds to wait before retrying with the same key",
            )),
        );
    }
    response
}

/// The statuses an operation may refuse or fail with, and their codes.
fn errors(channel: bool, mutating: bool, addressed: bool, saga: bool) -> Vec<(u16, String)> {
    let mut errors = vec![(
        400,
        if channel && mutating {
            "`invalid_argument`, `idempotency_key_required`, `invalid_idempotency_key`, or the \
             core's own code for an invalid request"
        } else if channel {
            "`invalid_argument`, or the core's own code for an invalid request"
        } else {
            "`invalid_argument`"
        }
        .to_owned(),
    )];
    errors.push((
        401,
        "`unauthenticated` (no token, or one the gateway does not accept: expired, wrong \
         audience or issuer, bad signature)"
            .to_owned(),
    ));
    errors.push((
        403,
        if channel {
            "`forbidden` (a scope is missing, or the resource is another customer's)"
        } else {
            "`forbidden` (a scope is missing), `four_eyes_required` (an author approving their \
             own route change)"
        }
        .to_owned(),
    ));
    if addressed {
        errors.push((
            404,
            if channel {
                "`unknown_account`, `unknown_hold`, `unknown_payment`, `unknown_product`, or the \
                 core's own code"
            } else {
                "`not_found`"
            }
            .to_owned(),
        ));
    }
    if mutating && (channel || !saga) {
        errors.push((
            409,
            if channel {
                "`request_in_flight` (the same Idempotency-Key is still being processed: retry \
                 after `Retry-After`)"
            } else {
                "`stale_proposal` (another version became active), `proposal_not_pending`, \
                 `not_an_earlier_version` (a rollback to the active version or a later one)"
            }
            .to_owned(),
        ));
    }
    if channel && mutating {
        errors.push((
            422,
            "`idempotency_key_reused` (the key was used for another request), or the \
             core's own code for a refusal (e.g. insufficient funds, a closed account; for a \
             transfer across the cores, either core's)"
                .to_owned(),
        ));
    }
    if channel || saga {
        errors.push((502, "`upstream_error` (the core failed)".to_owned()));
    }
    errors.push((
        503,
        if channel && mutating {
            "`unavailable` (the gateway's database, the token signing keys or the core cannot be \
             reached now; `retry_safe` is true), `account_moving` (an account the request \
             touches is being moved between cores: retry after `Retry-After` with the same \
             Idempotency-Key)"
        } else {
            "`unavailable` (the gateway's database, the token signing keys or the core cannot be \
             reached now; `retry_safe` is true)"
        }
        .to_owned(),
    ));
    if channel || saga {
        errors.push((
            504,
            "`timeout` (retry with the same Idempotency-Key)".to_owned(),
        ));
    }
    errors
}

fn decorate(path: &str, mutating: bool, operation: &mut Operation) {
    let channel = path.starts_with("/v1/");
    let saga = path.starts_with("/admin/v1/sagas") || path.starts_with("/admin/v1/approvals");
    // Every `/v1` mutation names something that may not exist: an account, a payment, or
    // (opening an account) a product.
    let addressed =
        path.contains('{') || (channel && mutating) || path == "/admin/v1/routes/rollback";
    let operation_id = operation.operation_id.clone().unwrap_or_default();
    operation.security = Some(vec![SecurityRequirement::new(
        if channel {
            CHANNEL_SECURITY
        } else {
            ADMIN_SECURITY
        },
        Vec::<String>::new(),
    )]);
    if channel && mutating {
        let key = ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::True)
            .description(Some(
                "A unique value per request (e.g. a UUID). Sending the same key with the same \
                 request again replays the first answer (`Idempotent-Replayed: true`), so a \
                 retry is safe; the same key with another request is refused (422).",
            ))
            .schema(Some(
                // Printable ASCII without spaces, as the kernel's `IdempotencyKey` takes it.
                string_schema()
                    .min_length(Some(1))
                    .max_length(Some(KEY_LENGTH_MAX))
                    .pattern(Some("^[!-~]+$")),
            ))
            .build();
        operation
            .parameters
            .get_or_insert_with(Vec::new)
            .push(RefOr::T(key));
    }
    if path == "/admin/v1/routes/proposals" && mutating {
        operation
            .responses
            .responses
            .entry("422".to_owned())
            .or_insert_with(|| {
                RefOr::T(error_response(
                    422,
                    "`duplicate_ownership_change` (an account named twice in one proposal), \
                     `duplicate_route_rule` (a product and operation given twice), \
                     `canary_on_default_side` (a canary to the side the rule already \
                     defaults to), `empty_proposal` (neither rules nor ownership changes)",
                ))
            });
    }
    let routed = channel && !UNROUTED.contains(&operation_id.as_str());
    for (status, codes) in errors(channel, mutating, addressed, saga) {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(error_response(status, &codes)));
    }
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if routed {
            let routed_note = "Present once the request was routed to a side";
            response.headers.insert(
                "X-Served-By".to_owned(),
                RefOr::T(header(&format!(
                    "`legacy` or `modern`: the core that served the request. {routed_note}."
                ))),
            );
            response.headers.insert(
                "X-Route-Version".to_owned(),
                RefOr::T(header(&format!(
                    "The route version the decision was made with. {routed_note}."
                ))),
            );
            response.headers.insert(
                "X-Route-Reason".to_owned(),
                RefOr::T(header(&format!(
                    "Why that side: `ownership`, `canary`, `default`, `no_rule`, or \
                     `not_on_side` (the decided side does not hold the account). {routed_note}."
                ))),
            );
        }
        if channel && mutating && status.starts_with('2') {
            response.headers.insert(
                "Idempotent-Replayed".to_owned(),
                RefOr::T(header(
                    "`true` when this is the stored answer to an earlier request with the same \
                     Idempotency-Key",
                )),
            );
        }
    }
}
