//! Made-up institution names in the numbers a real provider lists (thousands of banks, hundreds of
//! utilities), the same on every run, so catalogue paging, search and caching meet realistic
//! sizes. Each mock wraps them in its provider's own shape next to its few named institutions.

/// One generated institution: a slug id and a display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// Lowercase, `-`-separated, unique within one call's answer.
    pub slug: String,
    /// Display name, e.g. "Pioneer Credit Union of Riverside".
    pub name: String,
}

const STEMS: [&str; 20] = [
    "Pioneer",
    "Heritage",
    "Summit",
    "Liberty",
    "Prairie",
    "Harbor",
    "Keystone",
    "Evergreen",
    "Frontier",
    "Granite",
    "Meridian",
    "Northstar",
    "Oakwood",
    "Patriot",
    "Redwood",
    "Silverline",
    "Tri-County",
    "Unity",
    "Valley",
    "Westmark",
];
const PLACES: [&str; 40] = [
    "Ashford",
    "Bayview",
    "Brookfield",
    "Cedar Falls",
    "Clearwater",
    "Dover",
    "Eastport",
    "Fairview",
    "Franklin",
    "Georgetown",
    "Glendale",
    "Greenville",
    "Hamilton",
    "Hillsboro",
    "Jackson",
    "Kingston",
    "Lakewood",
    "Lexington",
    "Madison",
    "Marion",
    "Milford",
    "Newport",
    "Oak Ridge",
    "Oxford",
    "Plainview",
    "Quincy",
    "Riverside",
    "Rockport",
    "Salem",
    "Shelby",
    "Springfield",
    "Stanton",
    "Troy",
    "Union City",
    "Vernon",
    "Warren",
    "Waverly",
    "Westfield",
    "Winchester",
    "York",
];

/// The first `count` of the names `"{stem} {kind} of {place}"`, each kind in turn, ordered by
/// place, then stem, then kind (not by name: callers must not rely on the provider's order).
/// At most 800 per kind.
pub fn generated(count: usize, kinds: &[&str]) -> Vec<Generated> {
    PLACES
        .iter()
        .flat_map(|place| STEMS.iter().flat_map(move |stem| kinds.iter().map(move |kind| (stem, *kind, place))))
        .take(count)
        .map(|(stem, kind, place)| {
            let name = format!("{stem} {kind} of {place}");
            let slug = name.to_lowercase().replace(' ', "-");
            Generated { slug, name }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_stable() {
        let names = generated(2400, &["Bank", "Credit Union", "Savings Bank"]);
        assert_eq!(names.len(), 2400);
        assert_eq!(names.iter().map(|g| &g.slug).collect::<HashSet<_>>().len(), 2400);
        assert_eq!(names[0].name, "Pioneer Bank of Ashford");
        assert_eq!(names[1].slug, "pioneer-credit-union-of-ashford");
    }
}
