//! Tool argument validation at the edge: each getter checks type and bounds and consumes the key;
//! `finish` refuses whatever is left, so an unknown argument is an error, never ignored.

use serde_json::{Map, Value};

use super::ToolError;

/// A tool's arguments, consumed key by key.
pub struct Args {
    map: Map<String, Value>,
}

fn type_error(name: &str, want: &str) -> ToolError {
    ToolError::invalid(format!("argument `{name}` must be {want}"))
}

impl Args {
    pub fn new(v: &Value) -> Result<Args, ToolError> {
        match v {
            Value::Object(m) => Ok(Args { map: m.clone() }),
            Value::Null => Ok(Args { map: Map::new() }),
            _ => Err(ToolError::invalid("arguments must be an object")),
        }
    }

    /// The arguments as they still are (before any are consumed, the whole call's arguments).
    pub fn snapshot(&self) -> Value {
        Value::Object(self.map.clone())
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name).filter(|v| !v.is_null())
    }

    /// A single-line string: at most `max` characters, no control characters.
    pub fn str_opt(&mut self, name: &str, max: usize) -> Result<Option<String>, ToolError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => {
                if s.chars().count() > max {
                    return Err(ToolError::invalid(format!("argument `{name}` is longer than {max} characters")));
                }
                if let Some(c) = s.chars().find(|c| c.is_control()) {
                    return Err(ToolError::invalid(format!(
                        "argument `{name}` contains a control character (U+{:04X}); CR, LF and NUL are never accepted",
                        c as u32
                    )));
                }
                Ok(Some(s))
            }
            Some(_) => Err(type_error(name, "a string")),
        }
    }

    /// A required single-line string.
    pub fn str_req(&mut self, name: &str, max: usize) -> Result<String, ToolError> {
        self.str_opt(name, max)?.ok_or_else(|| ToolError::invalid(format!("argument `{name}` is required")))
    }

    pub fn bool_opt(&mut self, name: &str) -> Result<Option<bool>, ToolError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(type_error(name, "true or false")),
        }
    }

    /// An integer within `min..=max`.
    pub fn u64_opt(&mut self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ToolError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
                _ => Err(ToolError::invalid(format!("argument `{name}` must be an integer from {min} to {max}"))),
            },
            Some(_) => Err(type_error(name, "an integer")),
        }
    }

    /// A nested object, as its own Args.
    pub fn object_opt(&mut self, name: &str) -> Result<Option<Args>, ToolError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Args { map: m })),
            Some(_) => Err(type_error(name, "an object")),
        }
    }

    /// A list of single-line strings: at most `max_items`, each at most `max_len` characters.
    pub fn str_list(&mut self, name: &str, max_items: usize, max_len: usize) -> Result<Option<Vec<String>>, ToolError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Array(items)) => {
                if items.len() > max_items {
                    return Err(ToolError::invalid(format!("argument `{name}` has more than {max_items} items")));
                }
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    let field = format!("{name}[{i}]");
                    let mut one = Args { map: Map::new() };
                    one.map.insert(field.clone(), item);
                    out.push(one.str_req(&field, max_len)?);
                }
                Ok(Some(out))
            }
            Some(_) => Err(type_error(name, "an array of strings")),
        }
    }

    /// Multi-line text (newlines and tabs allowed; other control characters refused).
    pub fn text_opt(&mut self, name: &str, max: usize) -> Result<Option<String>, ToolError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => {
                if s.chars().count() > max {
                    return Err(ToolError::invalid(format!("argument `{name}` is longer than {max} characters")));
                }
                if let Some(c) = s.chars().find(|&c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
                    return Err(ToolError::invalid(format!("argument `{name}` contains a control character (U+{:04X})", c as u32)));
                }
                Ok(Some(s.replace("\r\n", "\n").replace('\r', "\n")))
            }
            Some(_) => Err(type_error(name, "a string")),
        }
    }

    /// A list of objects, each as its own Args.
    pub fn object_list(&mut self, name: &str, max_items: usize) -> Result<Option<Vec<Args>>, ToolError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Array(items)) => {
                if items.len() > max_items {
                    return Err(ToolError::invalid(format!("argument `{name}` has more than {max_items} items")));
                }
                items
                    .into_iter()
                    .map(|v| match v {
                        Value::Object(m) => Ok(Args { map: m }),
                        _ => Err(type_error(name, "an array of objects")),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some)
            }
            Some(_) => Err(type_error(name, "an array of objects")),
        }
    }

    /// The raw value of an argument, consumed (for arguments validated elsewhere).
    pub fn raw(&mut self, name: &str) -> Option<Value> {
        self.take(name)
    }

    /// Refuses leftover (unknown) arguments.
    pub fn finish(self) -> Result<(), ToolError> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(k) => {
                let shown: String = k.chars().filter(|c| !c.is_control()).take(64).collect();
                Err(ToolError::invalid(format!("unknown argument `{shown}`")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn getters_validate_and_consume() {
        let mut a =
            Args::new(&json!({"s": "ok", "n": 5, "b": true, "nul": "a\u{0}b", "crlf": "x\r\ny", "long": "ééé", "extra": 1})).unwrap();
        assert_eq!(a.str_opt("s", 10).unwrap().as_deref(), Some("ok"));
        assert_eq!(a.u64_opt("n", 1, 10).unwrap(), Some(5));
        assert_eq!(a.bool_opt("b").unwrap(), Some(true));
        assert_eq!(
            a.str_opt("nul", 10).unwrap_err().message,
            "argument `nul` contains a control character (U+0000); CR, LF and NUL are never accepted"
        );
        assert_eq!(
            a.str_opt("crlf", 10).unwrap_err().message,
            "argument `crlf` contains a control character (U+000D); CR, LF and NUL are never accepted"
        );
        assert_eq!(a.str_opt("long", 2).unwrap_err().message, "argument `long` is longer than 2 characters");
        assert_eq!(a.str_opt("absent", 2).unwrap(), None);
        assert_eq!(a.finish().unwrap_err().message, "unknown argument `extra`");
    }

    #[test]
    fn ranges_and_types() {
        let mut a = Args::new(&json!({"n": 0, "m": "5", "o": [1]})).unwrap();
        assert_eq!(a.u64_opt("n", 1, 10).unwrap_err().message, "argument `n` must be an integer from 1 to 10");
        assert_eq!(a.u64_opt("m", 1, 10).unwrap_err().message, "argument `m` must be an integer");
        assert_eq!(a.object_opt("o").err().unwrap().message, "argument `o` must be an object");
        assert_eq!(Args::new(&json!([1])).err().unwrap().message, "arguments must be an object");
    }

    #[test]
    fn lists_and_text() {
        let mut a =
            Args::new(&json!({"l": ["a", "b"], "bad": ["a", "b\r\nc"], "many": [1, 2, 3], "t": "line1\r\nline2\ttab", "tb": "x\u{7}"}))
                .unwrap();
        assert_eq!(a.str_list("l", 5, 10).unwrap(), Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(
            a.str_list("bad", 5, 10).unwrap_err().message,
            "argument `bad[1]` contains a control character (U+000D); CR, LF and NUL are never accepted"
        );
        assert_eq!(a.str_list("many", 2, 10).unwrap_err().message, "argument `many` has more than 2 items");
        assert_eq!(a.text_opt("t", 100).unwrap().as_deref(), Some("line1\nline2\ttab"));
        assert_eq!(a.text_opt("tb", 100).unwrap_err().message, "argument `tb` contains a control character (U+0007)");
    }
}
