//! An incremental parser for server-sent events (only what the Kraken log
//! stream uses: `event`, `id`, `data` and comments).

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `event:` name (`message` when absent).
    pub event: String,
    /// `id:`, when given.
    pub id: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

/// Turns chunks of a stream into events.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    event: Option<String>,
    id: Option<String>,
    data: Option<String>,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Feed a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = self.buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    out.push(Event {
                        event: self.event.take().unwrap_or_else(|| "message".into()),
                        id: self.id.take(),
                        data,
                    });
                } else {
                    self.event = None;
                    self.id = None;
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "event" => self.event = Some(value.to_string()),
                "id" => self.id = Some(value.to_string()),
                "data" => match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => self.data = Some(value.to_string()),
                },
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_across_chunks() {
        let mut p = Parser::new();
        assert!(
            p.feed(b": keep-alive\n\nevent: state\ndata: {\"state\"")
                .is_empty()
        );
        let evs = p.feed(b": 3}\n\nevent: log\r\nid: 7\ndata: a\ndata: b\n\n");
        assert_eq!(
            evs,
            vec![
                Event {
                    event: "state".into(),
                    id: None,
                    data: "{\"state\": 3}".into()
                },
                Event {
                    event: "log".into(),
                    id: Some("7".into()),
                    data: "a\nb".into()
                },
            ]
        );
        assert_eq!(p.feed(b"data: x\n\n")[0].event, "message");
    }
}
