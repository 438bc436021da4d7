//! Store URL schemes: each store compiled in registers the schemes it
//! opens, at link time, and [`Store::open`] picks one by the URL's scheme.

use super::{MemoryStore, Store, StoreError};

/// A store URL scheme and the function that opens its URLs, registered
/// with [`store_scheme!`](crate::store_scheme).
#[derive(Debug)]
pub struct StoreScheme {
    scheme: &'static str,
    open: fn(&str) -> Result<Store, StoreError>,
}

impl StoreScheme {
    /// The scheme (without `://`), opened by `open`.
    pub const fn new(
        scheme: &'static str,
        open: fn(&str) -> Result<Store, StoreError>,
    ) -> StoreScheme {
        StoreScheme { scheme, open }
    }

    /// The scheme, without `://`.
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }
}

inventory::collect!(StoreScheme);

/// Registers an event store URL scheme at link time.
///
/// ```
/// use events::store::{MemoryStore, Store, StoreError};
///
/// fn open_scratch(url: &str) -> Result<Store, StoreError> {
///     Ok(Store::with_store(url, MemoryStore::default()))
/// }
/// events::store_scheme!("scratch-log", open_scratch);
///
/// assert_eq!(Store::open("scratch-log://").unwrap().url(), "scratch-log://");
/// ```
#[macro_export]
macro_rules! store_scheme {
    ($scheme:expr, $open:path $(,)?) => {
        $crate::__private::inventory::submit! {
            $crate::store::StoreScheme::new($scheme, $open)
        }
    };
}

fn open_memory(url: &str) -> Result<Store, StoreError> {
    Ok(Store::with_store(url, MemoryStore::default()))
}

crate::store_scheme!("memory", open_memory);

/// Schemes this project provides behind a facade feature, and the feature.
const BEHIND_FEATURES: &[(&str, &str)] = &[
    ("sqlite", "sqlite"),
    ("postgres", "postgres"),
    ("postgresql", "postgres"),
];

/// The store URL schemes compiled into this build, sorted.
pub fn schemes() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = inventory::iter::<StoreScheme>
        .into_iter()
        .map(StoreScheme::scheme)
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

pub(super) fn open(url: &str) -> Result<Store, StoreError> {
    let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
    let mut found = inventory::iter::<StoreScheme>
        .into_iter()
        .filter(|s| s.scheme.eq_ignore_ascii_case(scheme));
    match (found.next(), found.next()) {
        (Some(only), None) => (only.open)(url),
        (Some(_), Some(_)) => Err(StoreError::BadUrl {
            url: url.to_owned(),
            reason: format!("two stores compiled into this build both register `{scheme}`"),
        }),
        (None, _) => match BEHIND_FEATURES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(scheme))
        {
            Some(&(name, feature)) => Err(StoreError::MissingFeature {
                url: url.to_owned(),
                scheme: name.to_owned(),
                feature,
            }),
            None => Err(StoreError::UnknownScheme {
                url: url.to_owned(),
                known: schemes(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_schemes_name_what_this_build_opens() {
        let error = Store::open("mongo://x").unwrap_err();
        assert!(error.to_string().contains("`memory://`"), "{error}");
        assert!(Store::open("MEMORY://").is_ok());
    }
}
