//! A bound on how deeply schema code nests, checked before it is parsed.
//!
//! Starlark's parser, its compiler, the rewrite in [`super::rewrite`] and
//! even dropping a syntax tree recurse once per level of the tree, on the
//! native stack. A kilobyte of `-` signs, `[` or `(` is enough to overflow
//! any stack, and a stack overflow aborts the whole process (it cannot be
//! caught). So before parsing, [`check`] runs Starlark's own lexer over the
//! code (the same token stream the parser reads; the lexer itself does not
//! recurse) and computes an upper bound of the depth of the syntax tree:
//!
//! * the code is cut into *segments*: a logical line at the top level, the
//!   inside of a bracket (`(`, `[`, `{`, or the `{...}` of an f-string), cut
//!   again at each `,` or `;` (the items of a list, the arguments of a call,
//!   ... are siblings in the tree; the parameters of a `lambda` are not cut,
//!   as its body nests under it);
//! * every token of a segment that is not a name, a literal or a comma
//!   (operators, keywords, `.`, `:`, and each opening bracket, which also
//!   makes a call, index or literal node) may add one level: a chain
//!   `a + b + c` is a left-nested tree as deep as it has operators;
//! * a segment's depth is its enclosing segment's depth (with all that
//!   segment's tokens) + 1 + its own count; a top-level line starts at the
//!   depth of its block: the number of open indented blocks plus the `elif`s
//!   before it in each of them (an `elif` chain nests each branch in the
//!   previous one).
//!
//! This over-estimates (the example schemas score 17 to 21, see the tests),
//! and [`MAX_NESTING`] is far above what a person writes and far below what
//! overflows the stack that [`super::eval::evaluate_in_process`] runs on
//! (code at the bound needs at most 4 MiB in a debug build; the evaluation
//! gets at least 32 MiB).
//! The bound holds however the code is evaluated (worker process or in
//! process). Values nested deeply *while the code runs* are another matter:
//! see [`super::sandbox`].

use starlark::codemap::CodeMap;
use starlark::syntax::Dialect;
use starlark_syntax::lexer::{Lexer, Token};

/// The largest nesting estimate accepted (see the module documentation).
pub const MAX_NESTING: usize = 500;

/// A segment of the code: a run of tokens between separators at one
/// bracket level.
struct Segment {
    /// The enclosing segment; `None` at the top level.
    parent: Option<usize>,
    /// The depth it starts at, for top-level segments (the block depth).
    base: usize,
    /// Tokens that may add a level.
    ops: usize,
    /// Byte offset of its first token, for the error.
    start: usize,
}

/// An open bracket (or the top level, at the bottom of the stack).
struct Level {
    /// The current segment at this level.
    segment: usize,
    /// Between a `lambda` and its `:` commas do not cut the segment.
    lambda_params: bool,
}

/// Where the code nests too deeply: the estimate and the byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TooDeep {
    /// The nesting estimate of the deepest segment.
    pub depth: usize,
    /// Byte offset in the code of that segment's first token.
    pub offset: usize,
}

/// The nesting estimate of `code` (see the module documentation) and the
/// byte offset of its deepest segment. Scanning stops at the first lexical
/// error: the parser stops there too, so what follows cannot nest.
pub(super) fn estimate(code: &str, dialect: &Dialect) -> (usize, usize) {
    let codemap = CodeMap::new("schema".to_string(), code.to_string());
    let lexer = Lexer::new(code, dialect, codemap);
    let mut segments = vec![Segment {
        parent: None,
        base: 1,
        ops: 0,
        start: 0,
    }];
    let mut stack = vec![Level {
        segment: 0,
        lambda_params: false,
    }];
    // `elif`s seen so far in the current chain, per open block.
    let mut blocks: Vec<usize> = vec![0];
    let mut line_start = true;
    for lexeme in lexer {
        let Ok((start, token, _end)) = lexeme else {
            break;
        };
        match token {
            Token::Comment(_) | Token::Tabs => continue,
            Token::Newline => {
                if stack.len() == 1 {
                    line_start = true;
                }
                continue;
            }
            Token::Indent => {
                blocks.push(0);
                continue;
            }
            Token::Dedent => {
                if blocks.len() > 1 {
                    blocks.pop();
                }
                continue;
            }
            _ => {}
        }
        if line_start && stack.len() == 1 {
            line_start = false;
            if let Some(elifs) = blocks.last_mut() {
                match token {
                    Token::Elif => *elifs += 1,
                    Token::Else => {}
                    _ => *elifs = 0,
                }
            }
            let base = blocks.len() + blocks.iter().sum::<usize>();
            segments.push(Segment {
                parent: None,
                base,
                ops: 0,
                start,
            });
            stack[0] = Level {
                segment: segments.len() - 1,
                lambda_params: false,
            };
        }
        let Some(level) = stack.last_mut() else {
            break;
        };
        let current = level.segment;
        match token {
            Token::OpeningRound
            | Token::OpeningSquare
            | Token::OpeningCurly
            | Token::FStringExprStart => {
                segments[current].ops += 1;
                segments.push(Segment {
                    parent: Some(current),
                    base: 0,
                    ops: 0,
                    start,
                });
                stack.push(Level {
                    segment: segments.len() - 1,
                    lambda_params: false,
                });
            }
            Token::ClosingRound
            | Token::ClosingSquare
            | Token::ClosingCurly
            | Token::FStringExprEnd => {
                if stack.len() > 1 {
                    stack.pop();
                }
            }
            Token::Comma | Token::Semicolon if !level.lambda_params => {
                let (parent, base) = (segments[current].parent, segments[current].base);
                segments.push(Segment {
                    parent,
                    base,
                    ops: 0,
                    start,
                });
                level.segment = segments.len() - 1;
            }
            Token::Lambda => {
                level.lambda_params = true;
                segments[current].ops += 1;
            }
            Token::Colon => {
                level.lambda_params = false;
                segments[current].ops += 1;
            }
            Token::Identifier(_)
            | Token::Int(_)
            | Token::Float(_)
            | Token::String(_)
            | Token::Bytes(_)
            | Token::FStringText(_)
            | Token::FStringEnd
            | Token::Pass
            | Token::Break
            | Token::Continue
            | Token::Comma
            | Token::Semicolon => {}
            _ => segments[current].ops += 1,
        }
    }
    // Parents come before their children, so one pass in order suffices.
    let mut depths = Vec::with_capacity(segments.len());
    let mut deepest = (0, 0);
    for s in &segments {
        let above = s.parent.map_or(s.base, |p| depths[p]);
        let depth = above + 1 + s.ops;
        depths.push(depth);
        if depth > deepest.0 {
            deepest = (depth, s.start);
        }
    }
    deepest
}

/// `Err` when `code` nests deeper than [`MAX_NESTING`] (see the module
/// documentation).
pub(super) fn check(code: &str, dialect: &Dialect) -> Result<(), TooDeep> {
    let (depth, offset) = estimate(code, dialect);
    if depth > MAX_NESTING {
        return Err(TooDeep { depth, offset });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialect() -> Dialect {
        Dialect {
            enable_f_strings: true,
            ..Dialect::Extended
        }
    }

    fn depth(code: &str) -> usize {
        estimate(code, &dialect()).0
    }

    #[test]
    fn flat_code_is_shallow() {
        assert!(depth("x = 1\n") <= 4);
        let long_list = format!("x = [{}]\n", vec!["1"; 10_000].join(", "));
        assert!(depth(&long_list) <= 6, "siblings do not add up");
        let many_lines = "x = 1\n".repeat(10_000);
        assert!(depth(&many_lines) <= 4, "lines do not add up");
    }

    #[test]
    fn brackets_unary_operators_and_chains_add_up() {
        for n in [10usize, 100, 1000] {
            let brackets = format!("x = {}1{}\n", "[".repeat(n), "]".repeat(n));
            assert!(depth(&brackets) >= n, "{n} brackets");
            let minus = format!("x = {}1\n", "-".repeat(n));
            assert!(depth(&minus) >= n, "{n} minus signs");
            let chain = format!("x = 1{}\n", " + 1".repeat(n));
            assert!(depth(&chain) >= n, "a chain of {n} operators");
            let dots = format!("x = a{}\n", ".b".repeat(n));
            assert!(depth(&dots) >= n, "{n} attribute reads");
            let calls = format!("x = f{}\n", "()".repeat(n));
            assert!(depth(&calls) >= n, "{n} calls");
            let lambdas = format!("x = {}1\n", "lambda a, b: ".repeat(n));
            assert!(depth(&lambdas) >= n, "{n} nested lambdas");
            let ternary = format!("x = {}1\n", "1 if c else ".repeat(n));
            assert!(depth(&ternary) >= n, "{n} nested conditionals");
            let nots = format!("x = {}c\n", "not ".repeat(n));
            assert!(depth(&nots) >= n, "{n} nots");
            let fstrings = format!(
                "x = {}1{}\n",
                "f\"{".repeat(n.min(200)),
                "}\"".repeat(n.min(200))
            );
            assert!(depth(&fstrings) >= n.min(200), "{n} nested f-strings");
        }
    }

    #[test]
    fn blocks_and_elif_chains_add_up() {
        let mut nested = String::new();
        for i in 0..100 {
            nested.push_str(&" ".repeat(i));
            nested.push_str("if x:\n");
        }
        nested.push_str(&" ".repeat(100));
        nested.push_str("pass\n");
        assert!(depth(&nested) >= 100, "indented blocks");

        let mut elifs = "if x:\n    pass\n".to_string();
        for _ in 0..100 {
            elifs.push_str("elif x:\n    pass\n");
        }
        assert!(depth(&elifs) >= 100, "an elif chain");
        let mut one_line = "if x: pass\n".to_string();
        for _ in 0..100 {
            one_line.push_str("elif x: pass\n");
        }
        assert!(
            depth(&one_line) >= 100,
            "an elif chain of one-line branches"
        );
        let mut separate = String::new();
        for _ in 0..100 {
            separate.push_str("if x:\n    pass\nelse:\n    pass\n");
        }
        assert!(
            depth(&separate) <= 6,
            "separate if statements do not add up"
        );
    }

    #[test]
    fn nesting_inside_a_bracket_counts_the_whole_enclosing_segment() {
        // `(x + ... + x) + ... + x`: the inner chain nests under the outer one.
        let inner = format!("({})", vec!["x"; 300].join(" + "));
        let outer = format!("y = {inner}{}\n", " + x".repeat(300));
        assert!(depth(&outer) >= 600);
    }

    #[test]
    fn real_schemas_score_far_below_the_bound() {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).expect("fixtures").flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "py") {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schemas"),
            &mut files,
        );
        assert!(files.len() > 30);
        let deepest = files
            .iter()
            .map(|f| {
                let code = std::fs::read_to_string(f).expect("example");
                (depth(&code.replace('\t', "        ")), f)
            })
            .max()
            .expect("examples");
        assert!(
            deepest.0 <= MAX_NESTING / 5,
            "{} scores {}",
            deepest.1.display(),
            deepest.0
        );
        assert!(depth(crate::schema::DEFAULT_STAGE_CODE) <= 30);
    }

    #[test]
    fn a_lexical_error_stops_the_scan() {
        let code = format!("x = $ {}", "(".repeat(10_000));
        assert!(check(&code, &dialect()).is_ok());
        let code = format!("x = {} $", "(".repeat(10_000));
        assert!(check(&code, &dialect()).is_err());
    }
}
