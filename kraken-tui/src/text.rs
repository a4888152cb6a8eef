//! Text helpers: cleaning tool output for the screen, cutting lines to a
//! width, highlighting search matches.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

/// Make one line of tool output safe to draw: drop ANSI escape sequences
/// and control characters, expand tabs, and keep only what follows the last
/// carriage return (a progress bar redrawing itself).
pub fn sanitize(s: &str) -> String {
    let s = s.trim_end_matches('\r');
    let s = s.rsplit_once('\r').map_or(s, |(_, last)| last);
    let mut out = String::with_capacity(s.len());
    let mut col = 0usize;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            '\t' => {
                let n = 8 - col % 8;
                out.extend(std::iter::repeat_n(' ', n));
                col += n;
            }
            c if c.is_control() => {}
            c => {
                out.push(c);
                col += c.width().unwrap_or(0);
            }
        }
    }
    out
}

/// Skip the rest of an escape sequence after ESC.
fn skip_escape(chars: &mut std::str::Chars<'_>) {
    match chars.next() {
        // CSI: parameters, then a final byte in @..~.
        Some('[') => {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
        // OSC and string sequences: up to BEL or ESC \.
        Some(']' | 'P' | 'X' | '^' | '_') => {
            let mut esc = false;
            for c in chars.by_ref() {
                if c == '\u{7}' || (esc && c == '\\') {
                    break;
                }
                esc = c == '\u{1b}';
            }
        }
        // Two-character sequences (ESC c, ESC 7, ...).
        _ => {}
    }
}

/// Display width of a string.
pub fn width(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// How many rows a line takes when cut at `cols` columns.
pub fn rows_needed(s: &str, cols: usize) -> usize {
    let w = width(s);
    if cols == 0 || w == 0 {
        1
    } else {
        w.div_ceil(cols)
    }
}

/// Byte ranges of the (ASCII case-insensitive) occurrences of `needle` in `hay`.
pub fn find_all(hay: &str, needle_lower: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    if needle_lower.is_empty() {
        return out;
    }
    let lower = hay.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(needle_lower) {
        let start = from + pos;
        let end = start + needle_lower.len();
        out.push((start, end));
        from = end;
    }
    out
}

/// Whether `hay` contains `needle_lower`, ignoring ASCII case.
pub fn contains_ci(hay: &str, needle_lower: &str) -> bool {
    needle_lower.is_empty() || hay.to_ascii_lowercase().contains(needle_lower)
}

/// Split `text` into spans: `base` style, `hit` style on the ranges.
pub fn highlight<'a>(
    text: &'a str,
    ranges: &[(usize, usize)],
    base: Style,
    hit: Style,
) -> Vec<Span<'a>> {
    let mut spans = Vec::with_capacity(ranges.len() * 2 + 1);
    let mut at = 0;
    for &(s, e) in ranges {
        if s > at {
            spans.push(Span::styled(&text[at..s], base));
        }
        spans.push(Span::styled(&text[s..e], hit));
        at = e;
    }
    if at < text.len() || spans.is_empty() {
        spans.push(Span::styled(&text[at..], base));
    }
    spans
}

/// Cut styled spans into rows of at most `cols` columns (hard wrap, no
/// word breaking, so the number of rows is exactly [`rows_needed`]).
pub fn wrap_spans<'a>(spans: Vec<Span<'a>>, cols: usize) -> Vec<Line<'a>> {
    if cols == 0 {
        return vec![Line::from(spans)];
    }
    let mut rows: Vec<Line<'a>> = Vec::new();
    let mut row: Vec<Span<'a>> = Vec::new();
    let mut used = 0usize;
    for span in spans {
        let style = span.style;
        let content = span.content;
        let mut start = 0;
        for (i, c) in content.char_indices() {
            let w = c.width().unwrap_or(0);
            if used + w > cols && used > 0 {
                if i > start {
                    row.push(Span::styled(content[start..i].to_string(), style));
                }
                rows.push(Line::from(std::mem::take(&mut row)));
                used = 0;
                start = i;
            }
            used += w;
        }
        if start < content.len() {
            row.push(Span::styled(content[start..].to_string(), style));
        }
    }
    rows.push(Line::from(row));
    rows
}

/// Shorten a string to `cols` columns, ending with `…` when cut.
pub fn ellipsize(s: &str, cols: usize) -> String {
    if width(s) <= cols {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > cols {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_controls_are_removed() {
        assert_eq!(sanitize("\u{1b}[31mred\u{1b}[0m text"), "red text");
        assert_eq!(sanitize("a\tb"), "a       b");
        assert_eq!(sanitize("10%\r50%\r100%\r"), "100%");
        assert_eq!(sanitize("\u{1b}]0;title\u{7}ok\u{0}"), "ok");
    }

    #[test]
    fn wrapping_is_exact() {
        let rows = wrap_spans(vec![Span::raw("abcdefghij")], 4);
        let text: Vec<String> = rows.iter().map(|l| l.to_string()).collect();
        assert_eq!(text, ["abcd", "efgh", "ij"]);
        assert_eq!(rows_needed("abcdefghij", 4), 3);
        assert_eq!(rows_needed("", 4), 1);
        let spans = highlight(
            "an error here",
            &find_all("an error here", "error"),
            Style::new(),
            Style::new(),
        );
        assert_eq!(spans.len(), 3);
        assert_eq!(ellipsize("abcdef", 4), "abc…");
    }
}
