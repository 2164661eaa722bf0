//! The "browser" of the interop suite: given the authorization URL a client
//! printed, it does what a person with a browser would: opens it, signs in on
//! Steward's login form (fields `username`, `password`, with the page's CSRF
//! token and cookies), approves on the consent page (`decision=approve`), and
//! finally follows Steward's redirect to the client's loopback `redirect_uri`,
//! which delivers the authorization response to the client's own listener.
//!
//! It validates nothing about the protocol — that is the clients' job — but it
//! records what it saw so the harness can insist that a "forms" run really went
//! through both forms and an "auto-approve" run through neither.

use anyhow::{Context, Result, bail};
use http::Method;
use std::collections::BTreeMap;
use url::Url;

use crate::http::{Response, send};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Steward must show the login form and the consent form.
    Forms,
    /// Steward runs with `[dev] auto_approve_user`: it must redirect at once.
    AutoApprove,
}

#[derive(Clone)]
pub struct Browser {
    pub issuer: Url,
    pub username: String,
    pub password: String,
    pub mode: Mode,
}

#[derive(Debug)]
pub struct Outcome {
    /// The redirect to the client, as delivered.
    pub callback: String,
}

impl Browser {
    /// Runs the whole front channel for one authorization request.
    pub async fn authorize(&self, start: &str) -> Result<Outcome> {
        let mut jar: BTreeMap<String, String> = BTreeMap::new();
        let mut url = Url::parse(start).with_context(|| format!("authorization URL {start:?}"))?;
        let mut form: Option<String> = None;
        let (mut saw_login, mut saw_consent) = (false, false);
        for _ in 0..12 {
            if !self.is_steward(&url) {
                bail!("asked to open {url}, which is not Steward's");
            }
            let mut headers = vec![];
            if !jar.is_empty() {
                let cookie = jar
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                headers.push(("cookie", cookie));
            }
            let response = match form.take() {
                Some(body) => {
                    headers.push(("content-type", "application/x-www-form-urlencoded".to_owned()));
                    headers.push(("origin", self.issuer.origin().ascii_serialization()));
                    send(Method::POST, &url, &headers, Some(body)).await?
                }
                None => send(Method::GET, &url, &headers, None).await?,
            };
            store_cookies(&mut jar, &response);
            match response.status {
                301 | 302 | 303 | 307 | 308 => {
                    let location = response.header("location").context("redirect without Location")?;
                    let next = url.join(location).context("bad Location")?;
                    if self.is_steward(&next) {
                        url = next;
                        continue;
                    }
                    self.check_mode(saw_login, saw_consent)?;
                    return self.deliver(next).await;
                }
                200 | 401 if response.body.contains("name=\"password\"") => {
                    if saw_login {
                        bail!("Steward refused the login: {}", page_text(&response.body));
                    }
                    saw_login = true;
                    let (action, mut fields) = parse_form(&response.body)?;
                    fields.push(("username".to_owned(), self.username.clone()));
                    fields.push(("password".to_owned(), self.password.clone()));
                    url = url.join(&action)?;
                    form = Some(encode(&fields));
                }
                200 if response.body.contains("name=\"decision\"") => {
                    if saw_consent {
                        bail!("Steward showed the consent page twice");
                    }
                    saw_consent = true;
                    let (action, mut fields) = parse_form(&response.body)?;
                    fields.push(("decision".to_owned(), "approve".to_owned()));
                    url = url.join(&action)?;
                    form = Some(encode(&fields));
                }
                status => bail!(
                    "Steward answered {status} at {}: {}",
                    url.path(),
                    page_text(&response.body)
                ),
            }
        }
        bail!("too many steps in the authorization front channel")
    }

    fn is_steward(&self, url: &Url) -> bool {
        url.origin() == self.issuer.origin()
    }

    fn check_mode(&self, saw_login: bool, saw_consent: bool) -> Result<()> {
        match self.mode {
            Mode::Forms if !(saw_login && saw_consent) => {
                bail!(
                    "expected the login and consent forms (login seen: {saw_login}, consent seen: {saw_consent})"
                )
            }
            Mode::AutoApprove if saw_login || saw_consent => {
                bail!("dev auto-approve was configured but Steward showed a form")
            }
            _ => Ok(()),
        }
    }

    /// The last hop: the browser lands on the client's loopback redirect URI.
    async fn deliver(&self, callback: Url) -> Result<Outcome> {
        let host_ok = matches!(callback.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if callback.scheme() != "http" || !host_ok {
            bail!("Steward redirected to {callback}, not to a loopback redirect URI");
        }
        // A client may print the URL a moment before its listener is up (the
        // conformance suite does); a person would retry, so retry briefly.
        let mut attempts = 0;
        let response = loop {
            match send(Method::GET, &callback, &[], None).await {
                Ok(r) => break r,
                Err(_) if attempts < 50 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => {
                    return Err(e.context(format!("delivering the authorization response to {callback}")));
                }
            }
        };
        if response.status >= 400 {
            bail!(
                "the client's callback answered {}: {}",
                response.status,
                page_text(&response.body)
            );
        }
        Ok(Outcome {
            callback: callback.to_string(),
        })
    }
}

fn store_cookies(jar: &mut BTreeMap<String, String>, response: &Response) {
    for value in response.headers.get_all(http::header::SET_COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        let mut parts = value.split(';');
        let Some((name, v)) = parts.next().and_then(|p| p.split_once('=')) else {
            continue;
        };
        let expired = parts.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
        if expired {
            jar.remove(name.trim());
        } else {
            jar.insert(name.trim().to_owned(), v.trim().to_owned());
        }
    }
}

/// The form's `action` and its hidden fields (CSRF token, replayed request).
fn parse_form(html: &str) -> Result<(String, Vec<(String, String)>)> {
    let form_start = html.find("<form").context("no form on the page")?;
    let form = &html[form_start..];
    let action = attr(form, "action").context("form without action")?;
    let mut fields = Vec::new();
    let mut rest = form;
    while let Some(i) = rest.find("<input") {
        let tag_end = rest[i..].find('>').map_or(rest.len(), |e| i + e);
        let tag = &rest[i..tag_end];
        if attr(tag, "type").as_deref() == Some("hidden")
            && let (Some(name), Some(value)) = (attr(tag, "name"), attr(tag, "value"))
        {
            fields.push((name, value));
        }
        rest = &rest[tag_end..];
    }
    if !fields.iter().any(|(k, _)| k == "csrf") {
        bail!("the form carries no CSRF token");
    }
    Ok((action, fields))
}

/// The value of `name="…"` inside a tag, HTML-unescaped.
fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// Named or numeric entities (Steward's pages write `&#38;`, `&#34;` …);
/// `&` last, so nothing is decoded twice.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&#60;", "<")
        .replace("&gt;", ">")
        .replace("&#62;", ">")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
        .replace("&#38;", "&")
}

fn encode(fields: &[(String, String)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        ser.append_pair(k, v);
    }
    ser.finish()
}

/// A page's text without tags, shortened, for error messages.
fn page_text(html: &str) -> String {
    let body = html.find("<main>").map_or(html, |i| &html[i..]);
    let mut out = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let text = out.split_whitespace().collect::<Vec<_>>().join(" ");
    unescape(&text.chars().take(400).collect::<String>())
}
