//! Secrets out of everything orch writes or prints from terraform's output: the values of
//! secret-looking environment variables (AWS keys, session tokens, anything named like a
//! password or token) and AWS access key ids, wherever they appear. Terraform can echo its
//! environment (a crash dump, `TF_LOG=debug`), and that output goes to logs, the report and the
//! terminal.

/// Names whose values are secrets: matched as substrings of the upper-cased variable name.
const SECRET_NAMES: [&str; 10] = [
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "PRIVATE",
    "CREDENTIAL",
    "API_KEY",
    "APIKEY",
    "ACCESS_KEY",
    "AUTH",
];

/// Shorter values are left alone: a secret is not 4 characters, and redacting `true` or `1`
/// everywhere would garble the log.
const MIN_SECRET_LEN: usize = 8;

#[derive(Clone, Debug, Default)]
pub struct Redactor {
    /// (value, variable name), longest value first so a secret containing another goes whole.
    secrets: Vec<(String, String)>,
}

impl Redactor {
    /// The secrets of this process's environment.
    pub fn from_env() -> Self {
        Self::new(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    pub fn new(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut secrets: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(name, value)| {
                let upper = name.to_ascii_uppercase();
                value.len() >= MIN_SECRET_LEN
                    && !upper.ends_with("_SOCK")
                    && SECRET_NAMES.iter().any(|s| upper.contains(s))
            })
            .map(|(name, value)| (value, name))
            .collect();
        secrets.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.cmp(b)));
        secrets.dedup_by(|a, b| a.0 == b.0);
        Redactor { secrets }
    }

    /// `text` with every secret replaced by `[redacted NAME]` and every AWS access key id by
    /// `[redacted access key id]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (value, name) in &self.secrets {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), &format!("[redacted {name}]"));
            }
        }
        redact_key_ids(&out)
    }
}

/// AWS access key ids: `AKIA` (long-term) or `ASIA` (temporary) and 16 upper-case letters or
/// digits, not part of a longer word.
fn redact_key_ids(text: &str) -> String {
    let bytes = text.as_bytes();
    let id_char = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut i = 0;
    while i + 20 <= bytes.len() {
        let prefix = &bytes[i..i + 4];
        if (prefix == b"AKIA" || prefix == b"ASIA")
            && (i == 0 || !id_char(bytes[i - 1]))
            && bytes[i + 4..i + 20].iter().all(|&b| id_char(b))
            && bytes.get(i + 20).is_none_or(|&b| !id_char(b))
        {
            out.push_str(&text[last..i]);
            out.push_str("[redacted access key id]");
            i += 20;
            last = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        Redactor::new([
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                "wJalrXUtnFEMI/K7MDENG".into(),
            ),
            ("AWS_SESSION_TOKEN".into(), "FwoGZXIvYXdzEJr//token".into()),
            ("TF_VAR_db_password".into(), "hunter2hunter2".into()),
            ("SSH_AUTH_SOCK".into(), "/tmp/ssh-agent.sock".into()),
            ("GITHUB_TOKEN".into(), "short".into()),
            ("HOME".into(), "/root/not-a-secret".into()),
        ])
    }

    #[test]
    fn secret_values_are_replaced_by_their_names() {
        let text = "env: AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG token=FwoGZXIvYXdzEJr//token pw hunter2hunter2";
        assert_eq!(
            redactor().redact(text),
            "env: AWS_SECRET_ACCESS_KEY=[redacted AWS_SECRET_ACCESS_KEY] token=[redacted AWS_SESSION_TOKEN] pw [redacted TF_VAR_db_password]"
        );
    }

    #[test]
    fn ordinary_values_stay() {
        let text = "/tmp/ssh-agent.sock short /root/not-a-secret";
        assert_eq!(redactor().redact(text), text);
    }

    #[test]
    fn access_key_ids_are_replaced_wherever_they_appear() {
        let r = Redactor::default();
        assert_eq!(
            r.redact("Credential=AKIAIOSFODNN7EXAMPLE/20261130/us-east-1"),
            "Credential=[redacted access key id]/20261130/us-east-1"
        );
        assert_eq!(r.redact("ASIAY34FZKBOKMUTVV7A"), "[redacted access key id]");
        // Part of a longer word, or too short: not a key id.
        assert_eq!(r.redact("XAKIAIOSFODNN7EXAMPLE"), "XAKIAIOSFODNN7EXAMPLE");
        assert_eq!(r.redact("AKIAIOSFODNN7EXAMPLEX"), "AKIAIOSFODNN7EXAMPLEX");
        assert_eq!(r.redact("AKIA1234"), "AKIA1234");
        assert_eq!(
            r.redact("é AKIAIOSFODNN7EXAMPLE é"),
            "é [redacted access key id] é"
        );
    }
}
