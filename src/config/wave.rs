//! What a wave of `orch.yaml` adds for `orch rollout` to its name and globs: its optional gate
//! (`command`, `bake`) and whether it waits for approval.

use std::time::Duration;

use super::decode::Fields;
use super::model::Gate;
use crate::diag::Diagnostics;

/// The longest bake orch accepts: a day. Longer waits belong to a scheduler, not to one process.
const MAX_BAKE: Duration = Duration::from_secs(24 * 3600);

/// How long a gate's command may run when its wave does not say: long enough for a smoke test or
/// an alarm check, short enough that a hung one does not hold the rollout for hours.
pub const DEFAULT_GATE_TIMEOUT: Duration = Duration::from_secs(600);

/// A wave's `approve` and `gate`, read from the wave's fields (`settings::read_waves` reads the
/// rest).
pub fn read_extras(w: &mut Fields) -> (bool, Option<Gate>) {
    let approve = w.bool("approve").is_some_and(|a| a.value);
    let gate = w
        .map("gate", "a wave's `gate`")
        .and_then(|g| read_gate(g, &mut w.diags));
    (approve, gate)
}

fn read_gate(mut g: Fields, diags: &mut Diagnostics) -> Option<Gate> {
    let command = g.string("command");
    if let Some(c) = &command {
        if c.value.trim().is_empty() {
            g.error(c.span, "the gate's `command` is empty").help =
                Some("name a command to run, or leave `command` out".into());
        }
    }
    let bake = g
        .string("bake")
        .and_then(|b| match parse_duration(&b.value) {
            Ok(d) => Some(d),
            Err(why) => {
                g.error(b.span, why).help =
                    Some("write a number and a unit: s, m or h, e.g. 30s, 5m, 1h30m".into());
                None
            }
        });
    let timeout = g
        .string("timeout")
        .and_then(|t| match parse_duration(&t.value) {
            Ok(d) if d.is_zero() => {
                g.error(
                    t.span,
                    format!(
                        "a gate's `timeout` of `{}` would stop the command before it starts",
                        t.value
                    ),
                )
                .help = Some("give the command time to run, e.g. 10m (the default)".into());
                None
            }
            Ok(d) => Some(d),
            Err(why) => {
                g.error(t.span, why).help =
                    Some("write a number and a unit: s, m or h, e.g. 30s, 5m, 1h30m".into());
                None
            }
        });
    if let (Some(t), None) = (g.key_span("timeout"), &command) {
        g.error(
            t,
            "a gate's `timeout` is for its `command`, and this gate has none",
        )
        .help = Some("add `command`, or remove `timeout`".into());
    }
    if command.is_none() && bake.is_none() && !g.diags.has_errors() {
        let span = g.span();
        g.error(span, "a gate needs `command`, `bake` or both");
    }
    let ok = !g.diags.has_errors();
    g.finish(diags, None);
    ok.then(|| Gate {
        command: command.map(|c| c.value),
        bake: bake.unwrap_or_default(),
        timeout: timeout.unwrap_or(DEFAULT_GATE_TIMEOUT),
    })
}

/// `30s`, `5m`, `1h30m`: whole numbers, each with a unit (s, m, h), largest first.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (e.g. 30s, 5m, 1h30m)");
    let mut total = 0u64;
    let mut number = String::new();
    let mut last_unit = u64::MAX;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
        if number.is_empty() || unit >= last_unit {
            return Err(bad());
        }
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = total.saturating_add(n.saturating_mul(unit));
        last_unit = unit;
        number.clear();
    }
    if !number.is_empty() || last_unit == u64::MAX {
        return Err(bad());
    }
    let duration = Duration::from_secs(total);
    if duration > MAX_BAKE {
        return Err(format!("a bake of `{text}` is longer than a day"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "5", "m", "5x", "30s5m", "1m1m", "-5s", "5 m", "25h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
