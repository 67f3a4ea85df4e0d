//! A small HTTP/1.1 server for the registry's clients: the request line,
//! headers, a Content-Length body (`Expect: 100-continue` answered), and
//! keep-alive; behind TLS and HTTP Basic when the broker has them. That is
//! all Schema Registry clients send, so no HTTP framework is pulled in.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use super::routes::{self, Query, Reply};
use super::{ApiError, CheckCredentials, Registry};

/// The request line and headers together.
const HEAD_LIMIT: usize = 64 * 1024;
/// A request body (a schema, with its JSON around it).
const BODY_LIMIT: usize = 16 << 20;
/// A kept-alive connection with no new request is closed after this.
const IDLE: Duration = Duration::from_secs(60);
/// A request's body, once its head arrived, must arrive within this.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Serves the registry on `listener` until the runtime stops.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    tls: Option<TlsAcceptor>,
    credentials: Option<CheckCredentials>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let registry = registry.clone();
        let credentials = credentials.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(stream, &registry, credentials.as_ref()).await,
                Some(tls) => {
                    // A failed handshake is the client's to report.
                    if let Ok(Ok(stream)) = timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await
                    {
                        connection(stream, &registry, credentials.as_ref()).await;
                    }
                }
            }
        });
    }
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    http_1_0: bool,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn keep_alive(&self) -> bool {
        let connection = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if self.http_1_0 {
            connection.contains("keep-alive")
        } else {
            !connection.contains("close")
        }
    }
}

/// Reads up to the blank line ending a request's head; None at a clean end
/// of the connection.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut BufReader<S>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let room = (HEAD_LIMIT + 2).saturating_sub(head.len()) as u64;
        let start = head.len();
        let read = (&mut *stream)
            .take(room)
            .read_until(b'\n', &mut head)
            .await?;
        if read == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        if head.len() > HEAD_LIMIT {
            return Err(std::io::Error::other("request head too large"));
        }
        let line = &head[start..];
        if line == b"\r\n" || line == b"\n" {
            if start == 0 {
                // Blank lines before a request are allowed (RFC 9112 2.2).
                head.clear();
                continue;
            }
            return Ok(Some(head));
        }
    }
}

fn parse_head(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.lines();
    let mut request_line = lines.next()?.split(' ');
    let (method, target, version) = (
        request_line.next()?,
        request_line.next()?,
        request_line.next()?,
    );
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Request {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
        http_1_0: version == "HTTP/1.0",
    })
}

fn error_reply(e: &ApiError) -> Reply {
    Reply {
        status: e.status,
        body: e.body(),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

/// The response's content type: Confluent's, unless the client asked for
/// plain JSON only.
fn content_type(accept: Option<&str>) -> &'static str {
    match accept {
        Some(a)
            if !a.contains("vnd.schemaregistry")
                && !a.contains("*/*")
                && a.contains("application/json") =>
        {
            "application/json"
        }
        _ => CONTENT_TYPE,
    }
}

async fn write_reply<S: AsyncWrite + Unpin>(
    stream: &mut S,
    reply: &Reply,
    content_type: &str,
    keep_alive: bool,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len()
    );
    if reply.status == 401 {
        head.push_str("WWW-Authenticate: Basic realm=\"tskafka schema registry\"\r\n");
    }
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(reply.body.as_bytes());
    stream.write_all(&out).await?;
    stream.flush().await
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    registry: &Registry,
    credentials: Option<&CheckCredentials>,
) {
    let mut stream = BufReader::new(stream);
    loop {
        let head = match timeout(IDLE, read_head(&mut stream)).await {
            Ok(Ok(Some(head))) => head,
            _ => return,
        };
        let Some(request) = parse_head(&head) else {
            let bad = ApiError::new(400, 400, "malformed HTTP request".into());
            let _ = write_reply(stream.get_mut(), &error_reply(&bad), CONTENT_TYPE, false).await;
            return;
        };
        let content_type = content_type(request.header("accept"));
        let refuse = |status: u16, message: &str| {
            error_reply(&ApiError::new(status, status as i32, message.into()))
        };
        if request.header("transfer-encoding").is_some() {
            let reply = refuse(411, "send the body with a Content-Length");
            let _ = write_reply(stream.get_mut(), &reply, content_type, false).await;
            return;
        }
        let length = match request.header("content-length").map(str::parse::<usize>) {
            None => 0,
            Some(Ok(n)) if n <= BODY_LIMIT => n,
            Some(Ok(_)) => {
                let reply = refuse(413, "the request body is larger than 16 MiB");
                let _ = write_reply(stream.get_mut(), &reply, content_type, false).await;
                return;
            }
            Some(Err(_)) => {
                let reply = refuse(400, "Content-Length is not a number");
                let _ = write_reply(stream.get_mut(), &reply, content_type, false).await;
                return;
            }
        };
        if length > 0
            && request
                .header("expect")
                .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
            && stream
                .get_mut()
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return;
        }
        let mut body = vec![0; length];
        match timeout(BODY_TIMEOUT, stream.read_exact(&mut body)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let keep_alive = request.keep_alive();
        let reply = answer(registry, credentials, &request, &body);
        if write_reply(stream.get_mut(), &reply, content_type, keep_alive)
            .await
            .is_err()
            || !keep_alive
        {
            return;
        }
    }
}

fn answer(
    registry: &Registry,
    credentials: Option<&CheckCredentials>,
    request: &Request,
    body: &[u8],
) -> Reply {
    if let Some(check) = credentials {
        let given = request.header("authorization").and_then(basic_credentials);
        let allowed = given.is_some_and(|(user, password)| check(&user, &password));
        if !allowed {
            return error_reply(&ApiError::new(401, 401, "Unauthorized".into()));
        }
    }
    if !body.is_empty() {
        let media = request.header("content-type").unwrap_or("");
        let media = media
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let accepted = [
            "",
            "application/vnd.schemaregistry.v1+json",
            "application/vnd.schemaregistry+json",
            "application/json",
            "application/octet-stream",
        ];
        if !accepted.contains(&media.as_str()) {
            return error_reply(&ApiError::new(
                415,
                415,
                format!(
                    "HTTP 415 Unsupported Media Type: send {CONTENT_TYPE} or application/json, \
                     not {media}"
                ),
            ));
        }
    }
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((request.target.as_str(), ""));
    routes::route(registry, &request.method, path, &Query::parse(query), body)
        .unwrap_or_else(|e| error_reply(&e))
}

/// The user and password of an `Authorization: Basic ...` header.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let digits = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_decoded() {
        // "alice:s3cr:et" (a password may hold a colon)
        assert_eq!(
            basic_credentials("Basic YWxpY2U6czNjcjpldA=="),
            Some(("alice".into(), "s3cr:et".into()))
        );
        assert_eq!(base64_decode("YQ").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert_eq!(basic_credentials("Bearer abc"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
    }

    #[test]
    fn heads_are_parsed() {
        let r = parse_head(b"POST /subjects/x/versions?normalize=False HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: close\r\n\r\n").unwrap();
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("POST", "/subjects/x/versions?normalize=False")
        );
        assert_eq!(r.header("content-length"), Some("2"));
        assert!(!r.keep_alive());
        assert!(parse_head(b"GARBAGE\r\n\r\n").is_none());
        assert_eq!(content_type(Some("application/json")), "application/json");
        assert_eq!(
            content_type(Some(
                "application/vnd.schemaregistry.v1+json, application/json"
            )),
            CONTENT_TYPE
        );
    }
}
