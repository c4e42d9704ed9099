//! Cross-site request refusal. A browser sends the session cookie with every request to this
//! server, also one a page of another site makes it send (a form posted there, a websocket
//! opened from there). So a request that is authenticated by that cookie and changes
//! something (any method but GET, HEAD and OPTIONS) or opens a websocket must come from this
//! server's own pages: its `Origin` (or, without one, `Sec-Fetch-Site`) must say so, or it is
//! refused with 403 before any handler runs. Requests with a bearer token (the CLI, CI, agents)
//! carry nothing ambient and are not concerned; neither are requests without the cookie.

use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Whether a browser's `Origin` is this server (the same host and port as the request's
/// `Host`; the scheme is left to the TLS proxy in front). Without `Origin`, what
/// `Sec-Fetch-Site` says; without either, not a browser that could be tricked (`true`).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or(origin).trim_end_matches('/');
        return !host.is_empty() && origin_host.eq_ignore_ascii_case(host);
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => site == "same-origin" || site == "none",
        None => true,
    }
}

fn needs_checking(method: &Method, headers: &HeaderMap) -> bool {
    let with_cookie =
        headers.get(header::COOKIE).and_then(|c| c.to_str().ok()).and_then(engine::users::session_from_cookie_header).is_some();
    let bearer = headers.get(header::AUTHORIZATION).and_then(|a| a.to_str().ok()).is_some_and(|a| a.starts_with("Bearer "));
    let websocket = headers.get(header::UPGRADE).and_then(|u| u.to_str().ok()).is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    with_cookie && !bearer && (changes || websocket)
}

pub async fn refuse_cross_site(request: Request, next: Next) -> Response {
    if needs_checking(request.method(), request.headers()) && !same_origin(request.headers()) {
        let body = serde_json::json!({"error": "a request from another site was refused: use this server's own pages, or an API token"});
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, Method};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:8080".parse().unwrap());
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_cookie_requests_that_change_something_or_open_a_websocket_are_checked() {
        const COOKIE: (&str, &str) = ("cookie", "slipstream_session=abc");
        /// (method, headers, whether it is checked)
        type Case = (Method, Vec<(&'static str, &'static str)>, bool);
        let table: [Case; 7] = [
            (Method::POST, vec![COOKIE], true),
            (Method::DELETE, vec![COOKIE], true),
            (Method::GET, vec![COOKIE], false),
            (Method::GET, vec![COOKIE, ("upgrade", "websocket")], true),
            (Method::POST, vec![COOKIE, ("authorization", "Bearer tok")], false),
            (Method::POST, vec![("cookie", "other=1")], false),
            (Method::PUT, vec![], false),
        ];
        for (method, pairs, want) in table {
            assert_eq!(super::needs_checking(&method, &headers(&pairs)), want, "{method} {pairs:?}");
        }
    }

    #[test]
    fn the_origin_must_be_this_server() {
        let table: [(Vec<(&'static str, &'static str)>, bool); 8] = [
            (vec![("origin", "http://127.0.0.1:8080")], true),
            (vec![("origin", "https://127.0.0.1:8080")], true),
            (vec![("origin", "http://127.0.0.1:9999")], false),
            (vec![("origin", "http://evil.example")], false),
            (vec![("origin", "null")], false),
            (vec![("sec-fetch-site", "cross-site")], false),
            (vec![("sec-fetch-site", "same-origin")], true),
            (vec![], true),
        ];
        for (pairs, want) in table {
            assert_eq!(super::same_origin(&headers(&pairs)), want, "{pairs:?}");
        }
    }
}
