//! Python's `str()` and `repr()` of JSON values.
//!
//! The original renders substituted values and validation messages with
//! Python: `True`/`False`/`None`, `{'bbb': 234}`, `['a', 1]`, `1.0`, `1e+16`.
//! These functions reproduce that text from a [`serde_json::Value`].

use serde_json::Value;

/// Python `str(v)`: strings as they are, everything else as `repr`.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        _ => py_repr(v),
    }
}

/// Python `repr(v)` of the value Python's `json.loads` would produce.
pub fn py_repr(v: &Value) -> String {
    let mut out = String::new();
    write_repr(v, &mut out);
    out
}

/// What is left to write, innermost last: written without recursion, so
/// that no JSON value, however deep, can overflow the stack.
enum Work<'a> {
    Value(&'a Value),
    Text(&'static str),
    Key(&'a str),
}

fn write_repr(v: &Value, out: &mut String) {
    let mut work = vec![Work::Value(v)];
    while let Some(w) = work.pop() {
        match w {
            Work::Text(t) => out.push_str(t),
            Work::Key(k) => {
                out.push_str(&py_repr_str(k));
                out.push_str(": ");
            }
            Work::Value(Value::Null) => out.push_str("None"),
            Work::Value(Value::Bool(true)) => out.push_str("True"),
            Work::Value(Value::Bool(false)) => out.push_str("False"),
            Work::Value(Value::Number(n)) => {
                if let Some(i) = n.as_i64() {
                    out.push_str(&i.to_string());
                } else if let Some(u) = n.as_u64() {
                    out.push_str(&u.to_string());
                } else {
                    out.push_str(&py_float_repr(n.as_f64().unwrap_or(f64::NAN)));
                }
            }
            Work::Value(Value::String(s)) => out.push_str(&py_repr_str(s)),
            Work::Value(Value::Array(a)) => {
                out.push('[');
                work.push(Work::Text("]"));
                for (i, x) in a.iter().enumerate().rev() {
                    work.push(Work::Value(x));
                    if i > 0 {
                        work.push(Work::Text(", "));
                    }
                }
            }
            Work::Value(Value::Object(m)) => {
                out.push('{');
                work.push(Work::Text("}"));
                for (i, (k, x)) in m.iter().enumerate().rev() {
                    work.push(Work::Value(x));
                    work.push(Work::Key(k));
                    if i > 0 {
                        work.push(Work::Text(", "));
                    }
                }
            }
        }
    }
}

/// Python `repr()` of a string: single quotes unless the text contains a
/// single quote and no double quote; backslash escapes for `\\`, the quote,
/// `\n`, `\r`, `\t` and other unprintable characters.
pub fn py_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !is_printable(c) => {
                let code = c as u32;
                if code <= 0xff {
                    out.push_str(&format!("\\x{code:02x}"));
                } else if code <= 0xffff {
                    out.push_str(&format!("\\u{code:04x}"));
                } else {
                    out.push_str(&format!("\\U{code:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// An approximation of Python's `str.isprintable()` for one character:
/// control characters, separators other than the space, and the common
/// invisible format characters are not printable.
fn is_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e000}'..='\u{f8ff}'
    )
}

/// Python `repr()` of a float: the shortest text that reads back to the
/// same number, in positional notation for exponents -4..16 (`1.0`,
/// `0.0001`, `1234.5`) and scientific otherwise (`1e-05`, `1.5e+16`).
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. `-1.2345e16`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = usize::try_from(exp).unwrap_or(0) + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.push_str(&"0".repeat(int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.push_str(&"0".repeat(usize::try_from(-exp - 1).unwrap_or(0)));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_render_like_python_str() {
        assert_eq!(py_str(&json!(true)), "True");
        assert_eq!(py_str(&json!(false)), "False");
        assert_eq!(py_str(&json!(null)), "None");
        assert_eq!(py_str(&json!(123)), "123");
        assert_eq!(py_str(&json!(-7)), "-7");
        assert_eq!(py_str(&json!(u64::MAX)), "18446744073709551615");
        assert_eq!(py_str(&json!("plain text")), "plain text");
    }

    #[test]
    fn containers_render_like_python_repr() {
        assert_eq!(py_str(&json!({"bbb": 234})), "{'bbb': 234}");
        assert_eq!(py_str(&json!(["a", 1])), "['a', 1]");
        assert_eq!(
            py_str(&json!({"z": [true, null, 1.5], "a": {"k": "v"}})),
            "{'z': [True, None, 1.5], 'a': {'k': 'v'}}",
            "keys keep their insertion order"
        );
        assert_eq!(py_str(&json!([])), "[]");
        assert_eq!(py_str(&json!({})), "{}");
    }

    #[test]
    fn deep_values_render_without_recursion() {
        let depth = 200_000;
        let mut v = json!(1);
        for _ in 0..depth {
            v = Value::Array(vec![v]);
        }
        let text = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let text = py_repr(&v);
                // serde_json drops nested values recursively: take it apart here.
                let mut v = v;
                while let Value::Array(mut items) = v {
                    v = items.pop().unwrap_or(Value::Null);
                }
                text
            })
            .expect("thread")
            .join()
            .expect("py_repr of a deep value on a small stack");
        assert_eq!(text, format!("{}1{}", "[".repeat(depth), "]".repeat(depth)));
    }

    #[test]
    fn strings_quote_like_python() {
        assert_eq!(py_repr_str("abc"), "'abc'");
        assert_eq!(py_repr_str("it's"), "\"it's\"");
        assert_eq!(py_repr_str("say \"hi\" it's"), "'say \"hi\" it\\'s'");
        assert_eq!(py_repr_str("a\nb\tc\\d"), "'a\\nb\\tc\\\\d'");
        assert_eq!(py_repr_str("\u{1}\u{7f}"), "'\\x01\\x7f'");
        assert_eq!(py_repr_str("zażółć ✓"), "'zażółć ✓'");
        assert_eq!(py_repr_str("\u{a0}\u{200b}"), "'\\xa0\\u200b'");
    }

    #[test]
    fn floats_render_like_python_repr() {
        let cases = [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (-2.25, "-2.25"),
            (0.1, "0.1"),
            (1234.5, "1234.5"),
            (100.0, "100.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345e16, "1.2345e+16"),
            (1e100, "1e+100"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0 / 3.0, "0.3333333333333333"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "nan"),
        ];
        for (f, want) in cases {
            assert_eq!(py_float_repr(f), want, "repr({f})");
        }
        assert_eq!(py_str(&json!(1.0)), "1.0");
        assert_eq!(py_str(&json!([1.0, 2])), "[1.0, 2]");
    }
}
