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
    Snat,
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
        Reply::json(status, &crate::model::ErrorBody { error: msg.into() })
    }
    /// A typed answer (one of [`crate::model`]'s types).
    pub fn json<T: serde::Serialize>(status: u16, v: &T) -> Reply {
        Reply::Json(status, serde_json::to_value(v).unwrap_or(Value::Null))
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Reply::Json(status, v) => (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                axum::Json(v),
            )
                .into_response(),
            Reply::Text(t) => (
                [(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                t,
            )
                .into_response(),
        }
    }
}

pub struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<Reply>,
}

/// Reads the API thread answers itself, from state the management thread publishes
/// (the snapshot and the counters), without the management queue.
pub trait Reads: Send + Sync {
    /// The BGP peers and announcements (None: BGP is not configured).
    fn bgp(&self) -> Option<crate::model::BgpView>;
    /// Every checked backend's health.
    fn health(&self) -> Vec<crate::model::HealthRow>;
    /// Every service with backends and counters.
    fn services(&self) -> Vec<crate::model::ServiceView>;
    /// One service, if it exists.
    fn service(&self, name: &str) -> Option<crate::model::ServiceView>;
}

/// What the management thread publishes for the API thread to use on its own.
#[derive(Debug, Default)]
pub struct Published {
    /// The bearer token writes need (none: writes are open); replaced when a reload
    /// re-reads `api.token_file`.
    pub token: ArcSwapOption<String>,
    /// The last `/healthz` answer (status, body), refreshed once a second: `/healthz`
    /// never waits behind other requests.
    pub health: ArcSwapOption<(u16, crate::model::HealthView)>,
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
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/services", get(services))
        .route(
            "/api/v1/services/{name}",
            get(service).put(put_service).delete(delete_service),
        )
        .route(
            "/api/v1/services/{name}/backends/{backend}",
            put(put_backend).delete(delete_backend),
        )
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/health", get(health))
        .route("/api/v1/bgp", get(bgp))
        .route("/api/v1/flows", get(flows))
        .route("/api/v1/neighbors", get(neighbors))
        .route("/api/v1/routes", get(routes))
        .route("/api/v1/snat", get(snat))
        .route("/api/v1/reload", post(reload))
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

/// The OpenAPI 3 description of this API, generated from the handlers below and the
/// types in [`crate::model`] and [`crate::config`] (served at `/api/v1/openapi.json`, and
/// kept in `docs/openapi.json`: `ferrovs --openapi` writes it; a test compares them).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "ferrovs", description = "The REST API of the ferrovs layer-4 load balancer (docs/api.md)."),
    paths(healthz, metrics, openapi, services, service, put_service, delete_service, put_backend,
          delete_backend, stats, health, bgp, flows, neighbors, routes, snat, reload),
    components(schemas(crate::config::ServiceConf, crate::config::BackendConf, crate::model::ErrorBody)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;
impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI description as pretty JSON (what `/api/v1/openapi.json` serves).
pub fn openapi_json() -> String {
    use utoipa::OpenApi;
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the description serializes")
        + "\n"
}

/// The OpenAPI 3 description of this API.
#[utoipa::path(get, path = "/api/v1/openapi.json", responses((status = 200, description = "OpenAPI 3 JSON", content_type = "application/json")))]
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text")))]
async fn metrics(s: State<Api>) -> Response {
    ask(s, Op::Metrics).await
}

/// All services with backends and counters.
#[utoipa::path(get, path = "/api/v1/services", responses((status = 200, body = [crate::model::ServiceView])))]
async fn services(State(s): State<Api>) -> Response {
    axum::Json(s.reads.services()).into_response()
}

/// One service.
#[utoipa::path(get, path = "/api/v1/services/{name}", params(("name" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$")),
    responses((status = 200, body = crate::model::ServiceView), (status = 404, body = crate::model::ErrorBody)))]
async fn service(State(s): State<Api>, Path(name): Path<String>) -> Response {
    match s.reads.service(&name) {
        Some(v) => axum::Json(v).into_response(),
        None => Reply::error(404, format!("no service `{name}`")).into_response(),
    }
}

/// Creates or replaces a service (its backends are those of the body).
#[utoipa::path(put, path = "/api/v1/services/{name}", params(("name" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$")),
    request_body = crate::config::ServiceConf, security(("token" = [])),
    responses((status = 200, description = "replaced", body = crate::model::ServiceView),
              (status = 201, description = "created", body = crate::model::ServiceView),
              (status = 400, body = crate::model::ErrorBody), (status = 401, body = crate::model::ErrorBody)))]
async fn put_service(
    s: State<Api>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    write(s, h, Op::PutService(name, body)).await
}

/// Removes a service; its flows end.
#[utoipa::path(delete, path = "/api/v1/services/{name}", params(("name" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$")), security(("token" = [])),
    responses((status = 200, body = crate::model::Deleted), (status = 401, body = crate::model::ErrorBody),
              (status = 404, body = crate::model::ErrorBody)))]
async fn delete_service(s: State<Api>, h: HeaderMap, Path(name): Path<String>) -> Response {
    write(s, h, Op::DeleteService(name)).await
}

/// Adds a backend or changes its weight.
#[utoipa::path(put, path = "/api/v1/services/{name}/backends/{backend}",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$"), ("backend" = String, Path, description = "address:port, an IPv6 address in brackets ([fd00:1::11]:80)", pattern = r"^([0-9]{1,3}(\.[0-9]{1,3}){3}|\[[0-9A-Fa-f:.]{2,45}\]):[0-9]{1,5}$")),
    request_body(content = Option<crate::model::BackendBody>, description = "may be empty"), security(("token" = [])),
    responses((status = 200, description = "updated", body = crate::model::ServiceView),
              (status = 201, description = "added", body = crate::model::ServiceView),
              (status = 400, body = crate::model::ErrorBody), (status = 401, body = crate::model::ErrorBody),
              (status = 404, body = crate::model::ErrorBody)))]
async fn put_backend(
    s: State<Api>,
    h: HeaderMap,
    Path((name, backend)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    write(s, h, Op::PutBackend(name, backend, body)).await
}

/// Removes a backend; its flows end.
#[utoipa::path(delete, path = "/api/v1/services/{name}/backends/{backend}",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$"), ("backend" = String, Path, description = "address:port, an IPv6 address in brackets ([fd00:1::11]:80)", pattern = r"^([0-9]{1,3}(\.[0-9]{1,3}){3}|\[[0-9A-Fa-f:.]{2,45}\]):[0-9]{1,5}$")), security(("token" = [])),
    responses((status = 200, body = crate::model::Deleted), (status = 400, body = crate::model::ErrorBody),
              (status = 401, body = crate::model::ErrorBody), (status = 404, body = crate::model::ErrorBody)))]
async fn delete_backend(
    s: State<Api>,
    h: HeaderMap,
    Path((name, backend)): Path<(String, String)>,
) -> Response {
    write(s, h, Op::DeleteBackend(name, backend)).await
}

/// Every checked backend: health, since, last error, probes ok and failed.
#[utoipa::path(get, path = "/api/v1/health", responses((status = 200, body = [crate::model::HealthRow])))]
async fn health(State(s): State<Api>) -> Response {
    axum::Json(s.reads.health()).into_response()
}

/// The BGP peers (state as BIRD reports it) and the announced VIPs; 404 when the config
/// has no `bgp` section.
#[utoipa::path(get, path = "/api/v1/bgp", responses((status = 200, body = crate::model::BgpView), (status = 404, body = crate::model::ErrorBody)))]
async fn bgp(State(s): State<Api>) -> Response {
    match s.reads.bgp() {
        Some(v) => axum::Json(v).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(
                json!({ "error": "bgp is not configured (no `bgp` section in the config)" }),
            ),
        )
            .into_response(),
    }
}

/// Totals, ports, workers, drops by reason, flow table use.
#[utoipa::path(get, path = "/api/v1/stats", responses((status = 200, body = crate::model::Stats)))]
async fn stats(s: State<Api>) -> Response {
    ask(s, Op::Stats).await
}

/// Active flows, a page at a time.
#[utoipa::path(get, path = "/api/v1/flows",
    params(("service" = Option<String>, Query), ("offset" = Option<usize>, Query), ("limit" = Option<usize>, Query, description = "at most 10000")),
    responses((status = 200, body = [crate::model::FlowView]), (status = 400, body = crate::model::ErrorBody)))]
async fn flows(s: State<Api>, Query(q): Query<FlowsQuery>) -> Response {
    let op = Op::Flows {
        service: q.service,
        offset: q.offset.unwrap_or(0),
        limit: q.limit.unwrap_or(100).min(MAX_FLOWS_LIMIT),
    };
    ask(s, op).await
}

/// The ARP table.
#[utoipa::path(get, path = "/api/v1/neighbors", responses((status = 200, body = [crate::model::NeighborView])))]
async fn neighbors(s: State<Api>) -> Response {
    ask(s, Op::Neighbors).await
}

/// The routing table.
#[utoipa::path(get, path = "/api/v1/routes", responses((status = 200, body = [crate::model::RouteView])))]
async fn routes(s: State<Api>) -> Response {
    ask(s, Op::Routes).await
}

/// Every snat rule with the ports in use and free of each `to` address.
#[utoipa::path(get, path = "/api/v1/snat", responses((status = 200, body = [crate::model::SnatView])))]
async fn snat(s: State<Api>) -> Response {
    ask(s, Op::Snat).await
}

/// Re-reads the config file (as SIGHUP).
#[utoipa::path(post, path = "/api/v1/reload", security(("token" = [])),
    responses((status = 200, body = crate::model::Reloaded), (status = 400, body = crate::model::ErrorBody),
              (status = 401, body = crate::model::ErrorBody)))]
async fn reload(s: State<Api>, h: HeaderMap) -> Response {
    write(s, h, Op::Reload).await
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

/// 200 once ports are up and workers run; 503 while a worker has stalled. Answered from
/// what the management thread last published: never queued.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = crate::model::HealthView), (status = 503, body = crate::model::HealthView)))]
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
        Ok(Ok(reply)) => reply.into_response(),
        _ => Reply::error(503, "management thread did not answer").into_response(),
    }
}

#[cfg(test)]
mod tests {
    /// docs/openapi.json is what the handlers generate: regenerate it with
    /// `ferrovs --openapi > docs/openapi.json` when this fails.
    #[test]
    fn docs_openapi_json_is_current() {
        let docs =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json"))
                .unwrap();
        assert!(
            docs == super::openapi_json(),
            "docs/openapi.json drifted from the handlers: run `ferrovs --openapi > docs/openapi.json`"
        );
    }

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
