//! A filterable, selectable table: the body of every list view.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState, Wrap};

use super::Outcome;
use crate::keys::{KeyHint, KeyMap};
use crate::style;
use crate::text::contains_ci;

/// An item of a list.
pub trait Item: Clone + PartialEq {
    /// Identity: the selection stays on it when the list refreshes.
    fn key(&self) -> i64;
    /// The text `/` filters on.
    fn text(&self) -> String;
}

/// Items, the ones the filter lets through, and the selection.
#[derive(Debug, Clone)]
pub struct FilterList<T> {
    items: Vec<T>,
    visible: Vec<usize>,
    /// The filter text.
    pub filter: String,
    /// Whether the filter is being typed.
    pub editing: bool,
    /// Selection among the visible items.
    selected: Option<usize>,
    /// First visible row.
    offset: usize,
    /// Rows of the last drawn page.
    page: usize,
    /// Whether any data arrived yet.
    pub loaded: bool,
    /// An item to select once it arrives (a flow just created).
    wanted: Option<i64>,
}

impl<T: Item> Default for FilterList<T> {
    fn default() -> Self {
        FilterList {
            items: Vec::new(),
            visible: Vec::new(),
            filter: String::new(),
            editing: false,
            selected: None,
            wanted: None,
            offset: 0,
            page: 10,
            loaded: false,
        }
    }
}

impl<T: Item> FilterList<T> {
    /// An empty list (not loaded yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// New data; keeps the selection on the same item. Returns whether
    /// anything changed.
    pub fn set_items(&mut self, items: Vec<T>) -> bool {
        if self.loaded && items == self.items {
            return false;
        }
        let keep = self.selected().map(Item::key);
        self.items = items;
        self.loaded = true;
        self.refilter(keep);
        if let Some(want) = self.wanted
            && self.items.iter().any(|i| i.key() == want)
        {
            self.wanted = None;
            self.select_key(want);
        }
        true
    }

    /// Select the item with `key` now, or as soon as it is loaded.
    pub fn want(&mut self, key: i64) {
        if self.items.iter().any(|i| i.key() == key) {
            self.select_key(key);
        } else {
            self.wanted = Some(key);
        }
    }

    fn refilter(&mut self, keep: Option<i64>) {
        let needle = self.filter.to_ascii_lowercase();
        self.visible = self
            .items
            .iter()
            .enumerate()
            .filter(|(_, it)| contains_ci(&it.text(), &needle))
            .map(|(i, _)| i)
            .collect();
        let at = keep.and_then(|k| self.visible.iter().position(|&i| self.items[i].key() == k));
        self.selected = match at {
            Some(p) => Some(p),
            None if self.visible.is_empty() => None,
            None => Some(self.selected.unwrap_or(0).min(self.visible.len() - 1)),
        };
    }

    /// Every item.
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// The items the filter lets through, in order.
    pub fn visible(&self) -> impl Iterator<Item = &T> {
        self.visible.iter().map(|&i| &self.items[i])
    }

    /// The selected item.
    pub fn selected(&self) -> Option<&T> {
        self.selected
            .and_then(|s| self.visible.get(s))
            .map(|&i| &self.items[i])
    }

    /// Whether the cursor is on the last visible item (or there is none).
    pub fn at_end(&self) -> bool {
        self.selected.is_none_or(|s| s + 1 >= self.visible.len())
    }

    /// Put the cursor on the last visible item.
    pub fn select_last(&mut self) {
        self.selected = self.visible.len().checked_sub(1);
    }

    /// Select the visible item with this key.
    pub fn select_key(&mut self, key: i64) {
        if let Some(p) = self
            .visible
            .iter()
            .position(|&i| self.items[i].key() == key)
        {
            self.selected = Some(p);
        }
    }

    fn move_by(&mut self, delta: isize) -> Outcome {
        let n = self.visible.len();
        if n == 0 {
            return Outcome::Unchanged;
        }
        let cur = self.selected.unwrap_or(0) as isize;
        let next = (cur + delta).clamp(0, n as isize - 1) as usize;
        if Some(next) == self.selected {
            return Outcome::Unchanged;
        }
        self.selected = Some(next);
        Outcome::Changed
    }

    /// Navigation and filter keys; `Ignored` for the others.
    pub fn handle_key(&mut self, key: &KeyEvent, keys: &KeyMap) -> Outcome {
        if self.editing {
            match key.code {
                KeyCode::Enter => {
                    self.editing = false;
                    return Outcome::Changed;
                }
                KeyCode::Esc => {
                    self.editing = false;
                    self.set_filter(String::new());
                    return Outcome::Changed;
                }
                KeyCode::Backspace => {
                    let mut f = self.filter.clone();
                    f.pop();
                    self.set_filter(f);
                    return Outcome::Changed;
                }
                KeyCode::Char(c)
                    if !key
                        .modifiers
                        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
                {
                    let mut f = self.filter.clone();
                    f.push(c);
                    self.set_filter(f);
                    return Outcome::Changed;
                }
                KeyCode::Up | KeyCode::Down | KeyCode::PageUp | KeyCode::PageDown => {}
                _ => return Outcome::Unchanged,
            }
        }
        let page = self.page.max(1) as isize;
        if keys.up.matches(key) {
            self.move_by(-1)
        } else if keys.down.matches(key) {
            self.move_by(1)
        } else if keys.page_up.matches(key) {
            self.move_by(-page)
        } else if keys.page_down.matches(key) {
            self.move_by(page)
        } else if keys.top.matches(key) {
            self.move_by(isize::MIN / 2)
        } else if keys.bottom.matches(key) {
            self.move_by(isize::MAX / 2)
        } else if keys.filter.matches(key) {
            self.editing = true;
            Outcome::Changed
        } else if keys.back.matches(key) && !self.filter.is_empty() {
            self.set_filter(String::new());
            Outcome::Changed
        } else {
            Outcome::Ignored
        }
    }

    /// Set the filter text.
    pub fn set_filter(&mut self, f: String) {
        let keep = self.selected().map(Item::key);
        self.filter = f;
        self.refilter(keep);
    }

    /// Hints of the list itself (navigation, filter).
    pub fn hints(&self, keys: &KeyMap) -> Vec<KeyHint> {
        if self.editing {
            return super::editing_hints("filter");
        }
        let mut h = vec![KeyHint::new(&keys.filter, "filter")];
        if !self.filter.is_empty() {
            h.push(KeyHint::new(&keys.back, "clear filter"));
        }
        h
    }

    /// The title suffix that shows the filter (` /abc (2 of 5)`).
    pub fn filter_title(&self) -> String {
        if self.filter.is_empty() && !self.editing {
            return String::new();
        }
        let cursor = if self.editing { "▏" } else { "" };
        format!(
            " /{}{cursor} ({} of {})",
            self.filter,
            self.visible.len(),
            self.items.len()
        )
    }

    /// Draw the visible page as a table inside `block`; `empty` is shown
    /// when there is nothing (and `loading` before any data came).
    #[allow(clippy::too_many_arguments)]
    pub fn draw<'a>(
        &mut self,
        frame: &mut Frame<'_>,
        area: Rect,
        block: Block<'a>,
        header: Row<'a>,
        widths: &[Constraint],
        row: impl Fn(&T) -> Row<'a>,
        empty: &str,
    ) {
        let inner = block.inner(area);
        if self.visible.is_empty() {
            let msg = if !self.loaded {
                "loading…".to_string()
            } else if self.items.is_empty() {
                empty.to_string()
            } else {
                format!("nothing matches /{}", self.filter)
            };
            // Several lines (a hint on how to start) wrap to the width.
            let lines: Vec<Line<'_>> = msg
                .lines()
                .map(|l| Line::from(Span::styled(l.to_string(), style::dim())))
                .collect();
            frame.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .block(block),
                area,
            );
            return;
        }
        // Only the rows on screen are built.
        let page = (inner.height as usize).saturating_sub(1).max(1);
        self.page = page;
        let sel = self.selected.unwrap_or(0);
        if sel < self.offset {
            self.offset = sel;
        } else if sel >= self.offset + page {
            self.offset = sel + 1 - page;
        }
        self.offset = self.offset.min(self.visible.len().saturating_sub(page));
        let rows: Vec<Row<'a>> = self.visible[self.offset..]
            .iter()
            .take(page)
            .map(|&i| row(&self.items[i]))
            .collect();
        let mut state = TableState::new().with_selected(sel.checked_sub(self.offset));
        let table = Table::new(rows, widths.to_vec())
            .header(header.style(style::header()))
            .block(block)
            .column_spacing(1)
            .row_highlight_style(style::selected());
        frame.render_stateful_widget(table, area, &mut state);
    }
}
