//! The seed's System V routes: `/create`, `/stat`, `/write`, `/read`,
//! `/set` and `/remove`, with its bodies and answers.
//!
//! Each request resolves its segment once, by shmid, checks that its key is
//! the one in the path, and acts through that same handle.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use shm_segment::{Access, SysvKey};

use super::api::{
    blocking, done, key_from_i64, key_label, key_text, mode_from_digits, mode_to_digits,
    parse_body, read_c_string, ApiError, ApiResult, SetBody,
};
use crate::ops::{self, Segment};
use crate::procmaps::Attached;
use crate::spec::{parse_int, Spec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SysvCreate {
    shm_key: i64,
    shm_segsz: u64,
    mode: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SysvWrite {
    data: String,
}

/// `<key>/<shmid>` from the path.
fn sysv_path(
    op: &str,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(i32, i32, String), ApiError> {
    let Path((key_text, id_text)) = path.map_err(|rej| {
        ApiError::bad_request(None, format!("{op}: bad path: {}", rej.body_text()))
    })?;
    let what = format!("{op}/{key_text}/{id_text}");
    let key = parse_int(&key_text).and_then(key_from_i64).ok_or_else(|| {
        ApiError::bad_request(
            Some(&what),
            format!("{what}: key {key_text:?} is not a 32-bit number (decimal, or 0x hex)"),
        )
    })?;
    let shmid = parse_int(&id_text)
        .and_then(|n| i32::try_from(n).ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            ApiError::bad_request(
                Some(&what),
                format!("{what}: shmid {id_text:?} is not a non-negative number"),
            )
        })?;
    Ok((key, shmid, format!("{}, shmid {shmid}", key_label(key))))
}

/// The segment `shmid`, after checking that its key is `key`: the one
/// handle the request then acts through (no second lookup by id, which
/// could find another segment).
fn open_checked(key: i32, shmid: i32, label: &str) -> Result<Segment, ApiError> {
    let seg = Segment::open(&Spec::Id(shmid), Access::ReadOnly, "open")
        .map_err(|e| ApiError::segment(e, label))?;
    // A shmid names a System V segment, which has a key.
    let actual = seg.sysv_key().map_or(0, |k| k.0);
    if actual != key {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some(label),
            format!(
                "SysV shmid {shmid} has {}, not {} as the path says; nothing was done",
                key_text(actual),
                key_text(key)
            ),
        ));
    }
    Ok(seg)
}

pub(super) async fn create(body: Result<Bytes, BytesRejection>) -> ApiResult {
    let req: SysvCreate = parse_body("POST /create", body)?;
    let key = key_from_i64(req.shm_key).ok_or_else(|| {
        ApiError::bad_request(
            Some("POST /create"),
            format!(
                "POST /create: shm_key {} does not fit in 32 bits",
                req.shm_key
            ),
        )
    })?;
    let label = key_label(key);
    let mode = mode_from_digits(&label, req.mode.unwrap_or(600))?;
    let target = if key == 0 {
        Spec::Private
    } else {
        Spec::Key(SysvKey(key))
    };
    // The wire type is u64; every size in this workspace is a usize (64-bit).
    let size = usize::try_from(req.shm_segsz).unwrap_or(usize::MAX);
    let what = label.clone();
    let created = blocking(&label, move || {
        ops::create(&target, size, mode).map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    let shmid = created.shmid.map_or_else(String::new, |id| id.to_string());
    Ok(Json(
        json!({ "shm_key": req.shm_key.to_string(), "shm_shmid": shmid }),
    ))
}

pub(super) async fn stat(path: Result<Path<(String, String)>, PathRejection>) -> ApiResult {
    let (key, shmid, label) = sysv_path("/stat", path)?;
    let what = label.clone();
    let st = blocking(&label, move || {
        // Not who maps it: the seed's answer has no such field.
        match open_checked(key, shmid, &what)?.stat(&Attached::default()) {
            Ok(ops::Stat::Sysv { stat, .. }) => Ok(stat),
            Ok(ops::Stat::Posix { .. }) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(&what),
                format!("stat {what}: answered for a POSIX segment"),
            )),
            Err(e) => Err(ApiError::segment(e, &what)),
        }
    })
    .await?;
    Ok(Json(json!({
        "cgid": st.cgid,
        "cuid": st.cuid,
        "gid": st.gid,
        "mode": mode_to_digits(st.mode),
        "shm_atime": st.atime,
        "shm_cpid": st.cpid,
        "shm_ctime": st.ctime,
        "shm_dtime": st.dtime,
        "shm_key": st.key.0,
        "shm_lpid": st.lpid,
        "shm_nattch": st.nattch,
        "shm_segsz": st.size,
        "shm_shmid": st.id,
        "uid": st.uid,
    })))
}

pub(super) async fn write(
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let (key, shmid, label) = sysv_path("/write", path)?;
    let req: SysvWrite = parse_body(&label, body)?;
    let what = label.clone();
    blocking(&label, move || {
        let opened = open_checked(key, shmid, &what)?
            .map(Access::ReadWrite)
            .map_err(|e| ApiError::segment(e, &what))?;
        let mut bytes = req.data.into_bytes();
        // A C string: the terminating NUL goes too when there is room.
        if bytes.len() < opened.len() {
            bytes.push(0);
        }
        opened
            .write_at(0, &bytes)
            .map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    done()
}

pub(super) async fn read(path: Result<Path<(String, String)>, PathRejection>) -> ApiResult {
    let (key, shmid, label) = sysv_path("/read", path)?;
    let what = label.clone();
    let bytes = blocking(&label, move || {
        let opened = open_checked(key, shmid, &what)?
            .map(Access::ReadOnly)
            .map_err(|e| ApiError::segment(e, &what))?;
        read_c_string(&opened, &what)
    })
    .await?;
    Ok(Json(json!({ "data": String::from_utf8_lossy(&bytes) })))
}

pub(super) async fn set(
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let (key, shmid, label) = sysv_path("/set", path)?;
    let change = parse_body::<SetBody>(&label, body)?.change(&label)?;
    let what = label.clone();
    blocking(&label, move || {
        open_checked(key, shmid, &what)?
            .set_perms(change)
            .map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    done()
}

pub(super) async fn remove(path: Result<Path<(String, String)>, PathRejection>) -> ApiResult {
    let (key, shmid, label) = sysv_path("/remove", path)?;
    let what = label.clone();
    blocking(&label, move || {
        open_checked(key, shmid, &what)?
            .remove()
            .map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    done()
}
