//! Holding a channel request on a moving account for a moment (ADR 0013): the gateway waits
//! up to `COREBANK_MIGRATION_HOLD_MS` for the move to end and then serves the request on
//! the account's new home; only a move that outlasts the hold is answered 503
//! `account_moving` with `Retry-After`.
//!
//! The hold comes before the idempotency key is taken, so a client that gives up while
//! held has changed nothing, and the same key sent again runs once. A held request costs a
//! task and no database connection: it waits on this replica's directory change feed
//! ([`crate::homes`]), which polls every [`HOLD_POLL`] while anything is held (instead of
//! the route poll), and re-reads its account from the cache each time the feed drops a
//! changed account. At most [`HELD_MAX`] requests are held per replica; beyond that a
//! request on a moving account gets its 503 at once.
//!
//! A request can also pass this replica before it learns of the move (the mark is set on
//! another replica, or by this one a moment after the request looked): the legacy core,
//! frozen for the move, refuses it, and the pipeline frees its key and answers 503
//! `account_moving` ([`Moving`]). [`hold_moving`] does not pass that 503 on while the
//! request's hold lasts: it drops the accounts the request waited on from the replica's
//! cache and sends the same request again, which reads them as the directory has them now,
//! waits for the move's end like any other and runs once, on the new home (a request
//! refused again, because the part that refused it knew of the move before its mark was
//! stored, is sent again only once the feed changes one of its accounts: the mark). The
//! hold is one budget per request, from its arrival ([`hold_deadline`]): a request sent
//! again does not start a new one.
//!
//! A held request's answer says how long it was held: `x-move-held-ms`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::channel::GatewayState;

/// How often the change feed polls while a request is held.
pub const HOLD_POLL: Duration = Duration::from_millis(25);

/// Requests held at once per replica at most.
pub const HELD_MAX: usize = 10_000;

/// The header that says how long a request was held for a move, in milliseconds.
pub const HELD_HEADER: &str = "x-move-held-ms";

/// What the change feed and the held requests share on one replica.
#[derive(Debug)]
pub struct MoveWatch {
    /// Counts the feed's polls that dropped an account; a held request waits for it to move.
    changes: watch::Sender<u64>,
    held: AtomicUsize,
    /// Wakes the feed when the first request is held, so that it polls at [`HOLD_POLL`].
    first_held: Notify,
}

impl Default for MoveWatch {
    fn default() -> MoveWatch {
        MoveWatch {
            changes: watch::Sender::new(0),
            held: AtomicUsize::new(0),
            first_held: Notify::new(),
        }
    }
}

/// One held request; dropping it lets the count down.
#[derive(Debug)]
pub struct Held<'a> {
    watch: &'a MoveWatch,
    pub changes: watch::Receiver<u64>,
    since: Instant,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.watch.held.fetch_sub(1, Ordering::AcqRel);
        let held_for = self.since.elapsed();
        // `try_with` outside a channel request (a test, an internal caller): nothing to say.
        let _ = HELD_FOR.try_with(|total| total.set(total.get() + held_for));
    }
}

impl MoveWatch {
    /// Says that the feed (or this replica's own change) dropped accounts from the cache.
    pub fn changed(&self) {
        self.changes
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Whether any request is held: the feed then polls at [`HOLD_POLL`].
    pub fn holding(&self) -> bool {
        self.held.load(Ordering::Acquire) > 0
    }

    /// Resolves when the first request is held.
    pub async fn first_held(&self) {
        self.first_held.notified().await;
    }

    /// Holds one more request, unless [`HELD_MAX`] are held already.
    pub fn hold(&self) -> Option<Held<'_>> {
        let before = self.held.fetch_add(1, Ordering::AcqRel);
        if before >= HELD_MAX {
            self.held.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        if before == 0 {
            self.first_held.notify_one();
        }
        Some(Held {
            watch: self,
            changes: self.changes.subscribe(),
            since: Instant::now(),
        })
    }
}

tokio::task_local! {
    /// How long the request being served was held, for its `x-move-held-ms`.
    static HELD_FOR: std::cell::Cell<Duration>;
    /// Until when the request being served may be held, from its arrival.
    static HOLD_UNTIL: Instant;
    /// The accounts the request being served waited on ([`gated_on`]).
    static GATED: std::cell::RefCell<Vec<uuid::Uuid>>;
}

/// Says that the channel request being served waits on `account` for any move of it
/// (`crate::channel`'s `settled`): if the core then refuses it as moving, [`hold_moving`]
/// drops the account from this replica's cache before sending the request again, so that it
/// reads the account as the directory has it now rather than as the replica last saw it.
pub fn gated_on(account: uuid::Uuid) {
    let _ = GATED.try_with(|gated| gated.borrow_mut().push(account));
}

/// Until when the channel request being served may be held for a move, if this runs within
/// one ([`hold_moving`] sets it once, at the request's arrival).
pub fn hold_deadline() -> Option<Instant> {
    HOLD_UNTIL.try_with(|until| *until).ok()
}

/// On a 503 `account_moving` answered after the request's idempotency key was freed (the
/// legacy core refused it as the account froze): the same request may be sent again, and
/// runs once.
#[derive(Debug, Clone, Copy)]
pub struct Moving;

/// Where the channel's body reader ([`crate::channel`]'s `Call`) leaves the body it read,
/// so that [`hold_moving`] can send the request again.
#[derive(Debug, Clone, Default)]
pub struct BodyKept(Arc<Mutex<Option<Bytes>>>);

impl BodyKept {
    /// Keeps the body of the request it came with.
    pub fn keep(&self, body: &Bytes) {
        if let Ok(mut kept) = self.0.lock() {
            *kept = Some(body.clone());
        }
    }

    fn taken(&self) -> Option<Bytes> {
        self.0.lock().ok()?.take()
    }
}

/// Middleware of the channel surface: the request's hold budget ([`hold_deadline`]); the
/// request sent again after a [`Moving`] answer while the budget lasts; and, on the answer
/// of a request that was held, how long (`x-move-held-ms`).
pub async fn hold_moving(
    State(state): State<Arc<GatewayState>>,
    request: Request,
    next: Next,
) -> Response {
    let until = Instant::now() + state.migration_hold;
    let served = HOLD_UNTIL.scope(until, async {
        let held = HELD_FOR.scope(std::cell::Cell::new(Duration::ZERO), async {
            let response = sent_while_moving(&state, until, request, next).await;
            (HELD_FOR.with(std::cell::Cell::get), response)
        });
        GATED.scope(std::cell::RefCell::default(), held).await
    });
    let (held, mut response) = served.await;
    if !held.is_zero()
        && let Ok(value) = HeaderValue::from_str(&held.as_millis().to_string())
    {
        response.headers_mut().insert(HELD_HEADER, value);
    }
    response
}

/// Runs the request; while its answer is [`Moving`] and the hold lasts, runs it again: at
/// once the first time, with the accounts it waited on read afresh (the replica had not seen
/// the move's mark: now the request waits for the move's end like any other); after that,
/// once the feed drops one of those accounts again (its mark, set after the refusal).
async fn sent_while_moving(
    state: &GatewayState,
    until: Instant,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let again = (
        parts.method.clone(),
        parts.uri.clone(),
        parts.version,
        parts.headers.clone(),
        parts.extensions.clone(),
    );
    let mut request = Request::from_parts(parts, body);
    let mut sent = 0_u32;
    loop {
        sent += 1;
        let kept = BodyKept::default();
        request.extensions_mut().insert(kept.clone());
        let response = next.clone().run(request).await;
        if response.extensions().get::<Moving>().is_none() || Instant::now() >= until {
            return response;
        }
        let Some(body) = kept.taken() else {
            return response;
        };
        let Some(mut held) = state.directory.moves().hold() else {
            return response;
        };
        let gated = GATED.with(|gated| std::mem::take(&mut *gated.borrow_mut()));
        if sent > 1 {
            // Read afresh on the last sending, its accounts showed no move: the part that
            // refused it knew of the move first (a move that has not yet set its mark).
            // Sent again only once the feed changes one of them, not on other accounts'
            // changes, which come every poll while a migration runs.
            loop {
                match tokio::time::timeout_at(until, held.changes.changed()).await {
                    Ok(Ok(())) => {}
                    Err(_) | Ok(Err(_)) => return response,
                }
                if gated.is_empty()
                    || gated
                        .iter()
                        .any(|account| !state.directory.is_cached(*account))
                {
                    break;
                }
            }
        }
        for account in gated {
            state.directory.forget(account);
        }
        drop(held);
        let (method, uri, version, headers, extensions) = again.clone();
        request = Request::new(Body::from(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.version_mut() = version;
        *request.headers_mut() = headers;
        *request.extensions_mut() = extensions;
        tracing::debug!(
            path = %request.uri().path(),
            "sent again: the core refused it as its account began to move"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_held_request_is_counted_until_it_is_let_go_and_sees_each_change() {
        let watch = MoveWatch::default();
        assert!(!watch.holding());
        let mut held = watch.hold().expect("room to hold");
        assert!(watch.holding());
        watch.changed();
        tokio::time::timeout(Duration::from_secs(1), held.changes.changed())
            .await
            .expect("the change is seen")
            .expect("the sender lives");
        drop(held);
        assert!(!watch.holding());
    }

    #[tokio::test]
    async fn no_more_than_held_max_are_held() {
        let watch = MoveWatch::default();
        watch.held.store(HELD_MAX, Ordering::Release);
        assert!(watch.hold().is_none());
        assert_eq!(watch.held.load(Ordering::Acquire), HELD_MAX);
    }

    #[tokio::test]
    async fn the_first_held_request_wakes_the_feed() {
        let watch = Arc::new(MoveWatch::default());
        let waiting = {
            let watch = Arc::clone(&watch);
            tokio::spawn(async move { watch.first_held().await })
        };
        tokio::task::yield_now().await;
        let _held = watch.hold().expect("room to hold");
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("the feed is woken")
            .expect("the task ends");
    }
}
