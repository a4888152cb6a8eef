//! Multi-row statements whose text is written once per size.
//!
//! A statement of many rows has a text that depends on its number of rows.
//! [`RowsSql`] keeps that to a few sizes, powers of two up to a maximum
//! ([`chunk_sizes`]), each text written once per process and prepared once
//! per connection: with any size a batch was mostly a new statement, parsed
//! and planned with its thousands of placeholders, and building the text
//! with sqlx's `QueryBuilder` formatted a placeholder for every parameter of
//! every batch.

use std::sync::OnceLock;

/// `head`, then `rows` copies of `row` separated by commas, then `tail`.
pub(crate) struct RowsSql {
    head: &'static str,
    row: &'static str,
    tail: &'static str,
    max: usize,
    texts: OnceLock<Vec<String>>,
}

impl RowsSql {
    /// `max` is a power of two; `row` is one row of `?` parameters.
    pub(crate) const fn new(
        head: &'static str,
        row: &'static str,
        tail: &'static str,
        max: usize,
    ) -> RowsSql {
        RowsSql {
            head,
            row,
            tail,
            max,
            texts: OnceLock::new(),
        }
    }

    /// The sizes of the statements for `n` rows.
    pub(crate) fn chunks(&self, n: usize) -> impl Iterator<Item = usize> + use<> {
        chunk_sizes(n, self.max)
    }

    /// The text for `rows` rows, one of the sizes of [`RowsSql::chunks`].
    pub(crate) fn text(&self, rows: usize) -> &str {
        let texts = self.texts.get_or_init(|| {
            (0..=self.max.trailing_zeros())
                .map(|k| {
                    format!(
                        "{}{}{}",
                        self.head,
                        vec![self.row; 1 << k].join(", "),
                        self.tail
                    )
                })
                .collect()
        });
        &texts[rows.trailing_zeros() as usize]
    }
}

/// Sizes of the statements that take `n` rows, at most `max` (a power of
/// two) each: `max` while at least `max` are left, then powers of two.
pub(crate) fn chunk_sizes(n: usize, max: usize) -> impl Iterator<Item = usize> {
    let mut left = n;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let size = if left >= max {
            max
        } else {
            1 << (usize::BITS - 1 - left.leading_zeros())
        };
        left -= size;
        Some(size)
    })
}

#[cfg(test)]
mod tests {
    use super::{RowsSql, chunk_sizes};

    #[test]
    fn texts_have_one_row_of_parameters_per_row() {
        let s = RowsSql::new("INSERT INTO t (a, b) VALUES ", "(?, ?)", " RETURNING a", 8);
        assert_eq!(s.text(1), "INSERT INTO t (a, b) VALUES (?, ?) RETURNING a");
        assert_eq!(
            s.text(4),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?), (?, ?) RETURNING a"
        );
        for n in [0, 1, 7, 8, 9, 30] {
            let rows: usize = s
                .chunks(n)
                .map(|k| s.text(k).matches("(?, ?)").count())
                .sum();
            assert_eq!(rows, n);
        }
    }

    #[test]
    fn chunk_sizes_cover_every_row_with_few_sizes() {
        assert_eq!(chunk_sizes(0, 128).count(), 0);
        assert_eq!(chunk_sizes(1, 128).collect::<Vec<_>>(), [1]);
        assert_eq!(
            chunk_sizes(500, 128).collect::<Vec<_>>(),
            [128, 128, 128, 64, 32, 16, 4]
        );
        assert_eq!(chunk_sizes(256, 128).collect::<Vec<_>>(), [128, 128]);
        for n in 0..1000 {
            let sizes: Vec<usize> = chunk_sizes(n, 128).collect();
            assert_eq!(sizes.iter().sum::<usize>(), n);
            assert!(sizes.iter().all(|s| s.is_power_of_two() && *s <= 128));
        }
    }
}
