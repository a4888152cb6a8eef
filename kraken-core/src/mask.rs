//! The one rule for hiding secret values in text (logs, command lines):
//! every line of every secret, whatever its length or shape, becomes
//! [`MASK`]. A multi-line secret (an SSH key) is hidden line by line, so a
//! log that prints it one line at a time shows none of it.

/// What a secret value is replaced with.
pub const MASK: &str = "******";

/// The pieces of `secrets` to hide: each non-blank line (without its
/// surrounding whitespace), longest first so that a secret containing
/// another one is hidden whole.
fn needles<S: AsRef<str>>(secrets: &[S]) -> Vec<&str> {
    let mut out: Vec<&str> = secrets
        .iter()
        .flat_map(|s| s.as_ref().lines())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    out.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    out.dedup();
    out
}

/// `text` with every line of every secret replaced by [`MASK`].
pub fn mask_secrets<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    let mut out = text.to_string();
    for n in needles(secrets) {
        if out.contains(n) {
            out = out.replace(n, MASK);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_is_masked_whatever_its_length() {
        let s = ["s3cr3t", "ab"];
        assert_eq!(
            mask_secrets("token=s3cr3t and s3cr3t; ab", &s),
            "token=****** and ******; ******"
        );
    }

    #[test]
    fn multi_line_secrets_are_masked_line_by_line() {
        let key = "-----BEGIN KEY-----\nAAAAB3NzaC1yc2E\n  QUJDREVGR0g=  \n-----END KEY-----\n";
        let log = "cat key\nAAAAB3NzaC1yc2E\nQUJDREVGR0g=\ndone";
        assert_eq!(mask_secrets(log, &[key]), "cat key\n******\n******\ndone");
        assert_eq!(mask_secrets(key, &[key]).matches(MASK).count(), 4);
    }

    #[test]
    fn longer_secrets_win_over_their_parts() {
        assert_eq!(mask_secrets("abcdef", &["abc", "abcdef"]), MASK);
        assert_eq!(mask_secrets("nothing here", &["", "  "]), "nothing here");
    }
}
