//! Small helpers for messages people read (conditions, events).

/// How many names a message lists before it says "and N more".
pub const NAMES_SHOWN: usize = 8;

/// Comma-separated names, at most [`NAMES_SHOWN`] then "and N more", so that messages stay
/// readable for a group of hundreds of pods.
pub fn name_list(items: &[String]) -> String {
    let mut text = items
        .iter()
        .take(NAMES_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > NAMES_SHOWN {
        text.push_str(&format!(" and {} more", items.len() - NAMES_SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_then_counts_the_rest() {
        let few: Vec<String> = ["a", "b"].map(String::from).to_vec();
        assert_eq!(name_list(&few), "a, b");
        let many: Vec<String> = (0..11).map(|i| format!("edge-{i}")).collect();
        assert_eq!(
            name_list(&many),
            "edge-0, edge-1, edge-2, edge-3, edge-4, edge-5, edge-6, edge-7 and 3 more"
        );
    }
}
