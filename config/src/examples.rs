//! The example policies shipped in `config/examples/` (`lexecon init` starts from them), embedded so
//! that the binary needs no file beside it. Data only: parsing and validation are the callers'.

/// The shipped example policy of a built-in domain (`ai`, `finance`, `healthcare`), as YAML text.
pub fn example_policy(domain: &str) -> Option<&'static str> {
    match domain {
        "ai" => Some(include_str!("../examples/ai.yaml")),
        "finance" => Some(include_str!("../examples/finance.yaml")),
        "healthcare" => Some(include_str!("../examples/healthcare.yaml")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_domain_has_an_example_naming_it() {
        for domain in ["ai", "finance", "healthcare"] {
            let text = example_policy(domain).unwrap();
            assert!(text.contains(&format!("domain: {domain}")), "{domain}");
        }
        assert_eq!(example_policy("trading"), None);
    }
}
