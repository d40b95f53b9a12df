//! The page for people at `GET /ui`: regions, bridges and links, routing strategy, failover,
//! live blocks and search, drawn in the browser from the REST routes and the
//! `chain_subscribeNewHeads` WebSocket on the same port.
//!
//! The page and its assets are compiled into the binary (`api/ui/`), so it works with no
//! outside network and always matches the API of the node that serves it. Every answer is
//! static and carries a strict Content-Security-Policy: scripts, styles, images and
//! connections from this origin only, nothing inline, no framing.
//!
//! The page is left out of `openapi.yaml` on purpose: that document is the contract for
//! programs (schemathesis checks it against a live node), while the page is HTML for people
//! whose markup and asset names change with its design. Its requests are still counted in
//! `qnet_http_requests_total` under their route templates (`/ui`, `/ui/app.js`, ...).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Path of the page.
pub const PAGE_PATH: &str = "/ui";

/// Content-Security-Policy of every answer under `/ui`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// One embedded file of the page.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// The page and its assets, served at fixed paths (absolute, so `/ui` and `/ui/` both work).
static ASSETS: [Asset; 4] = [
    Asset {
        path: PAGE_PATH,
        content_type: "text/html; charset=utf-8",
        body: include_str!("../ui/index.html"),
    },
    Asset {
        path: "/ui/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../ui/app.js"),
    },
    Asset {
        path: "/ui/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../ui/app.css"),
    },
    Asset {
        path: "/ui/icon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../ui/icon.svg"),
    },
];

/// The paths of the page's assets, as routed.
pub fn paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|asset| asset.path)
}

/// The routes of the page; they need no state, so both the full server and the
/// starting server (which shows the page its "starting" state) can merge them.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        router.route(asset.path, get(move || async move { serve(asset) }))
    })
}

fn serve(asset: &'static Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            // revalidate every load, so a node upgraded in place never mixes old and new assets
            (header::CACHE_CONTROL, "no-cache"),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_refers_only_to_embedded_assets() {
        let page = ASSETS[0].body;
        for asset in &ASSETS[1..] {
            assert!(
                page.contains(&format!("\"{}\"", asset.path)),
                "{} is not used by the page",
                asset.path
            );
        }
        for outside in ["http://", "https://", "//cdn", "<script>", "style=\""] {
            assert!(!page.contains(outside), "page contains {outside}");
        }
    }

    #[test]
    fn script_builds_the_dom_without_html_strings() {
        // peer-supplied strings (node ids, region names) reach the page; text nodes only
        let script = ASSETS[1].body;
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!script.contains(sink), "app.js uses {sink}");
        }
    }
}
