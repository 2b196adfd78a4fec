//! The challenge label that names a cell: `B7` (coordinate) or `019` (sequential).

use std::fmt;

use crate::card::{CellIndex, GridSize};

/// How a challenge names its cell, chosen by the OTP policy flag `coordinateCardFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LabelFormat {
    /// Column letter then 1-based row number: `A1`, `B7`, `N12`, `B19`.
    Coordinate,
    /// The 1-based row-major cell number, zero-padded to at least three digits (`001`..`168`),
    /// wider for cards of more than 999 cells (`0001`..`2574`). The vendor's default.
    #[default]
    Sequential,
}

impl LabelFormat {
    /// The format selected by the policy flag `coordinateCardFormat`.
    pub fn from_coordinate_flag(coordinate_card_format: bool) -> Self {
        if coordinate_card_format {
            Self::Coordinate
        } else {
            Self::Sequential
        }
    }
}

/// The label of one cell on a card of a given size, in a given format. `Display` writes
/// the wire form; [`ChallengeLabel::parse`] reads it back, checked against the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChallengeLabel {
    cell: CellIndex,
    grid: GridSize,
    format: LabelFormat,
}

/// Why a string is not a label of a cell on the given card.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LabelError {
    /// Not of the shape the format requires.
    #[error("'{0}' is not a {1} challenge label")]
    Malformed(String, &'static str),
    /// Well-formed but naming a cell that is not on the card.
    #[error("'{label}' is not on a card of {rows} rows by {columns} columns")]
    OffCard {
        /// The label given.
        label: String,
        /// The card's rows.
        rows: u8,
        /// The card's columns.
        columns: u8,
    },
}

impl ChallengeLabel {
    /// The label of `cell` on a card of `grid`. The cell must come from that grid.
    pub fn new(cell: CellIndex, grid: GridSize, format: LabelFormat) -> Self {
        Self { cell, grid, format }
    }

    /// The cell this label names.
    pub fn cell(&self) -> CellIndex {
        self.cell
    }

    /// The format it is written in.
    pub fn format(&self) -> LabelFormat {
        self.format
    }

    /// Digits of a sequential label on this grid: at least three.
    pub fn sequential_width(grid: GridSize) -> usize {
        grid.cell_count().to_string().len().max(3)
    }

    /// Parses the canonical wire form of a label for a card of `grid` (upper-case column
    /// letter and no leading zero in coordinate form; exactly the padded width in
    /// sequential form), refusing cells off the card.
    pub fn parse(label: &str, grid: GridSize, format: LabelFormat) -> Result<Self, LabelError> {
        let cell = match format {
            LabelFormat::Coordinate => parse_coordinate(label, grid)?,
            LabelFormat::Sequential => parse_sequential(label, grid)?,
        };
        Ok(Self { cell, grid, format })
    }
}

fn off_card(label: &str, grid: GridSize) -> LabelError {
    LabelError::OffCard {
        label: label.to_owned(),
        rows: grid.rows(),
        columns: grid.columns(),
    }
}

fn parse_coordinate(label: &str, grid: GridSize) -> Result<CellIndex, LabelError> {
    let malformed = || LabelError::Malformed(label.to_owned(), "coordinate");
    let mut chars = label.chars();
    let letter = chars
        .next()
        .filter(char::is_ascii_uppercase)
        .ok_or_else(malformed)?;
    let digits = chars.as_str();
    let canonical_number = !digits.is_empty()
        && digits.len() <= 2
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if !canonical_number {
        return Err(malformed());
    }
    let row: u8 = digits.parse().map_err(|_| malformed())?;
    let column = u8::try_from(u32::from(letter) - u32::from('A')).map_err(|_| malformed())?;
    grid.cell_at(row - 1, column)
        .ok_or_else(|| off_card(label, grid))
}

fn parse_sequential(label: &str, grid: GridSize) -> Result<CellIndex, LabelError> {
    let width = ChallengeLabel::sequential_width(grid);
    if label.len() != width || !label.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LabelError::Malformed(label.to_owned(), "sequential"));
    }
    let number: u32 = label
        .parse()
        .map_err(|_| LabelError::Malformed(label.to_owned(), "sequential"))?;
    number
        .checked_sub(1)
        .and_then(|index| grid.cell(index).ok())
        .ok_or_else(|| off_card(label, grid))
}

impl fmt::Display for ChallengeLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.format {
            LabelFormat::Coordinate => {
                let letter = char::from(b'A' + self.cell.column(self.grid));
                write!(f, "{letter}{}", u16::from(self.cell.row(self.grid)) + 1)
            }
            LabelFormat::Sequential => {
                let width = Self::sequential_width(self.grid);
                write!(f, "{:0width$}", self.cell.get() + 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn label(index: u32, grid: GridSize, format: LabelFormat) -> String {
        ChallengeLabel::new(grid.cell(index).unwrap(), grid, format).to_string()
    }

    #[test]
    fn coordinate_labels_match_the_vendor_examples() {
        let grid = GridSize::DEFAULT;
        assert_eq!(label(0, grid, LabelFormat::Coordinate), "A1");
        // B7: column B (1), row 7 (6) on a 14-column card.
        assert_eq!(label(6 * 14 + 1, grid, LabelFormat::Coordinate), "B7");
        assert_eq!(label(167, grid, LabelFormat::Coordinate), "N12");
        let tall = GridSize::new(20, 14).unwrap();
        assert_eq!(label(18 * 14 + 1, tall, LabelFormat::Coordinate), "B19");
    }

    #[test]
    fn sequential_labels_are_padded_to_three_digits_or_more() {
        let grid = GridSize::DEFAULT;
        assert_eq!(label(0, grid, LabelFormat::Sequential), "001");
        assert_eq!(label(18, grid, LabelFormat::Sequential), "019");
        assert_eq!(label(167, grid, LabelFormat::Sequential), "168");
        let big = GridSize::new(99, 26).unwrap();
        assert_eq!(label(0, big, LabelFormat::Sequential), "0001");
        assert_eq!(label(2573, big, LabelFormat::Sequential), "2574");
        let tiny = GridSize::new(1, 1).unwrap();
        assert_eq!(label(0, tiny, LabelFormat::Sequential), "001");
    }

    #[test]
    fn parse_refuses_malformed_and_off_card_labels() {
        let grid = GridSize::DEFAULT;
        let coordinate = |s| ChallengeLabel::parse(s, grid, LabelFormat::Coordinate);
        let sequential = |s| ChallengeLabel::parse(s, grid, LabelFormat::Sequential);
        for bad in ["", "B", "b7", "B07", "7B", "B-1", "B123", "ÄB", "B 7", "B0"] {
            assert!(
                matches!(coordinate(bad), Err(LabelError::Malformed(..))),
                "{bad:?} accepted"
            );
        }
        for off in ["O1", "A13", "Z99"] {
            assert!(
                matches!(coordinate(off), Err(LabelError::OffCard { .. })),
                "{off}"
            );
        }
        for bad in ["", "1", "01", "0001", "12a", "-01", "+01"] {
            assert!(
                matches!(sequential(bad), Err(LabelError::Malformed(..))),
                "{bad:?} accepted"
            );
        }
        for off in ["000", "169", "999"] {
            assert!(
                matches!(sequential(off), Err(LabelError::OffCard { .. })),
                "{off}"
            );
        }
    }

    fn any_grid() -> impl Strategy<Value = GridSize> {
        (1u32..=99, 1u32..=26).prop_map(|(r, c)| GridSize::new(r, c).unwrap())
    }

    fn any_format() -> impl Strategy<Value = LabelFormat> {
        prop_oneof![Just(LabelFormat::Coordinate), Just(LabelFormat::Sequential)]
    }

    proptest! {
        /// Fuzz (`just fuzz` runs more cases): any text is either refused or is the one
        /// canonical label of a cell on the card; parsing never panics.
        #[test]
        fn any_text_parses_only_to_its_canonical_label(
            grid in any_grid(),
            format in any_format(),
            text in "\\PC{0,8}|[A-Za-z]{0,3}[0-9]{0,6}|[ +-]?[0-9]{0,7}[ ]?",
        ) {
            if let Ok(label) = ChallengeLabel::parse(&text, grid, format) {
                prop_assert_eq!(label.to_string(), text);
                prop_assert!(label.cell().get() < grid.cell_count());
            }
        }

        /// Every cell of every grid size formats and parses back to itself.
        #[test]
        fn every_cell_round_trips(grid in any_grid(), format in any_format()) {
            for cell in grid.cells() {
                let text = ChallengeLabel::new(cell, grid, format).to_string();
                let parsed = ChallengeLabel::parse(&text, grid, format).unwrap();
                prop_assert_eq!(parsed.cell(), cell);
            }
        }

        /// A label from a larger card that is off a smaller card is refused by the smaller one.
        #[test]
        fn labels_outside_the_grid_are_refused(grid in any_grid(),
                                                extra_row in 0u8..3, extra_column in 0u8..3) {
            let big = GridSize::new(99, 26).unwrap();
            let row = grid.rows() + extra_row;
            let column = grid.columns() + extra_column;
            prop_assume!(row < 99 && column < 26);
            let outside = big.cell_at(row, column).unwrap();
            let text = ChallengeLabel::new(outside, big, LabelFormat::Coordinate).to_string();
            prop_assert!(ChallengeLabel::parse(&text, grid, LabelFormat::Coordinate).is_err());
            let past_end = format!("{:0w$}", u32::from(grid.cell_count()) + 1 + u32::from(extra_row),
                                   w = ChallengeLabel::sequential_width(grid));
            let parsed = ChallengeLabel::parse(&past_end, grid, LabelFormat::Sequential);
            prop_assert!(parsed.is_err());
        }

        /// Parsing arbitrary text never panics.
        #[test]
        fn parse_never_panics(text in ".{0,8}", grid in any_grid(), format in any_format()) {
            let _ = ChallengeLabel::parse(&text, grid, format);
        }
    }
}
