//! The routes added to the seed's: `/list` and the POSIX ones.
//!
//! POSIX segments are read and written through their descriptor
//! (`pread`/`pwrite`, see `ops::Opened`), never a mapping: a peer that
//! shrinks one under a request makes that request fail, not the server.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use shm_segment::Access;

use super::api::{
    blocking, done, mode_from_digits, mode_to_digits, parse_body, posix_name, posix_path,
    read_trimmed, ApiError, ApiResult, SetBody,
};
use crate::ops;
use crate::spec::Spec;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PosixCreate {
    name: String,
    size: u64,
    mode: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PosixWrite {
    data: String,
    #[serde(default)]
    offset: usize,
}

pub(super) async fn list() -> ApiResult {
    let all = blocking("list", || {
        ops::list(true, true).map_err(|e| ApiError::segment(e, "list"))
    })
    .await?;
    serde_json::to_value(&all).map(Json).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("list"),
            format!("list: cannot encode: {e}"),
        )
    })
}

pub(super) async fn create(body: Result<Bytes, BytesRejection>) -> ApiResult {
    let req: PosixCreate = parse_body("POST /posix/create", body)?;
    let name = posix_name("POST /posix/create", &req.name)?;
    let label = format!("POSIX segment {name}");
    let mode = mode_from_digits(&label, req.mode.unwrap_or(600))?;
    // The wire type is u64; every size in this workspace is a usize (64-bit).
    let size = usize::try_from(req.size).unwrap_or(usize::MAX);
    let what = label.clone();
    let created = blocking(&label, move || {
        ops::create(&Spec::Posix(name), size, mode).map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    Ok(Json(json!({
        "name": created.name.unwrap_or(created.target),
        "size": created.size,
        "mode": mode_to_digits(created.mode),
    })))
}

pub(super) async fn stat(path: Result<Path<String>, PathRejection>) -> ApiResult {
    let name = posix_path("/posix/stat", path)?;
    let label = format!("POSIX segment {name}");
    let what = label.clone();
    let stat = blocking(&label, move || {
        ops::stat(&Spec::Posix(name)).map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    match stat {
        ops::Stat::Posix { stat, attached, .. } => Ok(Json(json!({
            "name": stat.name,
            "size": stat.size,
            "mode": mode_to_digits(stat.mode),
            "uid": stat.uid,
            "gid": stat.gid,
            "atime": stat.atime,
            "mtime": stat.mtime,
            "ctime": stat.ctime,
            "inode": stat.inode,
            "attached": attached,
        }))),
        ops::Stat::Sysv { .. } => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(&label),
            format!("stat {label}: answered for a System V segment"),
        )),
    }
}

pub(super) async fn write(
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let name = posix_path("/posix/write", path)?;
    let label = format!("POSIX segment {name}");
    let req: PosixWrite = parse_body(&label, body)?;
    let what = label.clone();
    blocking(&label, move || {
        ops::write(&Spec::Posix(name), req.offset, req.data.as_bytes())
            .map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    done()
}

pub(super) async fn read(path: Result<Path<String>, PathRejection>) -> ApiResult {
    let name = posix_path("/posix/read", path)?;
    let label = format!("POSIX segment {name}");
    let what = label.clone();
    let bytes = blocking(&label, move || {
        let opened = ops::open(&Spec::Posix(name), Access::ReadOnly, "read")
            .map_err(|e| ApiError::segment(e, &what))?;
        read_trimmed(&opened, &what)
    })
    .await?;
    Ok(Json(json!({ "data": String::from_utf8_lossy(&bytes) })))
}

pub(super) async fn set(
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let name = posix_path("/posix/set", path)?;
    let label = format!("POSIX segment {name}");
    let change = parse_body::<SetBody>(&label, body)?.change(&label)?;
    let what = label.clone();
    blocking(&label, move || {
        ops::set(&Spec::Posix(name), change).map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    done()
}

pub(super) async fn remove(path: Result<Path<String>, PathRejection>) -> ApiResult {
    let name = posix_path("/posix/remove", path)?;
    let label = format!("POSIX segment {name}");
    let what = label.clone();
    blocking(&label, move || {
        ops::remove(&Spec::Posix(name)).map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    done()
}
