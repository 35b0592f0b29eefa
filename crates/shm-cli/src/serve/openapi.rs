//! `GET /openapi.json`: this API as an OpenAPI 3.0 document.

use axum::Json;
use serde_json::{json, Value};

/// The document.
pub(super) fn document() -> Value {
    json!({ "openapi": "3.0.3", "info": { "title": "shm serve", "version": env!("CARGO_PKG_VERSION") }, "paths": {} })
}

pub(super) async fn serve() -> Json<Value> {
    Json(document())
}
