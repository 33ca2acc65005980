//! Reading what terraform printed: a plan's counts, a crash, an error's first lines, a hint
//! for a known failure, whether an error is worth another try, and text made safe to print.

use std::path::Path;

use super::workflow::Counts;

pub(crate) fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGINT => " (SIGINT)",
        libc::SIGBUS => " (SIGBUS)",
        _ => "",
    }
}

/// A Go panic or terraform's crash banner: the first panic line.
pub(crate) fn crash(text: &str) -> Option<String> {
    let banner = text.contains("TERRAFORM CRASH") || text.contains("Terraform crashed!");
    let panic = text
        .lines()
        .find(|l| l.starts_with("panic: ") || l.starts_with("fatal error: "));
    match (panic, banner) {
        (Some(line), _) => Some(printable(line)),
        (None, true) => Some("terraform printed its crash banner".to_string()),
        (None, false) => None,
    }
}

/// What to do next, for failures with a known cause: an endpoint that refused the connection, a
/// state lock held elsewhere.
pub(crate) fn hint(text: &str, dir: &Path) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(at) = flat.find("connect: connection refused") {
        let start = flat[..at].rfind("dial tcp ").unwrap_or(at);
        let attempts = flat
            .find("exceeded maximum number of attempts, ")
            .and_then(|i| {
                flat[i + 37..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .map(str::to_string)
            })
            .map(|n| format!(", after the AWS provider's {n} attempts"))
            .unwrap_or_default();
        return format!(
            " ({}{attempts}: is the endpoint up?)",
            printable(&flat[start..at + 27])
        );
    }
    if let Some(lock) = super::lock_info::LockInfo::parse(text) {
        return format!(" ({})", printable(&lock.describe(dir)));
    }
    // "Error acquiring the state lock" with no lock held: the state could not be read at all
    // (a format from a newer terraform, a damaged file), and the message after says why.
    if let Some(at) = flat.find("Error acquiring the state lock Error message: ") {
        let why = &flat[at + 46..];
        let end = why
            .find(" Terraform acquires a state lock")
            .unwrap_or(why.len());
        return format!(": {}", printable(&why[..end]));
    }
    String::new()
}

/// Control characters (terminal escapes, NULs from binary noise) shown escaped.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Errors worth another try: the API said slow down, or the network dropped the connection.
pub(crate) fn is_transient(text: &str) -> bool {
    const MARKERS: [&str; 9] = [
        "ThrottlingException",
        "Throttling: Rate exceeded",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "connection reset by peer",
        "TLS handshake timeout",
        "i/o timeout",
        "ServiceUnavailable",
        "SlowDown",
    ];
    MARKERS.iter().any(|m| text.contains(m))
}

/// The first `Error: ...` line terraform printed, for the summary.
pub(crate) fn first_error(text: &str) -> Option<String> {
    text.lines()
        .map(|l| l.trim_start_matches(['│', ' ', '╷', '╵']))
        .find(|l| l.starts_with("Error: "))
        .map(|l| printable(l.trim_start_matches("Error: ")))
}

/// Counts from plan's summary line: `Plan: 1 to add, 0 to change, 0 to destroy.` (newer releases
/// may put `N to import, ` first). `No changes.` reads as zero; no summary at all as None.
pub fn parse_counts(text: &str) -> Option<Counts> {
    let mut counts = Counts::default();
    if text.contains("No changes.") && !text.contains("Plan: ") {
        return Some(counts);
    }
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("Plan: "))?;
    {
        for part in line
            .trim_start()
            .trim_start_matches("Plan: ")
            .trim_end_matches('.')
            .split(", ")
        {
            let mut words = part.split(' ');
            let n = words
                .next()
                .and_then(|w| w.parse::<u32>().ok())
                .unwrap_or(0);
            match words.nth(1) {
                Some("add") => counts.add = n,
                Some("change") => counts.change = n,
                Some("destroy") => counts.destroy = n,
                Some("import") => counts.import = n,
                _ => {}
            }
        }
    }
    Some(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_plan_summary() {
        let text = "...\nPlan: 2 to add, 1 to change, 0 to destroy.\n";
        assert_eq!(
            parse_counts(text),
            Some(Counts {
                add: 2,
                change: 1,
                destroy: 0,
                import: 0,
            })
        );
        let text = "Plan: 1 to import, 3 to add, 0 to change, 4 to destroy.";
        assert_eq!(
            parse_counts(text),
            Some(Counts {
                add: 3,
                change: 0,
                destroy: 4,
                import: 1,
            })
        );
        assert_eq!(
            parse_counts("No changes. Your infrastructure matches the configuration."),
            Some(Counts::default())
        );
        assert_eq!(parse_counts("Changes to Outputs:\n  + x = 1\n"), None);
    }

    #[test]
    fn crashes_are_found_whatever_the_exit_code() {
        assert_eq!(
            crash("x\npanic: runtime error: index out of range\n\ngoroutine 1"),
            Some("panic: runtime error: index out of range".into())
        );
        assert!(crash("!!! TERRAFORM CRASH !!!").is_some());
        assert_eq!(crash("Error: the word panic: in a message"), None);
    }

    #[test]
    fn hints_name_the_refused_endpoint_and_the_lock_to_force_unlock() {
        let refused = "Error: operation error STS: AssumeRole, exceeded maximum number of attempts,\n3, request send failed,\nPost \"http://127.0.0.1:9/\": dial tcp 127.0.0.1:9: connect: connection refused";
        assert_eq!(
            hint(refused, Path::new("w")),
            " (dial tcp 127.0.0.1:9: connect: connection refused, after the AWS provider's 3 attempts: is the endpoint up?)"
        );
        let locked = "Error: Error acquiring the state lock\n\nLock Info:\n  ID:        4b0c-11\n  Path:      s3/x\n";
        assert!(hint(locked, Path::new("w")).contains("`terraform force-unlock 4b0c-11` in w"));
        assert_eq!(hint("Error: AccessDenied", Path::new("w")), "");
        let unreadable = "Error: Error acquiring the state lock\n\nError message: Unsupported state file format: The state file uses format\nversion 5, which is not supported by Terraform 1.11.4.\n\nTerraform acquires a state lock to protect the state";
        assert_eq!(
            hint(unreadable, Path::new("w")),
            ": Unsupported state file format: The state file uses format version 5, which is not supported by Terraform 1.11.4."
        );
    }

    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(printable("a\u{1b}[2Jb\0"), "a\\u{1b}[2Jb\\u{0}");
    }

    #[test]
    fn transient_errors() {
        assert!(is_transient("Error: ThrottlingException: Rate exceeded"));
        assert!(is_transient(
            "read tcp 127.0.0.1:5000: connection reset by peer"
        ));
        assert!(!is_transient("Error: AccessDeniedException"));
    }
}
