//! URLs with a NUL character (`%00`) are refused before any handler: no name, id or value of
//! ours holds one, and PostgreSQL cannot store or even compare a text holding it (the query
//! fails), so such a request would otherwise end in an internal error on that backend.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Whether the path or query, once percent-decoded, would hold a NUL.
pub fn holds_nul(path_and_query: &str) -> bool {
    path_and_query.as_bytes().windows(3).any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0') || path_and_query.contains('\0')
}

pub async fn refuse_nul(request: Request, next: Next) -> Response {
    let url = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("");
    if holds_nul(url) {
        return crate::api::ApiError::invalid("", "url", "the URL holds a NUL character (%00)").into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_nul_anywhere_in_the_url_is_found() {
        let table = [
            ("/api/v1/runs/%00/params", true),
            ("/api/v1/runs?module=a%00b", true),
            ("/api/v1/runs/abc/params/x:y", false),
            ("/api/v1/modules/p%2500", false), // an escaped percent sign, then "00"
            ("/api/v1/modules/a%20b", false),
        ];
        for (url, nul) in table {
            assert_eq!(super::holds_nul(url), nul, "{url}");
        }
    }
}
