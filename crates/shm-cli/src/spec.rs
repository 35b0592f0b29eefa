//! What names a segment on the command line and in the HTTP API.

use std::fmt;
use std::str::FromStr;

use shm_segment::{ShmName, SysvKey};

/// How the user names a segment: `key:N` (decimal or `0x` hex),
/// `key:private`, `id:N`, or `/name`. (Not [`shm_segment::Target`], which
/// names a segment in error messages.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Spec {
    /// A System V segment by key.
    Key(SysvKey),
    /// A new System V segment with `IPC_PRIVATE` (create only).
    Private,
    /// A System V segment by shmid.
    Id(i32),
    /// A POSIX named segment.
    Posix(ShmName),
}

impl FromStr for Spec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(key) = s.strip_prefix("key:") {
            if key == "private" {
                return Ok(Spec::Private);
            }
            let key = parse_int(key)
                .ok_or_else(|| format!("{s:?}: a key is a number, decimal or 0x hex"))?;
            let key = i32::try_from(key)
                .or_else(|_| u32::try_from(key).map(|k| k as i32))
                .map_err(|_| format!("{s:?}: a key fits in 32 bits"))?;
            if key == 0 {
                return Ok(Spec::Private);
            }
            return Ok(Spec::Key(SysvKey(key)));
        }
        if let Some(id) = s.strip_prefix("id:") {
            let id = parse_int(id)
                .and_then(|n| i32::try_from(n).ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| format!("{s:?}: a shmid is a non-negative number"))?;
            return Ok(Spec::Id(id));
        }
        if s.starts_with('/') {
            return ShmName::new(s).map(Spec::Posix).map_err(|e| e.to_string());
        }
        Err(format!(
            "{s:?}: name a segment as key:N, key:private, id:N or /name"
        ))
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spec::Key(k) => write!(f, "key:{k}"),
            Spec::Private => f.write_str("key:private"),
            Spec::Id(id) => write!(f, "id:{id}"),
            Spec::Posix(name) => write!(f, "{name}"),
        }
    }
}

/// Decimal, or hex with `0x`.
pub(crate) fn parse_int(s: &str) -> Option<i64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// `4096`, `64K`, `16M`, `1G` (binary multiples; `KiB`, `k`, … also accepted).
pub(crate) fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{s:?}: a size is a number like 4096, 64K, 16M or 1G"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use K, M, G)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?}: too large"))
}

/// Octal permission digits as with chmod: `600`, `0640`, `0o644`.
pub(crate) fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("{s:?}: a mode is up to three octal digits, like 600 or 644"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print_back() {
        assert_eq!("key:123456".parse(), Ok(Spec::Key(SysvKey(123456))));
        assert_eq!("key:0x1e240".parse(), Ok(Spec::Key(SysvKey(123456))));
        assert_eq!("key:0xffffffff".parse(), Ok(Spec::Key(SysvKey(-1))));
        assert_eq!("key:private".parse(), Ok(Spec::Private));
        assert_eq!("id:7".parse(), Ok(Spec::Id(7)));
        assert_eq!("/x".parse::<Spec>().unwrap().to_string(), "/x");
        assert_eq!(
            "key:123456".parse::<Spec>().unwrap().to_string(),
            "key:0x0001e240"
        );
        for bad in [
            "key:",
            "key:zz",
            "id:-1",
            "id:x",
            "name",
            "/a/b",
            "key:0x1ffffffff",
        ] {
            assert!(bad.parse::<Spec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_and_modes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(
            parse_size("12Q").is_err()
                && parse_size("").is_err()
                && parse_size("99999999999T").is_err()
        );
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0o644"), Ok(0o644));
        assert!(parse_mode("800").is_err() && parse_mode("1777").is_err());
    }
}
