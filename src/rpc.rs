//! JSON-RPC 2.0 over stdio: bounded line framing, message classification, error codes, and the
//! writer thread, which is the only code that writes to stdout.

use std::io::{self, BufRead, Write};
use std::sync::mpsc;
use std::thread;

use serde_json::{json, Map, Value};

/// Invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid request object (or the line is too long).
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters (including an unknown tool name).
pub const INVALID_PARAMS: i64 = -32602;
/// Internal error (including a contained panic).
pub const INTERNAL_ERROR: i64 = -32603;
/// A legacy request arrived before `initialize`.
pub const NOT_INITIALIZED: i64 = -32002;
/// The server is at its queue limit.
pub const SERVER_BUSY: i64 = -32001;
/// A modern request names a protocol version we do not support.
pub const UNSUPPORTED_VERSION: i64 = -32022;

/// What reading one line produced.
#[derive(Debug, PartialEq, Eq)]
pub enum LineRead {
    /// A complete line is in the buffer (without its newline).
    Line,
    /// The line exceeded the limit; it was consumed and discarded, never buffered whole.
    TooLong,
    /// End of input.
    Eof,
}

/// Reads one `\n`-terminated line into `buf` (cleared first), holding at most `max` bytes.
/// A trailing `\r` is removed. A final line without a newline still counts as a line.
pub fn read_line_bounded(r: &mut impl BufRead, max: usize, buf: &mut Vec<u8>) -> io::Result<LineRead> {
    buf.clear();
    let mut too_long = false;
    let mut saw_any = false;
    loop {
        let available = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            if !saw_any {
                return Ok(LineRead::Eof);
            }
            break;
        }
        saw_any = true;
        let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i)),
            None => (available, None),
        };
        if !too_long {
            if buf.len() + chunk.len() > max {
                too_long = true;
                buf.clear();
                buf.shrink_to(64 * 1024);
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let used = found.map_or(chunk.len(), |i| i + 1);
        r.consume(used);
        if found.is_some() {
            break;
        }
    }
    if too_long {
        return Ok(LineRead::TooLong);
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(LineRead::Line)
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError { code, message: message.into(), data: None }
    }

    pub fn with_data(mut self, data: Value) -> RpcError {
        self.data = Some(data);
        self
    }

    fn to_value(&self) -> Value {
        let mut o = Map::new();
        o.insert("code".into(), json!(self.code));
        o.insert("message".into(), json!(self.message));
        if let Some(d) = &self.data {
            o.insert("data".into(), d.clone());
        }
        Value::Object(o)
    }
}

/// One message received from the client.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    /// A response to a request the server sent (elicitation).
    Response {
        id: Value,
        result: Option<Value>,
        error: Option<Value>,
    },
    /// Not a valid message; answer with this error (id is null when unknown).
    Invalid {
        id: Value,
        error: RpcError,
    },
}

fn valid_id(id: &Value) -> bool {
    match id {
        Value::String(_) => true,
        Value::Number(n) => n.is_i64() || n.is_u64(),
        _ => false,
    }
}

/// Classifies one line. Never panics; anything unusable becomes `Invalid`.
pub fn parse_line(line: &[u8]) -> Incoming {
    let v: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(_) => return Incoming::Invalid { id: Value::Null, error: RpcError::new(PARSE_ERROR, "parse error: not valid JSON") },
    };
    let Value::Object(mut o) = v else {
        let msg = if v.is_array() { "batches are not supported" } else { "not a JSON-RPC message object" };
        return Incoming::Invalid { id: Value::Null, error: RpcError::new(INVALID_REQUEST, msg) };
    };
    let id = o.remove("id");
    let id_for_error = id.clone().filter(valid_id).unwrap_or(Value::Null);
    if o.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Incoming::Invalid { id: id_for_error, error: RpcError::new(INVALID_REQUEST, "jsonrpc must be \"2.0\"") };
    }
    match o.remove("method") {
        Some(Value::String(method)) => {
            let params = o.remove("params").unwrap_or(Value::Null);
            if !(params.is_null() || params.is_object()) {
                return Incoming::Invalid { id: id_for_error, error: RpcError::new(INVALID_REQUEST, "params must be an object") };
            }
            match id {
                None => Incoming::Notification { method, params },
                Some(id) if valid_id(&id) => Incoming::Request { id, method, params },
                Some(_) => {
                    Incoming::Invalid { id: Value::Null, error: RpcError::new(INVALID_REQUEST, "id must be a string or an integer") }
                }
            }
        }
        Some(_) => Incoming::Invalid { id: id_for_error, error: RpcError::new(INVALID_REQUEST, "method must be a string") },
        None => match id {
            Some(id) if valid_id(&id) && (o.contains_key("result") || o.contains_key("error")) => {
                Incoming::Response { id, result: o.remove("result"), error: o.remove("error") }
            }
            _ => Incoming::Invalid { id: id_for_error, error: RpcError::new(INVALID_REQUEST, "missing method") },
        },
    }
}

/// A success response.
pub fn response(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// An error response.
pub fn error_response(id: &Value, error: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": error.to_value()})
}

/// A notification from the server.
pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// What the writer thread accepts.
pub enum Out {
    Message(Value),
    /// Flush and stop; sent once at shutdown.
    Shutdown,
}

/// A cheap handle for queueing messages to stdout.
#[derive(Clone)]
pub struct Outbox(mpsc::Sender<Out>);

impl Outbox {
    /// Queues one message; silently dropped after shutdown.
    pub fn send(&self, msg: Value) {
        let _ = self.0.send(Out::Message(msg));
    }

    /// Asks the writer to flush and stop.
    pub fn shutdown(&self) {
        let _ = self.0.send(Out::Shutdown);
    }
}

/// Starts the writer thread over `sink` (stdout in production).
pub fn spawn_writer<W: Write + Send + 'static>(mut sink: W) -> (Outbox, thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<Out>();
    let handle = thread::Builder::new()
        .name("mailmoat-writer".into())
        .spawn(move || {
            let mut line = Vec::with_capacity(4096);
            while let Ok(out) = rx.recv() {
                match out {
                    Out::Message(v) => {
                        line.clear();
                        // serde_json escapes control characters, so one message is one line.
                        if serde_json::to_writer(&mut line, &v).is_err() {
                            continue;
                        }
                        line.push(b'\n');
                        if sink.write_all(&line).and_then(|_| sink.flush()).is_err() {
                            // The client is gone; keep draining so senders never block.
                            continue;
                        }
                    }
                    Out::Shutdown => break,
                }
            }
            let _ = sink.flush();
        })
        .expect("spawning the writer thread");
    (Outbox(tx), handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<(LineRead, Vec<u8>)> {
        let mut r = io::BufReader::with_capacity(7, input);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            let got = read_line_bounded(&mut r, max, &mut buf).unwrap();
            if got == LineRead::Eof {
                break;
            }
            out.push((got, buf.clone()));
        }
        out
    }

    #[test]
    fn framing_bounds_and_recovers() {
        let input = b"short\r\n0123456789abcdefXYZ\nnext\nlast-no-newline";
        let got = lines(input, 16);
        assert_eq!(
            got,
            vec![
                (LineRead::Line, b"short".to_vec()),
                (LineRead::TooLong, vec![]),
                (LineRead::Line, b"next".to_vec()),
                (LineRead::Line, b"last-no-newline".to_vec()),
            ]
        );
        assert_eq!(lines(b"", 10), vec![]);
        assert_eq!(lines(b"\n", 10), vec![(LineRead::Line, vec![])]);
        assert_eq!(lines(b"exactly10!\n", 10), vec![(LineRead::Line, b"exactly10!".to_vec())]);
    }

    #[test]
    fn classification_table() {
        let cases: &[(&str, Incoming)] = &[
            ("{", Incoming::Invalid { id: Value::Null, error: RpcError::new(PARSE_ERROR, "parse error: not valid JSON") }),
            ("[1]", Incoming::Invalid { id: Value::Null, error: RpcError::new(INVALID_REQUEST, "batches are not supported") }),
            ("3", Incoming::Invalid { id: Value::Null, error: RpcError::new(INVALID_REQUEST, "not a JSON-RPC message object") }),
            (
                r#"{"jsonrpc":"1.0","id":4,"method":"ping"}"#,
                Incoming::Invalid { id: json!(4), error: RpcError::new(INVALID_REQUEST, "jsonrpc must be \"2.0\"") },
            ),
            (
                r#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#,
                Incoming::Request { id: json!("a"), method: "ping".into(), params: Value::Null },
            ),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                Incoming::Notification { method: "notifications/initialized".into(), params: Value::Null },
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
                Incoming::Invalid { id: Value::Null, error: RpcError::new(INVALID_REQUEST, "id must be a string or an integer") },
            ),
            (
                r#"{"jsonrpc":"2.0","id":2,"method":"x","params":[1]}"#,
                Incoming::Invalid { id: json!(2), error: RpcError::new(INVALID_REQUEST, "params must be an object") },
            ),
            (r#"{"jsonrpc":"2.0","id":7,"result":{}}"#, Incoming::Response { id: json!(7), result: Some(json!({})), error: None }),
            (r#"{"jsonrpc":"2.0","id":7}"#, Incoming::Invalid { id: json!(7), error: RpcError::new(INVALID_REQUEST, "missing method") }),
        ];
        for (line, want) in cases {
            assert_eq!(&parse_line(line.as_bytes()), want, "{line}");
        }
    }

    #[test]
    fn writer_emits_one_line_per_message() {
        #[derive(Clone, Default)]
        struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let (out, h) = spawn_writer(sink.clone());
        out.send(json!({"text": "a\nb\u{2028}c"}));
        out.send(response(&json!(1), json!({})));
        out.shutdown();
        h.join().unwrap();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "{\"text\":\"a\\nb\u{2028}c\"}\n{\"id\":1,\"jsonrpc\":\"2.0\",\"result\":{}}\n");
    }
}
