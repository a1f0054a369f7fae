//! What the user asks of the wire: `--wire hold|delay=MS` and the answers at the prompt.

use std::str::FromStr;
use std::time::Duration;

use super::MAX_DELAY;

/// How the held packets are let go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pace {
    /// `--wire hold`: one line on stdin per packet. Enter releases it, `d` drops it, `q`
    /// releases it and every later packet; end of input releases the rest.
    Interactive,
    /// `--wire delay=MS`: each packet is released after this long.
    Delay(Duration),
    /// These verdicts, one per packet in order, then release the rest (for programs and tests
    /// that use the library).
    Script(Vec<Verdict>),
}

/// What happens to one held packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it go on (NF_ACCEPT).
    Release,
    /// Throw it away (NF_DROP): the sender's TCP retransmits it.
    Drop,
    /// Release it and every packet after it without holding.
    ReleaseRest,
}

impl FromStr for Pace {
    type Err = String;

    /// `hold` or `delay=MS`.
    fn from_str(s: &str) -> Result<Pace, String> {
        if s == "hold" {
            return Ok(Pace::Interactive);
        }
        let ms = s
            .strip_prefix("delay=")
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| {
                format!("'{s}' is not a wire mode: use hold or delay=MS (e.g. delay=500)")
            })?;
        let d = Duration::from_millis(ms);
        if d > MAX_DELAY {
            return Err(format!(
                "delay={ms} is longer than {} s: TCP would give up first",
                MAX_DELAY.as_secs()
            ));
        }
        Ok(Pace::Delay(d))
    }
}

impl Pace {
    /// How long a whole exchange may take at this pace (the demo's limit for its programs).
    pub fn deadline(&self) -> Duration {
        match self {
            Pace::Interactive => Duration::from_secs(3600),
            // An exchange is about ten packets, more with retransmissions.
            Pace::Delay(d) => Duration::from_secs(20) + *d * 40,
            Pace::Script(_) => Duration::from_secs(20),
        }
    }
}

/// Parses one answer at the prompt: empty releases, `d` drops, `q` releases the rest.
pub fn parse_answer(line: &str) -> Option<Verdict> {
    match line.trim() {
        "" | "r" | "release" => Some(Verdict::Release),
        "d" | "drop" => Some(Verdict::Drop),
        "q" | "quit" => Some(Verdict::ReleaseRest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_parses_hold_and_delay() {
        assert_eq!("hold".parse::<Pace>(), Ok(Pace::Interactive));
        assert_eq!(
            "delay=250".parse::<Pace>(),
            Ok(Pace::Delay(Duration::from_millis(250)))
        );
        for bad in ["", "delay", "delay=x", "delay=-1", "slow", "delay=600000"] {
            assert!(bad.parse::<Pace>().is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_at_the_prompt() {
        assert_eq!(parse_answer(""), Some(Verdict::Release));
        assert_eq!(parse_answer("  \n"), Some(Verdict::Release));
        assert_eq!(parse_answer("d"), Some(Verdict::Drop));
        assert_eq!(parse_answer("q"), Some(Verdict::ReleaseRest));
        assert_eq!(parse_answer("x"), None);
    }
}
