//! The HTTP edge shared by every provider: one blocking client per profile, answers read into
//! memory under a size cap, transport errors and statuses turned into [`Fault`]s, and the
//! server's retry hints (`retry-after-ms`, `retry-after` in seconds or as an HTTP date) read.

use std::time::{Duration, SystemTime};

use ureq::http::HeaderMap;

use super::{Fault, FaultKind};

/// The largest answer read from a provider (base64 inflates an image by a third).
const MAX_BODY_BYTES: u64 = 96 << 20;

/// How many redirects an image download may follow.
const MAX_DOWNLOAD_REDIRECTS: u32 = 3;

/// A provider's answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// A header's value as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the status is 2xx.
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON, or a fault that quotes its start.
    pub(crate) fn json(&self) -> Result<serde_json::Value, Fault> {
        serde_json::from_slice(&self.body).map_err(|_| {
            Fault::new(
                FaultKind::BadImage,
                format!(
                    "the answer (HTTP {}) is not the JSON expected: {}",
                    self.status,
                    snippet(&self.body)
                ),
            )
        })
    }

    /// The wait the server asks for, if any.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers, SystemTime::now())
    }

    /// The fault for a non-2xx answer, by status alone; providers refine it from the body.
    pub(crate) fn status_fault(&self, message: String) -> Fault {
        let kind = match self.status {
            408 | 409 | 425 | 500..=599 => FaultKind::Transient,
            429 => FaultKind::RateLimited,
            401 | 403 => FaultKind::Auth,
            _ => FaultKind::Invalid,
        };
        let mut fault = Fault::new(kind, format!("HTTP {}: {message}", self.status));
        if kind.retryable() {
            fault.retry_after = self.retry_after();
        }
        fault
    }
}

/// A blocking HTTP client for one profile.
pub(crate) struct Http {
    agent: ureq::Agent,
    timeout: Duration,
    /// The configured server, which decides which URLs from an answer may be followed.
    base_url: String,
}

impl Http {
    /// A client for a provider at `base_url`. Loopback addresses never go through a proxy, so
    /// that a proxy in the environment cannot capture a local server.
    pub(crate) fn new(base_url: &str, timeout: Duration) -> Http {
        let agent = |redirects: u32| -> ureq::Agent {
            let mut config = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(timeout))
                .max_redirects(redirects)
                .user_agent(concat!("mdbook-imagegen/", env!("CARGO_PKG_VERSION")));
            if is_loopback(base_url) {
                config = config.proxy(None);
            }
            // A provider reached over https never leads us to plain http, redirects included.
            if is_https(base_url) {
                config = config.https_only(true);
            }
            config.build().into()
        };
        Http {
            // Redirects are never followed by the client: `download` follows them itself, and
            // only to where it came from.
            agent: agent(0),
            timeout,
            base_url: base_url.to_owned(),
        }
    }

    /// Posts a JSON body.
    pub(crate) fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> Result<Reply, Fault> {
        let bytes = serde_json::to_vec(body).expect("a JSON value always serialises");
        self.post(url, headers, "application/json", bytes)
    }

    /// Posts a body of any type.
    pub(crate) fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Reply, Fault> {
        let mut request = self.agent.post(url).header("content-type", content_type);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send(&body[..])
            .map_err(|e| self.transport(url, e))?;
        self.read(url, response)
    }

    /// Gets a URL a provider returned for polling, with `headers`, waiting at most `within`
    /// (what is left of the profile's timeout). The caller checks the URL first
    /// ([`may_follow`], [`may_send_key`]).
    pub(crate) fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        within: Duration,
    ) -> Result<Reply, Fault> {
        let mut request = self
            .agent
            .get(url)
            .config()
            .timeout_global(Some(within.min(self.timeout).max(Duration::from_millis(1))))
            .build();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.call().map_err(|e| self.transport(url, e))?;
        self.read(url, response)
    }

    /// Downloads an image from a URL a provider returned, without any key: only over https, or
    /// from the configured server itself ([`may_follow`]); a redirect is followed (a few times)
    /// only to the same scheme, host and port as the URL it answers.
    pub(crate) fn download(&self, url: &str) -> Result<Vec<u8>, Fault> {
        if !may_follow(url, &self.base_url) {
            return Err(Fault::new(
                FaultKind::BadImage,
                format!(
                    "the image URL `{}` is neither https nor on the configured server; it is not downloaded",
                    shorten(url)
                ),
            ));
        }
        let mut url = url.to_owned();
        let mut redirects = 0;
        let reply = loop {
            let response = self
                .agent
                .get(&url)
                .call()
                .map_err(|e| self.transport(&url, e))?;
            let reply = self.read(&url, response)?;
            if !(300..400).contains(&reply.status) || reply.status == 304 {
                break reply;
            }
            let next = reply
                .header("location")
                .and_then(|location| same_origin_redirect(&url, location));
            match next {
                Some(next) if redirects < MAX_DOWNLOAD_REDIRECTS => {
                    redirects += 1;
                    url = next;
                }
                Some(_) => {
                    return Err(Fault::new(
                        FaultKind::BadImage,
                        format!("too many redirects from {}", host_of(&url)),
                    ));
                }
                None => {
                    return Err(Fault::new(
                        FaultKind::BadImage,
                        format!(
                            "downloading the image from `{}` was redirected away from its server; a redirect is followed only to the same scheme, host and port",
                            shorten(&url)
                        ),
                    ));
                }
            }
        };
        if !reply.is_success() {
            return Err(reply.status_fault(format!(
                "downloading the image from `{}` failed",
                shorten(&url)
            )));
        }
        Ok(reply.body)
    }

    /// Gets a file of lines (a batch's JSONL answers) from the configured server, streaming:
    /// `each` gets every non-empty line without its line end, and none is longer than
    /// `max_line` bytes (a longer one is a fault, and reading stops). Only as much of the file
    /// is in memory as one line. A non-2xx answer is read (capped) and handed back as a
    /// [`Reply`] for the provider to classify.
    pub(crate) fn get_lines(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        max_line: usize,
        each: &mut dyn FnMut(&[u8]) -> Result<(), Fault>,
    ) -> Result<Result<(), Reply>, Fault> {
        use std::io::BufRead as _;
        let mut request = self.agent.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.call().map_err(|e| self.transport(url, e))?;
        if !(200..300).contains(&response.status().as_u16()) {
            return self.read(url, response).map(Err);
        }
        let mut reader = std::io::BufReader::with_capacity(
            1 << 20,
            response
                .into_body()
                .into_with_config()
                .limit(u64::MAX)
                .reader(),
        );
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = std::io::Read::take(&mut reader, max_line as u64 + 2)
                .read_until(b'\n', &mut line)
                .map_err(|e| {
                    Fault::new(
                        FaultKind::Transient,
                        format!("reading from {} failed: {e}", host_of(url)),
                    )
                })?;
            if read == 0 {
                return Ok(Ok(()));
            }
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            if line.len() > max_line {
                return Err(Fault::new(
                    FaultKind::BadImage,
                    format!(
                        "a line from {} is longer than {} MB; nothing after it is read",
                        host_of(url),
                        max_line >> 20
                    ),
                ));
            }
            if !line.is_empty() {
                each(&line)?;
            }
        }
    }

    fn read(
        &self,
        url: &str,
        mut response: ureq::http::Response<ureq::Body>,
    ) -> Result<Reply, Fault> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(|e| self.transport(url, e))?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    fn transport(&self, url: &str, error: ureq::Error) -> Fault {
        let host = host_of(url);
        match error {
            ureq::Error::Timeout(_) => Fault::new(
                FaultKind::Transient,
                format!(
                    "no complete answer from {host} within {} (raise `timeout` for slow servers)",
                    humantime::format_duration(self.timeout)
                ),
            ),
            ureq::Error::BodyExceedsLimit(limit) => Fault::new(
                FaultKind::BadImage,
                format!("the answer from {host} is larger than {} MB", limit >> 20),
            ),
            ureq::Error::TooManyRedirects | ureq::Error::RedirectFailed => Fault::new(
                FaultKind::BadImage,
                format!("too many redirects from {host}"),
            ),
            ureq::Error::HostNotFound => Fault::new(
                FaultKind::Transient,
                format!("cannot resolve {host}; check `base-url` and the network"),
            ),
            ureq::Error::Io(e) => {
                Fault::new(FaultKind::Transient, format!("cannot reach {host}: {e}"))
            }
            ureq::Error::ConnectionFailed => {
                Fault::new(FaultKind::Transient, format!("cannot connect to {host}"))
            }
            other => Fault::new(
                FaultKind::Transient,
                format!("the request to {host} failed: {other}"),
            ),
        }
    }
}

fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// Where a URL leads, read by the same parser the HTTP client uses (`http::Uri`), so that what
/// is checked is what is connected to: the scheme, the host in lower case without a trailing
/// dot, and the port (the scheme's default when none is given). `None` for anything else: no
/// authority, credentials in it, a port that is not a number, a host with other characters
/// than letters, digits, dots and hyphens (or a bracketed IPv6 address).
#[derive(Debug, PartialEq, Eq)]
struct Target {
    https: bool,
    host: String,
    port: u16,
}

fn target(url: &str) -> Option<Target> {
    let uri: ureq::http::Uri = url.parse().ok()?;
    let https = match uri.scheme_str()?.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return None,
    };
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    // A colon after the host (outside an IPv6 address) must start a numeric port: the parser
    // reads `evil.com:.bfl.ai` as the host `evil.com` with no port.
    let after_host = authority
        .as_str()
        .rsplit_once(']')
        .map_or(authority.as_str(), |(_, rest)| rest);
    let port = match (after_host.contains(':'), authority.port_u16()) {
        (false, _) => {
            if https {
                443
            } else {
                80
            }
        }
        (true, Some(port)) => port,
        (true, None) => return None,
    };
    let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
    let plain = |h: &str| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    let bracketed = host.starts_with('[') && host.ends_with(']');
    (plain(&host) || bracketed).then_some(Target { https, host, port })
}

/// A `multipart/form-data` body: text fields and files, in order.
#[derive(Default)]
pub(crate) struct Form {
    parts: Vec<Part>,
}

/// One part of a form: its name, its file name and media type when it is a file, its bytes.
type Part = (String, Option<(String, &'static str)>, Vec<u8>);

impl Form {
    /// Adds a text field.
    pub(crate) fn field(&mut self, name: &str, value: &str) {
        self.parts
            .push((name.to_owned(), None, value.as_bytes().to_vec()));
    }

    /// Adds a file part with its file name and media type.
    pub(crate) fn file(
        &mut self,
        name: &str,
        file_name: &str,
        media_type: &'static str,
        bytes: &[u8],
    ) {
        self.parts.push((
            name.to_owned(),
            Some((file_name.to_owned(), media_type)),
            bytes.to_vec(),
        ));
    }

    /// The content type and the body, with a boundary that occurs in no part. Names and file
    /// names have `"`, CR and LF percent-encoded, as browsers send them.
    pub(crate) fn finish(self) -> (String, Vec<u8>) {
        let quoted = |text: &str| {
            text.replace('"', "%22")
                .replace('\r', "%0D")
                .replace('\n', "%0A")
        };
        let boundary = loop {
            let boundary = format!(
                "mdbook-imagegen-{:016x}{:016x}",
                fastrand::u64(..),
                fastrand::u64(..)
            );
            let needle = boundary.as_bytes();
            if !self
                .parts
                .iter()
                .any(|(_, _, value)| value.windows(needle.len()).any(|w| w == needle))
            {
                break boundary;
            }
        };
        let mut body = Vec::new();
        for (name, file, value) in &self.parts {
            let name = quoted(name);
            let head = match file {
                None => format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                ),
                Some((file_name, media_type)) => format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{}\"\r\nContent-Type: {media_type}\r\n\r\n",
                    quoted(file_name)
                ),
            };
            body.extend_from_slice(head.as_bytes());
            body.extend_from_slice(value);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={boundary}"), body)
    }
}

/// Whether a URL a provider returned (to poll, to download) may be followed: over https, or to
/// the configured server itself (a loopback server in tests, a local one in use). Never a URL
/// with credentials in it, or one the client would read otherwise than this check does.
pub(crate) fn may_follow(url: &str, base_url: &str) -> bool {
    let Some(to) = target(url) else {
        return false;
    };
    to.https || target(base_url).is_some_and(|base| base == to)
}

/// Whether a provider's key may be sent to a URL it returned: the configured host itself; or,
/// when the provider names its `site` (BFL answers from regional hosts such as
/// `api.eu2.bfl.ai`), over https a host under that site, provided the configured host is under
/// it too. Never an address given as an IP.
pub(crate) fn may_send_key(url: &str, base_url: &str, site: Option<&str>) -> bool {
    let (Some(to), Some(base)) = (target(url), target(base_url)) else {
        return false;
    };
    if !(to.https || to == base) {
        return false;
    }
    if to == base {
        return true;
    }
    let Some(site) = site else {
        return false;
    };
    let under = |host: &str| host == site || host.ends_with(&format!(".{site}"));
    let is_ip = |host: &str| host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok();
    to.https && base.https && !is_ip(&to.host) && under(&to.host) && under(&base.host)
}

/// Where a redirect from `from` to `location` leads, when that is the same scheme, host and port
/// (an absolute URL, or a path on the same server); `None` for anywhere else.
fn same_origin_redirect(from: &str, location: &str) -> Option<String> {
    let location = location.trim();
    let origin = host_of(from);
    let path_end = from.find(['?', '#']).unwrap_or(from.len());
    let has_scheme = location.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let next = if has_scheme {
        location.to_owned()
    } else if location.starts_with("//") || location.starts_with('\\') {
        return None;
    } else if location.starts_with('/') {
        format!("{origin}{location}")
    } else if location.starts_with('?') {
        format!("{}{location}", &from[..path_end])
    } else if location.is_empty() || location.starts_with('#') {
        // The same resource, query and all.
        from[..from.find('#').unwrap_or(from.len())].to_owned()
    } else {
        // Relative to the path of `from`.
        let dir_end = from[..path_end]
            .rfind('/')
            .filter(|at| *at >= origin.len())?;
        format!("{}/{location}", &from[..dir_end])
    };
    let (Some(a), Some(b)) = (target(from), target(&next)) else {
        return None;
    };
    (a == b).then_some(next)
}

/// The scheme, host and port of a URL, without any path, query or credentials.
fn host_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}")
}

fn is_loopback(url: &str) -> bool {
    let host = host_of(url);
    let host = host.split_once("://").map_or(host.as_str(), |(_, h)| h);
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost" || name == "::1" || name.starts_with("127.")
}

/// A URL without its query string (which may carry signatures), for messages.
pub(crate) fn shorten(url: &str) -> String {
    let base = url.split(['?', '#']).next().unwrap_or(url);
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
            format!("{scheme}://{rest}")
        }
        None => base.to_owned(),
    };
    base.chars().take(120).collect()
}

/// FastAPI's validation errors (`[{"loc": ["body", "width"], "msg": …}]`) as one line:
/// `body.width: …; …`.
pub(crate) fn validation_errors(items: &[serde_json::Value]) -> String {
    items
        .iter()
        .map(|item| {
            let at = item
                .get("loc")
                .and_then(serde_json::Value::as_array)
                .map(|loc| {
                    loc.iter()
                        .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(".")
                })
                .unwrap_or_default();
            let msg = item
                .get("msg")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            format!("{at}: {msg}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The texts of a JSON array, comma-separated (empty when there are none).
pub(crate) fn texts(value: Option<&serde_json::Value>) -> String {
    value
        .and_then(serde_json::Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(serde_json::Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// The start of a body, for messages: text as it is, anything else described by its size.
///
/// Only a generous first part is kept: the message is cut to its shown length later, after the
/// build's secrets are redacted from it (see `outside`), so a key near the cut is never split.
pub(crate) fn snippet(body: &[u8]) -> String {
    const KEPT_BYTES: usize = 16 << 10;
    let kept = &body[..body.len().min(KEPT_BYTES)];
    let text = match std::str::from_utf8(kept) {
        Ok(text) => text,
        // Cut inside a character: keep what is whole.
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&kept[..e.valid_up_to()]).expect("valid up to there")
        }
        Err(_) => return format!("{} bytes of binary data", body.len()),
    };
    if text.trim().is_empty() {
        "an empty body".to_owned()
    } else {
        text.to_owned()
    }
}

/// The wait a server asks for: `retry-after-ms`, then `retry-after` in seconds or as an HTTP
/// date. Zero, negative or unreadable values count as no hint; long ones are kept, and
/// `max-retry-wait` decides whether to wait that long.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let sane = |d: Duration| (d > Duration::ZERO).then_some(d);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms > 0.0
    {
        return sane(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = text("retry-after")?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds > 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(1e9)))
            .and_then(sane);
    }
    let at = http_date(value)?;
    at.duration_since(now).ok().and_then(sane)
}

/// Parses an HTTP date in its one current form, `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(text: &str) -> Option<SystemTime> {
    let mut parts = text.split_whitespace();
    let _weekday = parts.next()?;
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (clock.next()??, clock.next()??, clock.next()??);
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Parses a Go-style or protobuf duration such as `40s`, `1.5s` or `6m0s`.
pub(crate) fn go_duration(text: &str) -> Option<Duration> {
    let mut total = 0.0;
    let mut number = String::new();
    let mut chars = text.trim().chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0.001
            }
            'm' => 60.0,
            's' => 1.0,
            _ => return None,
        };
        total += number.parse::<f64>().ok()? * unit;
        number.clear();
        any = true;
    }
    (any && number.is_empty() && total > 0.0).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_followed_only_within_the_same_origin() {
        let from = "http://127.0.0.1:8080/images/a.png?sig=1";
        for (location, wanted) in [
            ("/x.png", Some("http://127.0.0.1:8080/x.png")),
            ("b.png", Some("http://127.0.0.1:8080/images/b.png")),
            ("?sig=2", Some("http://127.0.0.1:8080/images/a.png?sig=2")),
            (
                "/img?u=https://elsewhere.example/x",
                Some("http://127.0.0.1:8080/img?u=https://elsewhere.example/x"),
            ),
            (
                "http://127.0.0.1:8080/c.png",
                Some("http://127.0.0.1:8080/c.png"),
            ),
            ("http://127.0.0.1:9090/c.png", None),
            ("https://127.0.0.1:8080/c.png", None),
            ("//127.0.0.1:9090/c.png", None),
            ("\\\\evil/c.png", None),
            ("http://user@127.0.0.1:8080/c.png", None),
            ("file:///etc/passwd", None),
        ] {
            assert_eq!(
                same_origin_redirect(from, location).as_deref(),
                wanted,
                "{location}"
            );
        }
    }

    #[test]
    fn form_parts_cannot_break_out_of_their_headers() {
        let mut form = Form::default();
        form.field("a\"b\r\nX-Evil: 1", "value");
        form.file("image[]", "x\".png", "image/png", b"\x89PNG");
        let (content_type, body) = form.finish();
        let boundary = content_type.split("boundary=").nth(1).unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("name=\"a%22b%0D%0AX-Evil: 1\""), "{body}");
        assert!(body.contains("filename=\"x%22.png\""), "{body}");
        assert_eq!(body.matches(boundary).count(), 3);
        assert!(body.ends_with(&format!("--{boundary}--\r\n")));
    }

    #[test]
    fn urls_are_followed_and_keys_sent_only_where_safe() {
        let base = "https://api.bfl.ai/v1";
        assert!(may_follow("https://delivery-eu1.bfl.ai/x.png?sig=1", base));
        assert!(may_follow("HTTPS://delivery-eu1.bfl.ai/x.png", base));
        assert!(!may_follow("http://delivery.bfl.ai/x.png", base));
        assert!(!may_follow("https://user:pw@evil.example/x", base));
        let local = "http://127.0.0.1:8080/v1";
        assert!(may_follow("http://127.0.0.1:8080/get?id=1", local));
        assert!(!may_follow("http://127.0.0.1:9999/get", local));

        let site = Some("bfl.ai");
        let key = |url: &str, base: &str, site| may_send_key(url, base, site);
        assert!(key("https://api.bfl.ai/v1/get_result?id=1", base, site));
        assert!(key("https://api.us1.bfl.ai/v1/get_result?id=1", base, site));
        assert!(key("HTTPS://API.EU2.BFL.AI./v1/x", base, site));
        assert!(!key("https://api.us1.bfl.ai/v1/x", base, None));
        assert!(!key("https://evil.example/v1/get_result", base, site));
        assert!(!key("https://bfl.ai.evil.example/x", base, site));
        assert!(!key("https://evilbfl.ai/x", base, site));
        assert!(!key("http://api.us1.bfl.ai/x", base, site));
        assert!(!key("https://u:p@api.us1.bfl.ai/x", base, site));
        // The site is BFL's only when the configured host is BFL's.
        let proxy = "https://abc.execute-api.us-east-1.amazonaws.com/v1";
        assert!(!key(
            "https://def.execute-api.us-east-1.amazonaws.com/x",
            proxy,
            site
        ));
        assert!(!key("https://api.bfl.ai/x", proxy, site));
        assert!(!key(
            "https://10.168.1.10/x",
            "https://192.168.1.10/v1",
            site
        ));
        assert!(key("http://127.0.0.1:8080/poll", local, site));
        assert!(!key("https://other.example/poll", local, site));
        // What the client connects to is what is checked: a port that is not a number, an
        // authority with credentials, odd characters.
        for sneaky in [
            "https://evil.com:.bfl.ai/v1/get_result?id=1",
            "https://evil.com:1.bfl.ai/v1/x",
            "https://api.bfl.ai@evil.com/x",
            "https://evil.com#@api.bfl.ai",
            "https://evil.com?x=.bfl.ai",
            "https://evil.com\\.bfl.ai/x",
            "https://evil%2ecom.bfl.ai/x",
        ] {
            assert!(!key(sneaky, base, site), "{sneaky}");
        }
        assert!(!may_follow("https://evil.com:.bfl.ai/x", base));
        assert!(key("https://api.bfl.ai:443/v1/x", base, site));
        assert!(!key("https://api.bfl.ai:8443/v1/x", base, None));
    }

    #[test]
    fn reads_retry_hints() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777 - 10);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert("retry-after", "12".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(12)));
        headers.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(
            retry_after(&headers, now),
            Some(Duration::from_millis(1500))
        );
        headers.remove("retry-after-ms");
        headers.insert(
            "retry-after",
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(10)));
        headers.insert("retry-after", "0".parse().unwrap());
        assert_eq!(retry_after(&headers, now), None);
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn reads_go_and_protobuf_durations() {
        assert_eq!(go_duration("40s"), Some(Duration::from_secs(40)));
        assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(go_duration("12"), None);
        assert_eq!(go_duration("x"), None);
    }

    #[test]
    fn messages_never_show_credentials_or_queries() {
        assert_eq!(
            host_of("https://user:pw@api.example.com:8443/v1/x?key=1"),
            "https://api.example.com:8443"
        );
        assert_eq!(
            shorten("https://u:p@cdn.example.com/a.png?sig=secret"),
            "https://cdn.example.com/a.png"
        );
        assert!(is_loopback("http://127.0.0.1:7860"));
        assert!(is_loopback("http://localhost/v1"));
        assert!(is_loopback("http://[::1]:80/"));
        assert!(!is_loopback("https://api.openai.com/v1"));
    }
}
