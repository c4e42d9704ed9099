//! The OpenAPI 3 document served at `/api/v1/openapi.json`. Written by hand next to the
//! routes; the test below fails when a route is missing from it.

pub const DOCUMENT: &str = include_str!("openapi.json");

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_lists_every_route_and_nothing_else() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).expect("valid JSON");
        let paths = doc["paths"].as_object().expect("paths");
        for (method, path) in crate::api::ROUTES {
            assert!(paths.get(*path).and_then(|p| p.get(*method)).is_some(), "{method} {path} is not documented");
        }
        let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(documented, crate::api::ROUTES.len(), "the document lists a route the API does not serve");
    }
}
