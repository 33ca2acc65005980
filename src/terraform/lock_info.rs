//! A state lock another run holds, as terraform describes it when it cannot take the lock
//! ("Lock Info:" with ID, Who, Created...): who holds it and for how long, for the error. orch
//! never unlocks a lock it did not take; it says how to, once the user knows the holder is gone.

use std::time::{SystemTime, UNIX_EPOCH};

/// The lock terraform reported, with the fields it printed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LockInfo {
    pub id: String,
    pub path: String,
    pub operation: String,
    pub who: String,
    pub created: String,
}

impl LockInfo {
    /// The lock in `text` (terraform's output), when it reports one.
    pub fn parse(text: &str) -> Option<LockInfo> {
        if !text.contains("Error acquiring the state lock") {
            return None;
        }
        let mut info = LockInfo::default();
        let after = &text[text.find("Lock Info:")?..];
        for line in after.lines().skip(1) {
            let line = line.trim_start_matches(['│', ' ', '\t']).trim_end();
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim().to_string();
            match name {
                "ID" => info.id = value,
                "Path" => info.path = value,
                "Operation" => info.operation = value,
                "Who" => info.who = value,
                "Created" => info.created = value,
                _ => {}
            }
        }
        (!info.id.is_empty()).then_some(info)
    }

    /// How long ago the lock was taken, from `Created` (`2026-11-30 06:15:02.1 +0000 UTC`).
    pub fn age(&self, now: SystemTime) -> Option<u64> {
        let created = utc_seconds(&self.created)?;
        let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
        Some(now.saturating_sub(created))
    }

    /// The words for an error: holder, age, operation and what to do.
    pub fn describe(&self, dir: &std::path::Path) -> String {
        let age = self
            .age(SystemTime::now())
            .map(|s| format!(" ({} ago)", human(s)))
            .unwrap_or_default();
        let field = |v: &str| {
            if v.is_empty() {
                "unknown".to_string()
            } else {
                v.to_string()
            }
        };
        format!(
            "the state lock is held by {} since {}{age}, for {}, lock ID {}{}; orch never unlocks a state lock it did not take: once you know that run has ended, run `terraform force-unlock {}` in {}",
            field(&self.who),
            field(&self.created),
            field(&self.operation).trim_start_matches("OperationType"),
            self.id,
            if self.path.is_empty() {
                String::new()
            } else {
                format!(" on {}", self.path)
            },
            self.id,
            dir.display()
        )
    }
}

/// `3h 2m 5s`, `12s`.
fn human(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

/// Seconds since the epoch of Go's `time.Time` text in UTC: `2026-11-30 06:15:02.123 +0000 UTC`.
fn utc_seconds(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace();
    let date = parts.next()?;
    let time = parts.next()?;
    if parts.next()? != "+0000" {
        return None;
    }
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next()?.parse::<u64>().ok()?,
        t.next()?.parse::<u64>().ok()?,
    );
    let ss = t.next()?.split('.').next()?.parse::<u64>().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(y, m, day);
    u64::try_from(days)
        .ok()
        .map(|d| d * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LOCKED: &str = "╷\n│ Error: Error acquiring the state lock\n│ \n│ Error message: operation error S3: PutObject, https response error StatusCode: 412\n│ Lock Info:\n│   ID:        0d7e7e4c-1c2a-4f5e-9b1e-5d0f0e6a7b8c\n│   Path:      tfstate-1/orch/dev/us-east-1/k1/terraform.tfstate\n│   Operation: OperationTypeApply\n│   Who:       ci@runner-7\n│   Version:   1.11.4\n│   Created:   2026-11-30 06:15:02.123456 +0000 UTC\n│   Info:      \n";

    #[test]
    fn lock_info_is_read_with_its_holder_and_age() {
        let info = LockInfo::parse(LOCKED).unwrap();
        assert_eq!(info.id, "0d7e7e4c-1c2a-4f5e-9b1e-5d0f0e6a7b8c");
        assert_eq!(info.who, "ci@runner-7");
        assert_eq!(info.operation, "OperationTypeApply");
        let created = UNIX_EPOCH
            + Duration::from_secs(
                days_from_civil(2026, 11, 30) as u64 * 86_400 + 6 * 3600 + 15 * 60 + 2,
            );
        assert_eq!(info.age(created + Duration::from_secs(125)), Some(125));
        let text = info.describe(std::path::Path::new("w"));
        assert!(
            text.contains("held by ci@runner-7 since 2026-11-30 06:15:02.123456 +0000 UTC"),
            "{text}"
        );
        assert!(text.contains("for Apply, lock ID 0d7e7e4c"), "{text}");
        assert!(
            text.contains("`terraform force-unlock 0d7e7e4c-1c2a-4f5e-9b1e-5d0f0e6a7b8c` in w"),
            "{text}"
        );
        assert_eq!(human(3725), "1h 2m 5s");
    }

    #[test]
    fn other_errors_are_not_locks() {
        assert_eq!(LockInfo::parse("Error: AccessDenied"), None);
        assert_eq!(utc_seconds("yesterday at noon"), None);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
