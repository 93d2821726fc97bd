//! A small W3C WebDriver client (JSON over HTTP/1.1) driving Debian's Chromium through
//! `chromedriver`, for the dashboard's browser test. Only what that test needs: a session,
//! navigation, elements (find, click, type, read), scripts, window size and screenshots.
//!
//! `chromedriver` runs as a child process on a free loopback port and is killed on drop. When
//! it is missing the test fails (it never skips): `scripts/ensure-chromium.sh` installs it.

use std::{
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The key W3C WebDriver names an element reference with.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long chromedriver may take to answer `/status` as ready.
const DRIVER_START: Duration = Duration::from_secs(30);
/// Bound of one WebDriver command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Finds a program on the `PATH`.
fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

/// A running `chromedriver`, killed on drop, after the sessions it opened are ended (their
/// browsers would outlive it otherwise, as after a failed assertion).
pub struct ChromeDriver {
    child: Child,
    addr: SocketAddr,
    sessions: std::sync::Mutex<Vec<String>>,
}

impl ChromeDriver {
    /// Starts `chromedriver` (`BERTY_CHROMEDRIVER`, else the one on the `PATH`) on a free port
    /// and waits until it is ready. Panics, failing the test, when it cannot be found.
    pub async fn start() -> Self {
        let program = std::env::var_os("BERTY_CHROMEDRIVER")
            .map(PathBuf::from)
            .or_else(|| find_program("chromedriver"))
            .unwrap_or_else(|| {
                panic!(
                    "chromedriver not found: this test needs Chromium and chromedriver \
                     (Debian: apt-get install chromium chromium-driver, or run \
                     scripts/ensure-chromium.sh); it never skips"
                )
            });
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&program)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let driver = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            sessions: std::sync::Mutex::default(),
        };
        let deadline = Instant::now() + DRIVER_START;
        loop {
            let poll = tokio::time::timeout(
                Duration::from_secs(2),
                http(driver.addr, "GET", "/status", None),
            );
            if let Ok(Ok((200, status))) = poll.await {
                if status["value"]["ready"] == json!(true) {
                    return driver;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready within {DRIVER_START:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new headless Chromium session.
    pub async fn session(&self) -> Session {
        let mut options = json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
                "--force-device-scale-factor=1",
                "--lang=en-US",
            ],
        });
        if let Some(binary) = std::env::var_os("BERTY_CHROMIUM")
            .map(PathBuf::from)
            .or_else(|| find_program("chromium"))
        {
            options["binary"] = json!(binary.to_string_lossy());
        }
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": options,
                }
            }
        });
        let value = command(self.addr, "POST", "/session", Some(capabilities)).await;
        let id = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {value}"))
            .to_owned();
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(id.clone());
        Session {
            addr: self.addr,
            id,
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let sessions = std::mem::take(
            self.sessions
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for id in sessions {
            end_session_blocking(self.addr, &id);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `DELETE /session/{id}` without a runtime (from `Drop`): the browser closes. An already
/// ended session answers an error, which is fine.
fn end_session_blocking(addr: SocketAddr, id: &str) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /session/{id} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        // Wait for the answer's first bytes: the browser is closed by then.
        let _ = stream.read(&mut [0u8; 256]);
    }
}

/// One browser session. End it with [`Session::quit`] (dropping the driver ends it too).
pub struct Session {
    addr: SocketAddr,
    id: String,
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Session {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        command(
            self.addr,
            method,
            &format!("/session/{}{path}", self.id),
            body,
        )
        .await
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// Sets the window's outer size.
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    /// The first element matching the CSS `selector` (panics when there is none).
    pub async fn find(&self, selector: &str) -> Element {
        let value = self
            .call(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": selector })),
            )
            .await;
        Element(
            value[ELEMENT_KEY]
                .as_str()
                .unwrap_or_else(|| panic!("no element {selector}: {value}"))
                .to_owned(),
        )
    }

    /// Clicks `element`.
    pub async fn click(&self, element: &Element) {
        self.call(
            "POST",
            &format!("/element/{}/click", element.0),
            Some(json!({})),
        )
        .await;
    }

    /// Clears `element` (an input), then types `text` into it.
    pub async fn type_into(&self, element: &Element, text: &str) {
        self.call(
            "POST",
            &format!("/element/{}/clear", element.0),
            Some(json!({})),
        )
        .await;
        self.call(
            "POST",
            &format!("/element/{}/value", element.0),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its result.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Polls `script` every 100 ms until it returns something other than `null` or `false`
    /// (then returns it), failing the test after `timeout` with `what`.
    pub async fn wait_for(&self, what: &str, timeout: Duration, script: &str) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.script(script, json!([])).await;
            if !value.is_null() && value != json!(false) {
                return value;
            }
            if Instant::now() >= deadline {
                let page = self
                    .script("return document.body.innerText", json!([]))
                    .await;
                panic!("timed out after {timeout:?} waiting for {what}; the page shows:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Makes the page see `prefers-color-scheme: dark` (or light), through the DevTools
    /// protocol command chromedriver passes on.
    pub async fn prefer_dark(&self, dark: bool) {
        let scheme = if dark { "dark" } else { "light" };
        self.call(
            "POST",
            "/goog/cdp/execute",
            Some(json!({
                "cmd": "Emulation.setEmulatedMedia",
                "params": { "features": [{ "name": "prefers-color-scheme", "value": scheme }] },
            })),
        )
        .await;
    }

    /// A PNG screenshot of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let value = self.call("GET", "/screenshot", None).await;
        STANDARD
            .decode(value.as_str().expect("base64 screenshot"))
            .expect("decode screenshot")
    }

    /// Ends the session (closes the browser).
    pub async fn quit(self) {
        command(self.addr, "DELETE", &format!("/session/{}", self.id), None).await;
    }
}

/// Sends one WebDriver command; returns its `value`, panicking on a WebDriver error.
async fn command(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, reply) = tokio::time::timeout(COMMAND_TIMEOUT, http(addr, method, path, body))
        .await
        .unwrap_or_else(|_| {
            panic!("WebDriver {method} {path}: no answer within {COMMAND_TIMEOUT:?}")
        })
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
    assert_eq!(
        status, 200,
        "WebDriver {method} {path} answered {status}: {reply}"
    );
    reply["value"].clone()
}

/// One HTTP/1.1 exchange with a JSON body each way. The body is read by its
/// `Content-Length` (or chunks): chromedriver answers `Connection: close` but may keep the
/// socket open.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(addr).await?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let (head, body_start) = loop {
        if let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            break (
                String::from_utf8_lossy(&response[..split]).to_string(),
                split + 4,
            );
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::other(
                "connection closed before the headers ended",
            ));
        }
        response.extend_from_slice(&buf[..n]);
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head}")))?;
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_ascii_lowercase())
        })
    };
    let mut payload = response.split_off(body_start);
    if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while payload.len() < length {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::Error::other("connection closed inside the body"));
            }
            payload.extend_from_slice(&buf[..n]);
        }
        payload.truncate(length);
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        while !payload.ends_with(b"0\r\n\r\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            payload.extend_from_slice(&buf[..n]);
        }
        payload = dechunk(&payload)?;
    } else {
        stream.read_to_end(&mut payload).await?;
    }
    let value = if payload.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&payload).map_err(std::io::Error::other)?
    };
    Ok((status, value))
}

/// Decodes a chunked body.
fn dechunk(mut body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| std::io::Error::other("bad chunk"))?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(std::io::Error::other)?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            return Err(std::io::Error::other("short chunk"));
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}
