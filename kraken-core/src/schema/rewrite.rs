//! Source rewriting that gives `ctx` the attribute access of Python's
//! `addict.Dict`.
//!
//! Starlark dicts have no attribute access, and a Starlark value type of our
//! own would need an `unsafe impl` (starlark's `ProvidesStaticType`), which
//! this crate forbids. So before running schema code, every attribute read
//! `X.name` that is not a method call becomes `__kk_attr(X, "name")` and
//! every index read `X[k]` becomes `__kk_index(X, k)`. The two builtins
//! (see `eval.rs`) apply `addict` semantics to the dicts of `ctx` and behave
//! exactly like `.`/`[]` for every other value. Method calls (`x.append(1)`,
//! `ctx.env.get("X")`), assignment targets and slices are left alone.
//!
//! Printing a value recurses once per level of nesting, and a value built
//! a hundred thousand levels deep at run time overflows the stack. So the
//! arguments of the calls that print values (`str`, `repr`, `print`,
//! `fail`, `x.format(...)`, `json.encode(...)`) and the expressions of
//! f-strings are wrapped in `__kk_shallow(...)`, which returns its argument
//! or fails when it nests too deeply (`%` is guarded the same way, see
//! `eval.rs`). An argument is wrapped only where the text around it is
//! plain (`(x`, `, x`, `{x}`); `str((a).b)` is left as it is.
//!
//! Python also accepts tabs between tokens and in indentation, which the
//! Starlark lexer rejects; [`normalize_tabs`] turns them into spaces first.
//!
//! Positions in errors refer to the rewritten text;
//! [`Rewritten::original_offset`] maps them back to the user's code.

use starlark::syntax::AstModule;
use starlark::syntax::ast::{AstExpr, AstStmt, ExprP, StmtP};

/// Name of the builtin that replaces `X.name`.
pub(super) const ATTR_FN: &str = "__kk_attr";
/// Name of the builtin that replaces `X[k]`.
pub(super) const INDEX_FN: &str = "__kk_index";
/// Name of the builtin that wraps the values given to printing calls.
pub(super) const SHALLOW_FN: &str = "__kk_shallow";

/// Functions whose arguments are printed.
const PRINTING_FUNCTIONS: [&str; 4] = ["str", "repr", "print", "fail"];
/// Methods whose arguments are printed (`"{}".format(x)`, `json.encode(x)`).
const PRINTING_METHODS: [&str; 2] = ["format", "encode"];

/// One replacement of `original[start..end]` by `text`.
#[derive(Debug, Clone)]
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

/// Rewritten schema code and how to map positions back.
#[derive(Debug, Clone)]
pub(super) struct Rewritten {
    /// The code to run.
    pub code: String,
    /// `(original start, original end, new start, new length)` per edit, in order.
    spans: Vec<(usize, usize, usize, usize)>,
}

impl Rewritten {
    /// The byte offset in the original code for byte offset `new` in the
    /// rewritten code (text inserted by the rewrite maps to where it was put).
    pub fn original_offset(&self, new: usize) -> usize {
        let mut mapped = new;
        for &(o_start, o_end, n_start, n_len) in &self.spans {
            if new < n_start {
                break;
            }
            if new < n_start + n_len {
                return o_start;
            }
            mapped = o_end + (new - (n_start + n_len));
        }
        mapped
    }
}

/// Build a [`Rewritten`] from non-overlapping edits of `code`, applied in
/// order of position (edits at the same position in the order given).
/// `None` if the edits overlap.
fn apply(code: &str, mut edits: Vec<Edit>) -> Option<Rewritten> {
    edits.sort_by_key(|e| e.start);
    let mut out = String::with_capacity(code.len() + edits.len() * 16);
    let mut spans = Vec::with_capacity(edits.len());
    let mut pos = 0;
    for e in &edits {
        if e.start < pos || e.end > code.len() {
            return None;
        }
        out.push_str(&code[pos..e.start]);
        spans.push((e.start, e.end, out.len(), e.text.len()));
        out.push_str(&e.text);
        pos = e.end;
    }
    out.push_str(&code[pos..]);
    Some(Rewritten { code: out, spans })
}

/// Replace the tabs Python accepts outside string literals: in the
/// indentation of a line by spaces up to the next multiple of 8 columns (as
/// Python's tokenizer counts them), elsewhere by one space. `None` when
/// there is no such tab.
pub(super) fn normalize_tabs(code: &str) -> Option<Rewritten> {
    if !code.contains('\t') {
        return None;
    }
    let b = code.as_bytes();
    let mut edits = Vec::new();
    let mut depth = 0usize;
    let mut line_start = true;
    let mut column = 0usize;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if line_start {
            match c {
                b' ' => {
                    column += 1;
                    i += 1;
                    continue;
                }
                b'\t' => {
                    let next = (column / 8 + 1) * 8;
                    edits.push(Edit {
                        start: i,
                        end: i + 1,
                        text: " ".repeat(next - column),
                    });
                    column = next;
                    i += 1;
                    continue;
                }
                _ => line_start = false,
            }
        }
        match c {
            b'\t' => {
                edits.push(Edit {
                    start: i,
                    end: i + 1,
                    text: " ".to_string(),
                });
                i += 1;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'\\' => i += 2, // a line continuation: the next line is not indentation
            b'\n' => {
                i += 1;
                if depth == 0 {
                    line_start = true;
                    column = 0;
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                i += 1;
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'"' | b'\'' => i = skip_string(b, i),
            _ => i += 1,
        }
    }
    if edits.is_empty() {
        return None;
    }
    apply(code, edits)
}

/// The index just after the string literal whose opening quote is at `i`.
fn skip_string(b: &[u8], i: usize) -> usize {
    let q = b[i];
    let triple = b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q);
    let mut j = if triple { i + 3 } else { i + 1 };
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            c if c == q => {
                if !triple {
                    return j + 1;
                }
                if b.get(j + 1) == Some(&q) && b.get(j + 2) == Some(&q) {
                    return j + 3;
                }
                j += 1;
            }
            b'\n' if !triple => return j,
            _ => j += 1,
        }
    }
    b.len()
}

/// Rewrite `code` (already parsed as `ast`); `None` when there is nothing
/// to rewrite.
pub(super) fn rewrite(ast: &AstModule, code: &str) -> Option<Rewritten> {
    let mut w = Walker {
        src: code.as_bytes(),
        edits: Vec::new(),
        quote: '"',
    };
    w.stmt(ast.statement());
    if w.edits.is_empty() {
        return None;
    }
    // Edits at the same place keep the order they were made in (outer
    // calls first), so `a.b.c` becomes `f(f(a, "b"), "c")`. Overlapping
    // edits would mean a bug in the walker; the code then runs as it is.
    apply(code, w.edits)
}

struct Walker<'a> {
    src: &'a [u8],
    edits: Vec<Edit>,
    /// The quote to use for inserted string literals (the opposite of the
    /// enclosing f-string's quote, if any).
    quote: char,
}

impl Walker<'_> {
    fn stmt(&mut self, s: &AstStmt) {
        match &s.node {
            StmtP::Def(def) => {
                // Parameter defaults and annotations stay as they are; the body is walked.
                self.stmt(&def.body);
            }
            _ => s.visit_expr(|e| self.expr(e)),
        }
    }

    fn expr(&mut self, e: &AstExpr) {
        match &e.node {
            ExprP::Dot(obj, name) => {
                let obj_end = obj.span.end().get() as usize;
                let name_end = name.span.end().get() as usize;
                let (open, dot) = self.enclosing(obj.span.begin().get() as usize, obj_end, b'.');
                if let (Some(open), Some(dot)) = (open, dot) {
                    self.insert(open, format!("{ATTR_FN}("));
                    let q = self.quote;
                    self.edits.push(Edit {
                        start: dot,
                        end: name_end,
                        text: format!(", {q}{}{q})", name.node),
                    });
                }
                self.expr(obj);
            }
            ExprP::Index(pair) => {
                let (obj, key) = &**pair;
                let obj_end = obj.span.end().get() as usize;
                let key_begin = key.span.begin().get() as usize;
                let key_end = key.span.end().get() as usize;
                let node_end = e.span.end().get() as usize;
                let (open, bracket) =
                    self.enclosing(obj.span.begin().get() as usize, obj_end, b'[');
                let closing = node_end
                    .checked_sub(1)
                    .filter(|i| self.src.get(*i) == Some(&b']'));
                match (open, bracket, closing) {
                    (Some(open), Some(bracket), Some(closing))
                        if bracket < key_begin && key_end <= closing =>
                    {
                        self.insert(open, format!("{INDEX_FN}("));
                        self.edits.push(Edit {
                            start: bracket,
                            end: bracket + 1,
                            text: ", ".to_string(),
                        });
                        self.edits.push(Edit {
                            start: closing,
                            end: closing + 1,
                            text: ")".to_string(),
                        });
                    }
                    _ => {}
                }
                self.expr(obj);
                self.expr(key);
            }
            ExprP::Call(callee, args) => {
                // `x.method(...)`: keep the method call, rewrite inside `x` and the args.
                let prints = match &callee.node {
                    ExprP::Dot(obj, name) => {
                        self.expr(obj);
                        PRINTING_METHODS.contains(&name.node.as_str())
                    }
                    ExprP::Identifier(id) => PRINTING_FUNCTIONS.contains(&id.node.ident.as_str()),
                    _ => {
                        self.expr(callee);
                        false
                    }
                };
                let open = self.skip_space(callee.span.end().get() as usize);
                for a in &args.args {
                    if prints {
                        self.wrap(
                            a.expr(),
                            |c, at| at == open || matches!(c, b',' | b'=' | b'*'),
                            |c| matches!(c, b',' | b')'),
                        );
                    }
                    self.expr(a.expr());
                }
            }
            ExprP::FString(f) => {
                let saved = self.quote;
                self.quote = self.fstring_inner_quote(e.span.begin().get() as usize);
                for x in &f.expressions {
                    self.wrap(x, |c, _| c == b'{', |c| matches!(c, b'}' | b'!' | b':'));
                    self.expr(x);
                }
                self.quote = saved;
            }
            _ => e.node.visit_expr(|x| self.expr(x)),
        }
    }

    /// Wrap `x` in `__kk_shallow(...)` when the character before it
    /// (skipping spaces; with its position) passes `before` and the one
    /// after it passes `after`.
    fn wrap(
        &mut self,
        x: &AstExpr,
        before: impl Fn(u8, usize) -> bool,
        after: impl Fn(u8) -> bool,
    ) {
        let begin = x.span.begin().get() as usize;
        let end = x.span.end().get() as usize;
        let mut i = begin;
        let prev = loop {
            if i == 0 {
                break None;
            }
            i -= 1;
            match self.src[i] {
                b' ' | b'\t' | b'\r' | b'\n' => {}
                c => break Some((c, i)),
            }
        };
        let next = self.skip_space(end);
        if prev.is_some_and(|(c, at)| before(c, at))
            && self.src.get(next).is_some_and(|c| after(*c))
        {
            self.insert(begin, format!("{SHALLOW_FN}("));
            self.insert(end, ")".to_string());
        }
    }

    /// The first position at or after `i` that is not a space or a line
    /// continuation.
    fn skip_space(&self, mut i: usize) -> usize {
        while let Some(b' ' | b'\t' | b'\r' | b'\n' | b'\\') = self.src.get(i) {
            i += 1;
        }
        i
    }

    fn insert(&mut self, at: usize, text: String) {
        self.edits.push(Edit {
            start: at,
            end: at,
            text,
        });
    }

    /// For an object expression at `begin..end` followed by `punct` (`.` or
    /// `[`): where to insert the call (before any parentheses around the
    /// object) and where the punctuation is. `None` when the text does not
    /// look as expected (the expression is then left as it is).
    fn enclosing(&self, begin: usize, end: usize, punct: u8) -> (Option<usize>, Option<usize>) {
        let mut i = end;
        let mut closing = 0;
        loop {
            match self.src.get(i) {
                Some(b' ' | b'\t' | b'\r' | b'\n' | b'\\') => i += 1,
                Some(b')') => {
                    closing += 1;
                    i += 1;
                }
                Some(b'#') => {
                    while i < self.src.len() && self.src[i] != b'\n' {
                        i += 1;
                    }
                }
                Some(c) if *c == punct => break,
                _ => return (None, None),
            }
        }
        let punct_at = i;
        let mut open = begin;
        while closing > 0 {
            let mut j = open;
            loop {
                if j == 0 {
                    return (None, None);
                }
                j -= 1;
                match self.src[j] {
                    b' ' | b'\t' | b'\r' | b'\n' => {}
                    b'(' => break,
                    _ => return (None, None),
                }
            }
            open = j;
            closing -= 1;
        }
        (Some(open), Some(punct_at))
    }

    /// The quote for string literals inside the f-string starting at `at`.
    fn fstring_inner_quote(&self, at: usize) -> char {
        let mut i = at;
        while i < self.src.len() && matches!(self.src[i], b'f' | b'F' | b'r' | b'R') {
            i += 1;
        }
        match self.src.get(i) {
            Some(b'"') => '\'',
            _ => '"',
        }
    }
}
