//! What the API port answers while the node cannot start its services yet (it waits for a
//! bootstrap peer's chain spec): live, not ready, the `/ui` page (which shows the starting
//! state from the 503 answers), and a clear 503 for everything else.

use std::future::Future;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;

use crate::dto::ErrorBody;
use crate::server::ApiError;

/// Error code of every answer but `/health/live` while starting.
pub const STARTING: &str = "starting";

/// Serves the starting answers on `listener` until `shutdown` resolves; `reason` says what
/// the node waits for.
pub async fn serve_starting(
    listener: TcpListener,
    reason: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    let unavailable = move || {
        let body = ErrorBody::new(STARTING, reason.clone());
        async move { (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response() }
    };
    let router = Router::new()
        .route("/health/live", get(live))
        .merge(crate::ui::routes())
        .fallback(unavailable);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn live() -> Response {
    (
        StatusCode::OK,
        Json(serde_json::json!({"status": "starting"})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn live_but_not_ready_until_shut_down() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_starting(listener, "waiting".into(), async {
            let _ = rx.await;
        }));
        let live = reqwest::get(format!("http://{addr}/health/live"))
            .await
            .unwrap();
        assert_eq!(live.status().as_u16(), 200);
        for path in ["/health/ready", "/v1/status", "/nope"] {
            let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
            assert_eq!(r.status().as_u16(), 503, "{path}");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], STARTING);
            assert_eq!(body["error"]["message"], "waiting");
        }
        let page = reqwest::get(format!("http://{addr}{}", crate::ui::PAGE_PATH))
            .await
            .unwrap();
        assert_eq!(
            page.status().as_u16(),
            200,
            "the page shows the starting state"
        );
        tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
