//! Serde's `rename_all` rules, reimplemented exactly as `serde_derive` applies them to struct
//! fields (`serde_derive::internals::case::RenameRule::apply_to_field`), so the names in a
//! record's schema are the names serde writes.

/// One `#[serde(rename_all = "...")]` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RenameRule {
    /// `"lowercase"`
    Lower,
    /// `"UPPERCASE"`
    Upper,
    /// `"PascalCase"`
    Pascal,
    /// `"camelCase"`
    Camel,
    /// `"snake_case"`
    Snake,
    /// `"SCREAMING_SNAKE_CASE"`
    ScreamingSnake,
    /// `"kebab-case"`
    Kebab,
    /// `"SCREAMING-KEBAB-CASE"`
    ScreamingKebab,
}

/// Every rule with the spelling serde accepts, in serde's order (used in error messages too).
const RULES: &[(&str, RenameRule)] = &[
    ("lowercase", RenameRule::Lower),
    ("UPPERCASE", RenameRule::Upper),
    ("PascalCase", RenameRule::Pascal),
    ("camelCase", RenameRule::Camel),
    ("snake_case", RenameRule::Snake),
    ("SCREAMING_SNAKE_CASE", RenameRule::ScreamingSnake),
    ("kebab-case", RenameRule::Kebab),
    ("SCREAMING-KEBAB-CASE", RenameRule::ScreamingKebab),
];

impl RenameRule {
    /// The rule serde names `name`, if any (case-sensitive, as in serde).
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        RULES.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
    }

    /// The accepted names, quoted and comma-separated, for a `help:` text.
    pub(crate) fn names() -> String {
        RULES.iter().map(|(n, _)| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
    }

    /// Apply the rule to a field name written in snake_case, as serde does.
    pub(crate) fn apply_to_field(self, field: &str) -> String {
        match self {
            RenameRule::Lower | RenameRule::Snake => field.to_owned(),
            RenameRule::Upper | RenameRule::ScreamingSnake => field.to_ascii_uppercase(),
            RenameRule::Pascal => {
                let mut pascal = String::with_capacity(field.len());
                let mut capitalize = true;
                for ch in field.chars() {
                    if ch == '_' {
                        capitalize = true;
                    } else if capitalize {
                        pascal.push(ch.to_ascii_uppercase());
                        capitalize = false;
                    } else {
                        pascal.push(ch);
                    }
                }
                pascal
            }
            RenameRule::Camel => {
                let pascal = RenameRule::Pascal.apply_to_field(field);
                let mut chars = pascal.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
                    None => pascal,
                }
            }
            RenameRule::Kebab => field.replace('_', "-"),
            RenameRule::ScreamingKebab => RenameRule::ScreamingSnake.apply_to_field(field).replace('_', "-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RenameRule::{self, *};

    /// The table of serde_derive's own `rename_fields` test, plus a raw keyword and leading `_`.
    #[test]
    fn matches_serde_table() {
        let table: &[(&str, [&str; 7])] = &[
            // field, [UPPERCASE, PascalCase, camelCase, SCREAMING_SNAKE, kebab, SCREAMING-KEBAB, lowercase]
            ("outcome", ["OUTCOME", "Outcome", "outcome", "OUTCOME", "outcome", "OUTCOME", "outcome"]),
            ("very_tasty", ["VERY_TASTY", "VeryTasty", "veryTasty", "VERY_TASTY", "very-tasty", "VERY-TASTY", "very_tasty"]),
            ("a", ["A", "A", "a", "A", "a", "A", "a"]),
            ("z42", ["Z42", "Z42", "z42", "Z42", "z42", "Z42", "z42"]),
            ("type", ["TYPE", "Type", "type", "TYPE", "type", "TYPE", "type"]),
            ("_private_x", ["_PRIVATE_X", "PrivateX", "privateX", "_PRIVATE_X", "-private-x", "-PRIVATE-X", "_private_x"]),
        ];
        for (field, [upper, pascal, camel, screaming, kebab, screaming_kebab, lower]) in table {
            assert_eq!(Upper.apply_to_field(field), *upper);
            assert_eq!(Pascal.apply_to_field(field), *pascal);
            assert_eq!(Camel.apply_to_field(field), *camel);
            assert_eq!(ScreamingSnake.apply_to_field(field), *screaming);
            assert_eq!(Kebab.apply_to_field(field), *kebab);
            assert_eq!(ScreamingKebab.apply_to_field(field), *screaming_kebab);
            assert_eq!(Lower.apply_to_field(field), *lower);
            assert_eq!(Snake.apply_to_field(field), *field);
        }
    }

    #[test]
    fn parses_every_serde_spelling_and_nothing_else() {
        for name in [
            "lowercase",
            "UPPERCASE",
            "PascalCase",
            "camelCase",
            "snake_case",
            "SCREAMING_SNAKE_CASE",
            "kebab-case",
            "SCREAMING-KEBAB-CASE",
        ] {
            assert!(RenameRule::from_name(name).is_some(), "{name}");
        }
        for name in ["camelcase", "Snake_Case", "kebab_case", ""] {
            assert_eq!(RenameRule::from_name(name), None, "{name}");
        }
        assert!(RenameRule::names().contains("\"SCREAMING-KEBAB-CASE\""));
    }
}
