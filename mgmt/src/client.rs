//! The API client shared by `ferrovsctl` and the tests.
#![forbid(unsafe_code)]
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A blocking HTTP/1.1 client for the ferrovs API on loopback (no TLS, no redirects).
pub struct Client {
    host: String,
    token: Option<String>,
}

impl Client {
    /// `api` as `http://HOST:PORT` or `HOST:PORT`; `token` is sent on every request.
    pub fn new(api: &str, token: Option<String>) -> Client {
        Client {
            host: api
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            token,
        }
    }

    /// Sends a request; returns the status and the body text.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String), String> {
        let mut s = TcpStream::connect(&self.host).map_err(|e| {
            format!(
                "cannot reach ferrovs at {}: {e} (is the daemon running? see --api / FERROVS_API)",
                self.host
            )
        })?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&resp).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or("malformed HTTP response")?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or("malformed status line")?;
        Ok((status, body.to_owned()))
    }

    /// Sends a request and decodes the JSON answer; a 4xx/5xx is an error with the API's message.
    pub fn json(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let (status, text) = self.request(method, path, body)?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("bad JSON from ferrovs ({status}): {e}"))?;
        if status >= 400 {
            return Err(format!(
                "{} ({status})",
                v["error"].as_str().unwrap_or(&text)
            ));
        }
        Ok(v)
    }
}
