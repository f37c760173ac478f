//! Who may call what on an internal listener. Each service (or single method, or HTTP path
//! prefix) is mounted with the components that have business calling it; any other caller
//! is refused with `permission_denied` before the handler runs, and the handler finds the
//! verified [`Caller`] in the request's extensions.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::assertion::CalledPath;
use super::identity::{CALLER_HEADER, Caller, component_names, is_valid_component_name};
use super::listener::PeerIdentity;

/// The components allowed to call a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    /// Only these components.
    Only(Vec<&'static str>),
    /// Any component of the bank that proved who it is (health, metrics, version): every
    /// certificate name but the clearing rail's, which is a party outside the bank.
    AnyInternalComponent,
}

impl Allow {
    pub fn only(components: &[&'static str]) -> Allow {
        Allow::Only(components.to_vec())
    }

    fn permits(&self, component: &str) -> bool {
        match self {
            Allow::Only(components) => components.contains(&component),
            Allow::AnyInternalComponent => component != component_names::RAIL,
        }
    }
}

/// Path prefixes (`/<package.Service>/`, `/<package.Service>/<Method>`, `/payments/rail/v1/`)
/// and who may call them; the longest matching prefix decides, and a path no rule names is
/// open to any verified component of the bank (health, metrics, and the 404 for unknown
/// paths), never to the rail.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    rules: Vec<(String, Allow)>,
}

impl AccessPolicy {
    pub fn allow(&mut self, prefix: impl Into<String>, allow: Allow) {
        self.rules.push((prefix.into(), allow));
    }

    pub fn merge(&mut self, other: AccessPolicy) {
        self.rules.extend(other.rules);
    }

    fn decide(&self, path: &str) -> &Allow {
        self.rules
            .iter()
            .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(&Allow::AnyInternalComponent, |(_, allow)| allow)
    }
}

/// What the access middleware needs: the rules, and whether the listener is plain text
/// (callers then name themselves in [`CALLER_HEADER`]).
#[derive(Debug, Clone)]
pub struct AccessState {
    pub policy: Arc<AccessPolicy>,
    pub insecure: bool,
}

/// The middleware enforcing the policy (`axum::middleware::from_fn_with_state`).
pub async fn enforce(
    State(state): State<Arc<AccessState>>,
    request: Request,
    next: Next,
) -> Response {
    check(&state.policy, state.insecure, request, next).await
}

async fn check(
    policy: &AccessPolicy,
    insecure: bool,
    mut request: Request,
    next: Next,
) -> Response {
    let proved = request
        .extensions()
        .get::<ConnectInfo<PeerIdentity>>()
        .and_then(|info| info.0.0.clone());
    let caller = match proved {
        Some(caller) => caller,
        None if insecure => {
            // Named in the header (HTTP clients), or in the user agent `corebank-<name>`
            // that internal gRPC channels send.
            let header = |name: &str| {
                request
                    .headers()
                    .get(name)
                    .and_then(|value| value.to_str().ok())
            };
            let claimed = header(CALLER_HEADER)
                .or_else(|| {
                    header(header::USER_AGENT.as_str())
                        .and_then(|agent| agent.split(' ').next())
                        .and_then(|agent| agent.strip_prefix("corebank-"))
                })
                .filter(|name| is_valid_component_name(name));
            match claimed {
                Some(name) => Caller::claimed(name.to_owned()),
                None => {
                    return refuse(
                        &request,
                        Refusal::Unauthenticated,
                        &format!(
                            "no caller: with COREBANK_INSECURE_INTERNAL=true a caller names itself in {CALLER_HEADER}"
                        ),
                    );
                }
            }
        }
        None => {
            return refuse(
                &request,
                Refusal::Unauthenticated,
                "no client certificate was proved on this connection",
            );
        }
    };
    let path = request.uri().path();
    if !policy.decide(path).permits(caller.component()) {
        tracing::warn!(
            caller.component = caller.component(),
            caller.verified = caller.is_verified(),
            path,
            "internal call refused: the caller has no business here"
        );
        metrics::counter!("corebank_internal_calls_refused_total", "caller" => caller.component().to_owned())
            .increment(1);
        let message = format!("the component {:?} may not call {path}", caller.component());
        return refuse(&request, Refusal::PermissionDenied, &message);
    }
    let path = CalledPath(path.to_owned());
    request.extensions_mut().insert(path);
    request.extensions_mut().insert(caller);
    next.run(request).await
}

#[derive(Debug, Clone, Copy)]
enum Refusal {
    Unauthenticated,
    PermissionDenied,
}

fn refuse(request: &Request, refusal: Refusal, message: &str) -> Response {
    let is_grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"));
    let (code, status, grpc) = match refusal {
        Refusal::Unauthenticated => (
            "unauthenticated",
            StatusCode::UNAUTHORIZED,
            tonic::Code::Unauthenticated,
        ),
        Refusal::PermissionDenied => (
            "permission_denied",
            StatusCode::FORBIDDEN,
            tonic::Code::PermissionDenied,
        ),
    };
    if is_grpc {
        let mut status = tonic::Status::new(grpc, message);
        status.metadata_mut().insert(
            "corebank-error-code",
            tonic::metadata::MetadataValue::from_static(code),
        );
        let mut response: Response<Body> = status.into_http();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        return response;
    }
    (
        status,
        axum::Json(serde_json::json!({
            "code": code,
            "message": message,
            "retry_safe": false,
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_decides_and_unnamed_paths_are_open_to_components() {
        let mut policy = AccessPolicy::default();
        policy.allow(
            "/corebank.ledger.v1.Ledger/",
            Allow::only(&["deposits", "payments"]),
        );
        policy.allow(
            "/corebank.ledger.v1.Ledger/GetTrialBalance",
            Allow::only(&["deposits", "payments", "migration"]),
        );
        let ledger_write = policy.decide("/corebank.ledger.v1.Ledger/CreateTransfer");
        assert!(ledger_write.permits("deposits"));
        assert!(!ledger_write.permits("migration"));
        assert!(!ledger_write.permits("gateway"));
        assert!(
            policy
                .decide("/corebank.ledger.v1.Ledger/GetTrialBalance")
                .permits("migration")
        );
        assert_eq!(policy.decide("/readyz"), &Allow::AnyInternalComponent);
        assert!(!policy.decide("/metrics").permits("rail"));
        assert!(policy.decide("/metrics").permits("monitoring"));
    }
}
