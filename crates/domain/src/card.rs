//! The printed OTP grid card: its size, its cells and which of them are spent.

use std::num::NonZeroU32;

use crate::ports::RandomSource;

/// Most rows a card may have (the row number of a coordinate label has two digits).
pub const MAX_ROWS: u8 = 99;
/// Most columns a card may have (one letter `A`..`Z` per column).
pub const MAX_COLUMNS: u8 = 26;

/// The dimensions of a card: 1..=99 rows by 1..=26 columns. The vendor's default is 12x14.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GridSize {
    rows: u8,
    columns: u8,
}

/// Why a grid or a cell is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GridError {
    /// Rows outside 1..=99.
    #[error("rows must be between 1 and {MAX_ROWS}, got {0}")]
    Rows(u32),
    /// Columns outside 1..=26.
    #[error("columns must be between 1 and {MAX_COLUMNS}, got {0}")]
    Columns(u32),
    /// A cell index at or past the number of cells.
    #[error("cell index {index} is outside a card of {cells} cells")]
    CellOutOfRange {
        /// The offending 0-based index.
        index: u32,
        /// The number of cells on the card.
        cells: u16,
    },
}

impl GridSize {
    /// The vendor's default card: 12 rows by 14 columns, 168 cells.
    pub const DEFAULT: GridSize = GridSize {
        rows: 12,
        columns: 14,
    };

    /// A grid of `rows` x `columns`; both must be in range.
    pub fn new(rows: u32, columns: u32) -> Result<Self, GridError> {
        let rows = u8::try_from(rows)
            .ok()
            .filter(|r| (1..=MAX_ROWS).contains(r))
            .ok_or(GridError::Rows(rows))?;
        let columns = u8::try_from(columns)
            .ok()
            .filter(|c| (1..=MAX_COLUMNS).contains(c))
            .ok_or(GridError::Columns(columns))?;
        Ok(Self { rows, columns })
    }

    /// Number of rows.
    pub fn rows(self) -> u8 {
        self.rows
    }

    /// Number of columns.
    pub fn columns(self) -> u8 {
        self.columns
    }

    /// Number of cells, at most 99 x 26 = 2574.
    pub fn cell_count(self) -> u16 {
        u16::from(self.rows) * u16::from(self.columns)
    }

    /// The cell with this 0-based row-major index, if it is on the card.
    pub fn cell(self, index: u32) -> Result<CellIndex, GridError> {
        u16::try_from(index)
            .ok()
            .filter(|i| *i < self.cell_count())
            .map(CellIndex)
            .ok_or(GridError::CellOutOfRange {
                index,
                cells: self.cell_count(),
            })
    }

    /// The cell at a 0-based row and column, if it is on the card.
    pub fn cell_at(self, row: u8, column: u8) -> Option<CellIndex> {
        (row < self.rows && column < self.columns)
            .then(|| CellIndex(u16::from(row) * u16::from(self.columns) + u16::from(column)))
    }

    /// Every cell of the card, in row-major order.
    pub fn cells(self) -> impl Iterator<Item = CellIndex> {
        (0..self.cell_count()).map(CellIndex)
    }
}

/// A cell of a card: its 0-based index in row-major order. Obtained from a [`GridSize`],
/// so it is on the card it was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellIndex(u16);

impl CellIndex {
    /// The 0-based row-major index.
    pub fn get(self) -> u16 {
        self.0
    }

    /// The 0-based row on a card of this grid.
    pub fn row(self, grid: GridSize) -> u8 {
        u8::try_from(self.0 / u16::from(grid.columns)).unwrap_or(u8::MAX)
    }

    /// The 0-based column on a card of this grid.
    pub fn column(self, grid: GridSize) -> u8 {
        u8::try_from(self.0 % u16::from(grid.columns)).unwrap_or(u8::MAX)
    }
}

const WORD_BITS: u16 = 64;

/// A card: its grid and which cells are spent (a code used in a successful login).
/// Cell codes are not part of it: they are secrets that a challenge never needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpCard {
    grid: GridSize,
    /// Bit `i` set = cell `i` used; bits past the last cell stay clear.
    used: Vec<u64>,
}

impl OtpCard {
    /// A card of `grid` with the given 0-based cells already used. Refuses cells off the card;
    /// a cell listed twice counts once.
    pub fn new(
        grid: GridSize,
        used_cells: impl IntoIterator<Item = u32>,
    ) -> Result<Self, GridError> {
        let words = usize::from(grid.cell_count().div_ceil(WORD_BITS));
        let mut card = Self {
            grid,
            used: vec![0; words],
        };
        for index in used_cells {
            let cell = grid.cell(index)?;
            card.mark_used(cell);
        }
        Ok(card)
    }

    /// The card's dimensions.
    pub fn grid(&self) -> GridSize {
        self.grid
    }

    fn word_and_bit(cell: CellIndex) -> (usize, u64) {
        (
            usize::from(cell.0 / WORD_BITS),
            1u64 << (cell.0 % WORD_BITS),
        )
    }

    /// Whether the cell's code has been used.
    pub fn is_used(&self, cell: CellIndex) -> bool {
        let (word, bit) = Self::word_and_bit(cell);
        self.used.get(word).is_some_and(|w| w & bit != 0)
    }

    /// Marks a cell as used (a successful login with its code).
    pub fn mark_used(&mut self, cell: CellIndex) {
        let (word, bit) = Self::word_and_bit(cell);
        if let Some(w) = self.used.get_mut(word) {
            *w |= bit;
        }
    }

    /// The used cells, in ascending order.
    pub fn used_cells(&self) -> impl Iterator<Item = CellIndex> + '_ {
        self.grid.cells().filter(|cell| self.is_used(*cell))
    }

    /// How many cells are still unused.
    pub fn unused_count(&self) -> u16 {
        let used: u32 = self.used.iter().map(|w| w.count_ones()).sum();
        self.grid
            .cell_count()
            .saturating_sub(u16::try_from(used).unwrap_or(u16::MAX))
    }

    /// The `n`-th (0-based) unused cell in row-major order, if there are more than `n`.
    pub fn nth_unused(&self, mut n: u16) -> Option<CellIndex> {
        let cells = self.grid.cell_count();
        for (word_index, word) in self.used.iter().enumerate() {
            let base = u16::try_from(word_index).ok()? * WORD_BITS;
            let valid_bits = cells.saturating_sub(base).min(WORD_BITS);
            let free = !word & low_bits(valid_bits);
            let free_count = u16::try_from(free.count_ones()).ok()?;
            if n < free_count {
                return Some(CellIndex(base + select_bit(free, n)?));
            }
            n -= free_count;
        }
        None
    }

    /// Draws a cell uniformly at random among the unused ones, or `None` when the card is
    /// exhausted. One draw of `[0, unused)` from `random`, so there is no modulo bias as long
    /// as the source honours its contract.
    pub fn pick_unused(&self, random: &(impl RandomSource + ?Sized)) -> Option<CellIndex> {
        let unused = NonZeroU32::new(u32::from(self.unused_count()))?;
        let n = random.uniform_below(unused);
        self.nth_unused(u16::try_from(n).ok()?)
    }
}

fn low_bits(count: u16) -> u64 {
    if count >= WORD_BITS {
        u64::MAX
    } else {
        (1u64 << count) - 1
    }
}

/// Position of the `n`-th set bit of `word`.
fn select_bit(mut word: u64, n: u16) -> Option<u16> {
    for _ in 0..n {
        word &= word.wrapping_sub(1);
    }
    (word != 0).then(|| u16::try_from(word.trailing_zeros()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SeededRandom;
    use proptest::prelude::*;

    #[test]
    fn grid_bounds_are_enforced() {
        assert!(GridSize::new(1, 1).is_ok());
        assert!(GridSize::new(99, 26).is_ok());
        assert_eq!(GridSize::new(0, 14), Err(GridError::Rows(0)));
        assert_eq!(GridSize::new(100, 14), Err(GridError::Rows(100)));
        assert_eq!(GridSize::new(12, 27), Err(GridError::Columns(27)));
        assert_eq!(GridSize::new(12, 0), Err(GridError::Columns(0)));
        assert_eq!(GridSize::new(300, 14), Err(GridError::Rows(300)));
        assert_eq!(GridSize::DEFAULT.cell_count(), 168);
        assert_eq!(GridSize::new(99, 26).unwrap().cell_count(), 2574);
    }

    #[test]
    fn cells_off_the_card_are_refused() {
        let grid = GridSize::DEFAULT;
        assert!(grid.cell(167).is_ok());
        assert_eq!(
            grid.cell(168),
            Err(GridError::CellOutOfRange {
                index: 168,
                cells: 168
            })
        );
        assert!(OtpCard::new(grid, [0, 168]).is_err());
        assert_eq!(grid.cell_at(11, 13).map(CellIndex::get), Some(167));
        assert_eq!(grid.cell_at(12, 0), None);
        assert_eq!(grid.cell_at(0, 14), None);
    }

    #[test]
    fn used_cells_are_tracked_and_counted() {
        let card = OtpCard::new(GridSize::DEFAULT, [0, 5, 5, 167]).unwrap();
        assert_eq!(card.unused_count(), 165);
        let used: Vec<u16> = card.used_cells().map(CellIndex::get).collect();
        assert_eq!(used, [0, 5, 167]);
        assert_eq!(card.nth_unused(0).map(CellIndex::get), Some(1));
        assert_eq!(card.nth_unused(4).map(CellIndex::get), Some(6));
        assert_eq!(card.nth_unused(164).map(CellIndex::get), Some(166));
        assert_eq!(card.nth_unused(165), None);
    }

    #[test]
    fn exhausted_card_yields_no_cell() {
        let grid = GridSize::new(2, 2).unwrap();
        let card = OtpCard::new(grid, 0..4).unwrap();
        assert_eq!(card.unused_count(), 0);
        assert_eq!(card.pick_unused(&SeededRandom::new(1)), None);
    }

    fn any_card() -> impl Strategy<Value = OtpCard> {
        (1u32..=99, 1u32..=26)
            .prop_flat_map(|(rows, columns)| {
                let cells = rows * columns;
                (
                    Just(GridSize::new(rows, columns).unwrap()),
                    proptest::collection::vec(0..cells, 0..cells as usize + 1),
                )
            })
            .prop_map(|(grid, used)| OtpCard::new(grid, used).unwrap())
    }

    proptest! {
        #[test]
        fn picker_only_returns_unused_cells(card in any_card(), seed in any::<u64>()) {
            let random = SeededRandom::new(seed);
            match card.pick_unused(&random) {
                Some(cell) => {
                    prop_assert!(!card.is_used(cell));
                    prop_assert!(cell.get() < card.grid().cell_count());
                }
                None => prop_assert_eq!(card.unused_count(), 0),
            }
        }

        #[test]
        fn nth_unused_enumerates_exactly_the_unused_cells(card in any_card()) {
            let expected: Vec<CellIndex> =
                card.grid().cells().filter(|c| !card.is_used(*c)).collect();
            let by_rank: Vec<CellIndex> =
                (0..card.unused_count()).filter_map(|n| card.nth_unused(n)).collect();
            prop_assert_eq!(by_rank, expected);
        }
    }

    /// Over many seeded draws every unused cell comes up and the counts fit a uniform
    /// distribution: chi-square with k-1 degrees of freedom stays below the 99.9% quantile.
    #[test]
    fn picker_is_uniform_over_unused_cells() {
        let used: Vec<u32> = (0..168).filter(|i| i % 3 == 0).collect();
        let card = OtpCard::new(GridSize::DEFAULT, used).unwrap();
        let unused = usize::from(card.unused_count());
        assert_eq!(unused, 112);
        let random = SeededRandom::new(0x5eed);
        let draws = 112_000usize;
        let mut counts = [0usize; 168];
        for _ in 0..draws {
            let cell = card.pick_unused(&random).unwrap();
            counts[usize::from(cell.get())] += 1;
        }
        let expected = draws as f64 / unused as f64;
        let chi_square: f64 = card
            .grid()
            .cells()
            .filter(|c| !card.is_used(*c))
            .map(|c| {
                let observed = counts[usize::from(c.get())] as f64;
                assert!(observed > 0.0, "cell {} never drawn", c.get());
                (observed - expected).powi(2) / expected
            })
            .sum();
        assert!(
            counts.iter().step_by(3).all(|&n| n == 0),
            "a used cell was drawn"
        );
        // 99.9% quantile of chi-square with 111 degrees of freedom is about 161.
        assert!(chi_square < 161.0, "chi-square {chi_square} too large");
    }
}
