//! The REST API (documented in `docs/api.md`): axum on a current-thread tokio
//! runtime in its own thread. Handlers do not touch daemon state: each request becomes an
//! [`Op`] sent to the management thread, which stays the only writer of configuration
//! and answers between two iterations of its loop.
#![forbid(unsafe_code)]
use arc_swap::ArcSwapOption;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tokio::sync::oneshot;

/// What the API asks of the management thread.
#[derive(Debug)]
pub enum Op {
    PutService(String, Bytes),
    DeleteService(String),
    PutBackend(String, String, Bytes),
    DeleteBackend(String, String),
    Stats,
    /// Flows of a service (or all), skipping `offset` of them, at most `limit`.
    Flows {
        service: Option<String>,
        offset: usize,
        limit: usize,
    },
    Neighbors,
    Routes,
    Reload,
    Metrics,
}

/// The management thread's answer.
#[derive(Debug)]
pub enum Reply {
    Json(u16, Value),
    Text(String),
}

impl Reply {
    pub fn error(status: u16, msg: impl Into<String>) -> Reply {
        Reply::Json(status, json!({ "error": msg.into() }))
    }
}

pub struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<Reply>,
}

/// Reads the API thread answers itself, from state the management thread publishes
/// (the snapshot and the counters), without the management queue.
pub trait Reads: Send + Sync {
    /// Every service with backends and counters.
    fn services(&self) -> Value;
    /// One service, if it exists.
    fn service(&self, name: &str) -> Option<Value>;
}

/// What the management thread publishes for the API thread to use on its own.
#[derive(Debug, Default)]
pub struct Published {
    /// The bearer token writes need (none: writes are open); replaced when a reload
    /// re-reads `api.token_file`.
    pub token: ArcSwapOption<String>,
    /// The last `/healthz` answer (status, body), refreshed once a second: `/healthz`
    /// never waits behind other requests.
    pub health: ArcSwapOption<(u16, Value)>,
}

/// Requests that may wait for the management thread at once; more wait here, in the
/// API thread, for a slot (bounded), so the queue itself never overflows.
const MGMT_SLOTS: usize = 32;
/// How long a request may wait for a slot before it is answered 503.
const SLOT_WAIT: Duration = Duration::from_secs(5);
/// Open connections at most (below the default file limit of 1024); more wait in the
/// listen backlog.
const MAX_CONNECTIONS: usize = 256;
/// A client must send a request's headers within this, and a whole request is answered
/// within `REQUEST_TIMEOUT`, or the connection is closed / answered 408.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// A keep-alive connection lives at most this long.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Most flows one `GET /api/v1/flows` returns.
pub const MAX_FLOWS_LIMIT: usize = 10_000;

#[derive(Clone)]
struct Api {
    tx: mpsc::SyncSender<Request>,
    published: Arc<Published>,
    reads: Arc<dyn Reads>,
    slots: Arc<tokio::sync::Semaphore>,
}

/// Binds `listen` now (so a busy port fails start-up) and serves on a new thread.
pub fn start(
    listen: std::net::SocketAddr,
    published: Arc<Published>,
    reads: Arc<dyn Reads>,
    tx: mpsc::SyncSender<Request>,
) -> anyhow::Result<std::net::SocketAddr> {
    let std_listener = std::net::TcpListener::bind(listen)
        .map_err(|e| anyhow::anyhow!("api.listen {listen}: {e}"))?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let api = Api {
        tx,
        published,
        reads,
        slots: Arc::new(tokio::sync::Semaphore::new(MGMT_SLOTS)),
    };
    std::thread::Builder::new()
        .name("api".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                serve(listener, router(api)).await;
            });
        })?;
    Ok(addr)
}

/// Serves connections, at most `MAX_CONNECTIONS` at once, each with a header-read
/// timeout and a bounded lifetime (slow or idle clients cannot hold the API).
async fn serve(listener: tokio::net::TcpListener, app: Router) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let conns = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = conns.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors, for instance: wait instead of spinning.
                tracing::warn!("api accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
        });
    }
}

fn router(api: Api) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(|s: State<Api>| ask(s, Op::Metrics)))
        .route(
            "/api/v1/services",
            get(|State(s): State<Api>| async move { axum::Json(s.reads.services()) }),
        )
        .route(
            "/api/v1/services/{name}",
            get(|State(s): State<Api>, Path(n): Path<String>| async move {
                match s.reads.service(&n) {
                    Some(v) => axum::Json(v).into_response(),
                    None => (
                        StatusCode::NOT_FOUND,
                        axum::Json(json!({ "error": format!("no service `{n}`") })),
                    )
                        .into_response(),
                }
            })
            .put(
                |s: State<Api>, h: HeaderMap, Path(n): Path<String>, b: Bytes| {
                    write(s, h, Op::PutService(n, b))
                },
            )
            .delete(|s: State<Api>, h: HeaderMap, Path(n): Path<String>| {
                write(s, h, Op::DeleteService(n))
            }),
        )
        .route(
            "/api/v1/services/{name}/backends/{backend}",
            put(
                |s: State<Api>, h: HeaderMap, Path((n, b)): Path<(String, String)>, body: Bytes| {
                    write(s, h, Op::PutBackend(n, b, body))
                },
            )
            .delete(
                |s: State<Api>, h: HeaderMap, Path((n, b)): Path<(String, String)>| {
                    write(s, h, Op::DeleteBackend(n, b))
                },
            ),
        )
        .route("/api/v1/stats", get(|s: State<Api>| ask(s, Op::Stats)))
        .route(
            "/api/v1/flows",
            get(|s: State<Api>, Query(q): Query<FlowsQuery>| {
                let op = Op::Flows {
                    service: q.service,
                    offset: q.offset.unwrap_or(0),
                    limit: q.limit.unwrap_or(100).min(MAX_FLOWS_LIMIT),
                };
                ask(s, op)
            }),
        )
        .route(
            "/api/v1/neighbors",
            get(|s: State<Api>| ask(s, Op::Neighbors)),
        )
        .route("/api/v1/routes", get(|s: State<Api>| ask(s, Op::Routes)))
        .route(
            "/api/v1/reload",
            post(|s: State<Api>, h: HeaderMap| write(s, h, Op::Reload)),
        )
        .fallback(|m: Method| async move {
            let _ = m;
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({ "error": "no such endpoint" })),
            )
        })
        .method_not_allowed_fallback(|m: Method| async move {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                axum::Json(json!({ "error": format!("method {m} not allowed here") })),
            )
        })
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::middleware::from_fn(request_timeout))
        .with_state(api)
}

/// A request (body included) must be read and answered within `REQUEST_TIMEOUT`.
async fn request_timeout(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            axum::Json(json!({ "error": "request not completed in time" })),
        )
            .into_response(),
    }
}

/// `/healthz` from what the management thread last published: never queued.
async fn healthz(State(s): State<Api>) -> Response {
    match s.published.health.load_full() {
        Some(h) => (
            StatusCode::from_u16(h.0).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            axum::Json(h.1.clone()),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "starting", "error": "not running yet" })),
        )
            .into_response(),
    }
}

/// Every error answer is `{"error": ...}`: the ones axum makes itself (a bad path or query,
/// a body too large) come as plain text and are wrapped here.
async fn json_errors(r: Response) -> Response {
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(r.status().is_client_error() || r.status().is_server_error()) || is_json {
        return r;
    }
    let status = r.status();
    let text = axum::body::to_bytes(r.into_body(), 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let msg = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    (status, axum::Json(json!({ "error": msg }))).into_response()
}

/// Compares a presented token with the configured one in time that does not depend on
/// where they first differ.
fn token_matches(given: Option<&str>, token: &str) -> bool {
    let Some(given) = given else { return false };
    let (a, b) = (given.as_bytes(), token.as_bytes());
    let diff = a.iter().zip(b).fold(
        (a.len() ^ b.len()) as u8 | (a.len() != b.len()) as u8,
        |d, (x, y)| d | (x ^ y),
    );
    diff == 0
}

#[derive(Deserialize)]
struct FlowsQuery {
    service: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn write(s: State<Api>, headers: HeaderMap, op: Op) -> Response {
    if let Some(token) = s.published.token.load().as_deref() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !token_matches(given, token) {
            return (StatusCode::UNAUTHORIZED, axum::Json(json!({ "error": "writes need Authorization: Bearer <token> (api.token_file)" })))
                .into_response();
        }
    }
    ask(s, op).await
}

async fn ask(State(s): State<Api>, op: Op) -> Response {
    let Ok(Ok(_slot)) = tokio::time::timeout(SLOT_WAIT, s.slots.acquire()).await else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "error": "management thread busy: try again" })),
        )
            .into_response();
    };
    let (reply, rx) = oneshot::channel();
    if s.tx.try_send(Request { op, reply }).is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "error": "management thread busy" })),
        )
            .into_response();
    }
    match tokio::time::timeout(Duration::from_secs(5), rx).await {
        Ok(Ok(Reply::Json(status, v))) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(v),
        )
            .into_response(),
        Ok(Ok(Reply::Text(t))) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            t,
        )
            .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "error": "management thread did not answer" })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_comparison() {
        use super::token_matches as m;
        assert!(m(Some("s3cret"), "s3cret"));
        assert!(!m(Some("s3creT"), "s3cret"));
        assert!(!m(Some("s3cre"), "s3cret"));
        assert!(!m(Some("s3crett"), "s3cret"));
        assert!(!m(Some(""), "s3cret"));
        assert!(!m(None, "s3cret"));
    }
}
