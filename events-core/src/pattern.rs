//! Wildcard matching of event names, as Laravel's `Str::is` does it.

/// Whether `name` matches `pattern`, where `*` matches any run of characters,
/// dots included (`order.*` matches `order.a.b`), and `*` alone matches every
/// name. Everything else matches itself.
///
/// ```
/// use events::matches_pattern;
///
/// assert!(matches_pattern("appointment.*", "appointment.created"));
/// assert!(matches_pattern("appointment.*", "appointment.slot.moved"));
/// assert!(matches_pattern("*.created", "customer.created"));
/// assert!(matches_pattern("*", "anything"));
/// assert!(!matches_pattern("appointment.*", "customer.created"));
/// ```
pub fn matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    // `split` always yields at least one part.
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let Some(last) = parts.next_back() else {
        // No `*` at all: an exact match.
        return rest.is_empty();
    };
    for middle in parts {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn exact_names() {
        assert!(matches("order.created", "order.created"));
        assert!(!matches("order.created", "order.created.late"));
        assert!(!matches("order.created", "order"));
    }

    #[test]
    fn star_spans_dots() {
        assert!(matches("order.*", "order.a.b"));
        assert!(matches("order.*", "order."));
        assert!(!matches("order.*", "order"));
        assert!(matches("*", ""));
        assert!(matches("*.created", "a.b.created"));
        assert!(!matches("*.created", "a.b.cancelled"));
    }

    #[test]
    fn several_stars() {
        assert!(matches("a*b*c", "abc"));
        assert!(matches("a*b*c", "a-x-b-y-c"));
        assert!(!matches("a*b*c", "a-x-c-y-b"));
        assert!(matches("*middle*", "in the middle of it"));
        // The suffix must not reuse characters a middle part consumed.
        assert!(!matches("a*bc*c", "abc"));
        assert!(matches("**", "x"));
    }
}
