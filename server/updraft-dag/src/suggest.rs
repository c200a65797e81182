//! "Did you mean" suggestions for misspelt keys, ids and values.

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= limit && *d < c.chars().count())
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_typos() {
        assert_eq!(super::did_you_mean("dependson", ["depends_on", "produces"]), Some("depends_on"));
        assert_eq!(super::did_you_mean("zzz", ["depends_on", "produces"]), None);
    }
}
