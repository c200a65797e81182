//! Durations as people write them in DAG files: `30s`, `5m`, `1h30m`, `2d`, or a bare number of
//! seconds.

use std::time::Duration;

/// Parses `1h30m`-style durations. Units: `ms`, `s`, `m`, `h`, `d`, `w`; a bare integer is seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("invalid duration `{text}`: write a number with a unit, e.g. 30s, 5m, 1h30m, 2d");
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total_ms: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u128 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let factor_ms: u128 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total_ms = total_ms.checked_add(n.checked_mul(factor_ms).ok_or_else(bad)?).ok_or_else(bad)?;
    }
    let ms = u64::try_from(total_ms).map_err(|_| bad())?;
    Ok(Duration::from_millis(ms))
}

/// Formats a duration back in the shortest `1h30m` form.
pub fn format(duration: Duration) -> String {
    let mut ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn rejects_garbage_with_advice() {
        assert_eq!(
            parse("5 mins"),
            Err("invalid duration `5 mins`: write a number with a unit, e.g. 30s, 5m, 1h30m, 2d".to_owned())
        );
        assert!(parse("m5").is_err());
        assert!(parse("99999999999999999999999d").is_err());
    }
}
