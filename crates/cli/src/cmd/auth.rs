//! `rivulet auth hubspot`: HubSpot's OAuth authorization-code flow from a terminal, ending in a
//! refresh token stored in a file only its owner can read.
//!
//! ```sh
//! export HUBSPOT_CLIENT_SECRET=…            # the app's client secret: only ever read from here
//! rivulet auth hubspot --client-id 1234abcd --scopes oauth,crm.objects.contacts.read
//! ```
//!
//! 1. It prints the URL where a person grants the app access (HubSpot's authorize page with the
//!    client id, the scopes, the redirect URI `http://localhost:PORT/callback` and a random
//!    `state`), and opens no browser itself.
//! 2. It listens on 127.0.0.1:PORT (and `[::1]:PORT` when it can) for HubSpot's redirect to
//!    `/callback`. A redirect whose `state` is not this run's is refused (a 400 page, exit 1,
//!    nothing exchanged): it did not come from the authorization this run started.
//! 3. It trades the code for tokens at the token endpoint (once: a code works once), writes the
//!    refresh token to `--out` (created with mode 0600; an existing file is refused unless
//!    `--force`, which replaces it atomically), and checks the stored token works by getting an
//!    access token with it and reading what it may do.
//! 4. It prints the `oauth:` block for connections.yaml and how to hand the runner the token.
//!
//! The client secret comes only from the environment variable `--client-secret-env` names;
//! neither it, nor the code, nor any token is ever printed (they are registered with the secret
//! scrubber the moment they are read).
//!
//! Exit codes: 0 the refresh token is stored and works; 1 the authorization failed (refused or
//! denied in the browser, a `state` mismatch, the code exchange refused, no redirect within
//! `--timeout`, or the stored token does not work); 2 usage or I/O error (the secret's variable
//! is unset, `--out` exists, the port is taken, the file cannot be written).

use crate::cmd::check::{Marks, Status};
use anyhow::{Context as _, bail};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use rivulet_hubspot::{
    Auth, Client, ClientConfig, DEFAULT_AUTHORIZE_URL, DEFAULT_BASE_URL, ExposeSecret, OAuthApp,
    SecretString, TokenGrant,
};
use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The scopes asked for unless `--scopes` says otherwise: what the default flows and
/// `rivulet check` need.
const DEFAULT_SCOPES: &str = "oauth,crm.objects.companies.read,crm.objects.companies.write,crm.objects.contacts.read,crm.objects.contacts.write,crm.schemas.companies.read,crm.schemas.contacts.read";

/// Arguments of `rivulet auth`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    provider: Provider,
}

#[derive(Debug, clap::Subcommand)]
enum Provider {
    /// Authorize a HubSpot OAuth app for an account and store its refresh token (0600).
    #[command(
        after_help = "Examples:\n  export HUBSPOT_CLIENT_SECRET=…\n  rivulet auth hubspot --client-id 1234abcd\n  rivulet auth hubspot --client-id 1234abcd --port 3000 --out secrets/hs-token\n\nRegister http://localhost:PORT/callback (default port 8976) as a redirect URL of the app first.\nThe client secret is read from the environment only, and never printed; nor are the code and tokens.\n\nExit codes: 0 the refresh token is stored and works, 1 the authorization failed (denied, state mismatch, code refused, timed out, the token does not work), 2 usage or I/O error (secret variable unset, --out exists, port taken)."
    )]
    Hubspot(HubSpotArgs),
}

/// Arguments of `rivulet auth hubspot`.
#[derive(Debug, clap::Args)]
pub struct HubSpotArgs {
    /// The app's client id (from the app's Auth settings in HubSpot).
    #[arg(long, value_name = "ID")]
    client_id: String,
    /// The environment variable holding the app's client secret.
    #[arg(long, value_name = "VAR", default_value = "HUBSPOT_CLIENT_SECRET")]
    client_secret_env: String,
    /// The scopes to ask for, comma-separated.
    #[arg(long, value_name = "SCOPE,…", value_delimiter = ',', default_value = DEFAULT_SCOPES)]
    scopes: Vec<String>,
    /// The local port HubSpot redirects the browser to (`http://localhost:PORT/callback`, which
    /// must be a redirect URL of the app); 0 picks a free one.
    #[arg(long, default_value_t = 8976)]
    port: u16,
    /// Where to store the refresh token (created with mode 0600).
    #[arg(long, value_name = "FILE", default_value = "hubspot-refresh-token")]
    out: PathBuf,
    /// Replace `--out` if it exists.
    #[arg(long)]
    force: bool,
    /// HubSpot's API base URL; the token endpoint is `{base}/oauth/v1/token`.
    #[arg(long, value_name = "URL", default_value = DEFAULT_BASE_URL)]
    base_url: String,
    /// HubSpot's authorize page.
    #[arg(long, value_name = "URL", default_value = DEFAULT_AUTHORIZE_URL)]
    authorize_url: String,
    /// How long to wait for the browser to come back.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    rivulet_spec::model::Duration::parse(s).map(|d| d.get())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.provider {
        Provider::Hubspot(args) => hubspot(args),
    }
}

// ---------------------------------------------------------------------------------------------
// The redirect listener

/// What the browser brought back to `/callback`.
enum Redirect {
    /// A code, with this run's state; the page shown waits for `reply`.
    Code {
        code: SecretString,
        reply: oneshot::Sender<Page>,
    },
    /// The person (or HubSpot) refused: `error`, `error_description`.
    Denied(String),
    /// The state did not match this run's (or was missing).
    StateMismatch,
    /// No code and no error.
    Malformed,
}

/// The page the browser gets.
struct Page {
    status: StatusCode,
    title: &'static str,
    text: String,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let escape = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Rivulet: {title}</title></head><body><h1>{title}</h1><p>{text}</p></body></html>",
            title = escape(self.title),
            text = escape(&self.text)
        );
        (self.status, Html(body)).into_response()
    }
}

struct Listener {
    /// This run's `state`.
    state: String,
    /// Where redirects go; taken by the first one that counts.
    tx: parking_lot::Mutex<Option<mpsc::Sender<Redirect>>>,
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn callback(
    State(l): State<Arc<Listener>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(tx) = l.tx.lock().take() else {
        return Page {
            status: StatusCode::GONE,
            title: "This authorization is over",
            text: "Run `rivulet auth hubspot` again to start a new one.".into(),
        }
        .into_response();
    };
    if !q.get("state").is_some_and(|s| same(s, &l.state)) {
        let _ = tx.send(Redirect::StateMismatch).await;
        return Page {
            status: StatusCode::BAD_REQUEST,
            title: "Refused: the state does not match",
            text: "This redirect does not belong to the authorization `rivulet auth hubspot` started (an old tab, or a link from elsewhere). Nothing was exchanged. Run the command again and use the URL it prints.".into(),
        }
        .into_response();
    }
    if let Some(code) = q.get("code").filter(|c| !c.is_empty()) {
        rivulet_http::secrets::register(code);
        let (reply, page) = oneshot::channel();
        let code = SecretString::from(code.clone());
        if tx.send(Redirect::Code { code, reply }).await.is_err() {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        return match page.await {
            Ok(page) => page.into_response(),
            Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        };
    }
    if let Some(error) = q.get("error") {
        let description = q
            .get("error_description")
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        let said = format!("{error}{description}");
        let _ = tx.send(Redirect::Denied(said.clone())).await;
        return Page {
            status: StatusCode::BAD_REQUEST,
            title: "Not authorized",
            text: format!("HubSpot said {said}. Nothing was stored."),
        }
        .into_response();
    }
    let _ = tx.send(Redirect::Malformed).await;
    Page {
        status: StatusCode::BAD_REQUEST,
        title: "No code",
        text: "The redirect carried neither a code nor an error. Nothing was stored.".into(),
    }
    .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

/// Binds 127.0.0.1:`port` (and `[::1]` on the same port when it can, since `localhost` may
/// resolve to either) and serves the redirect listener until `stop` fires.
async fn listen(
    port: u16,
    listener: Arc<Listener>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(u16, Vec<tokio::task::JoinHandle<()>>)> {
    let v4 = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| {
            format!("cannot listen on 127.0.0.1:{port} for the redirect (pass another --port, and register http://localhost:PORT/callback with the app)")
        })?;
    let port = v4.local_addr()?.port();
    let v6 = tokio::net::TcpListener::bind(("::1", port)).await.ok();
    let app = axum::Router::new()
        .route("/callback", axum::routing::get(callback))
        .fallback(not_found)
        .with_state(listener);
    let mut servers = Vec::new();
    for socket in std::iter::once(v4).chain(v6) {
        let app = app.clone();
        let mut stop = stop.clone();
        servers.push(tokio::spawn(async move {
            let _ = axum::serve(socket, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        }));
    }
    Ok((port, servers))
}

// ---------------------------------------------------------------------------------------------
// The refresh-token file

/// Writes `secret` to `path`, created with mode 0600. Without `force` an existing path is
/// refused (and nothing that exists is written through); with it, the new file replaces the
/// old one atomically (a temporary file beside it, renamed over it).
fn store_secret(path: &Path, secret: &str, force: bool) -> anyhow::Result<()> {
    use std::fs::OpenOptions;
    let create = |p: &Path| {
        let mut o = OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        o.open(p)
    };
    let write = |file: &mut std::fs::File| -> std::io::Result<()> {
        file.write_all(secret.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    };
    if !force {
        let mut file = create(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::anyhow!(
                    "{} exists: pass --force to replace it, or --out another file",
                    path.display()
                )
            } else {
                anyhow::Error::new(e).context(format!("creating {}", path.display()))
            }
        })?;
        return write(&mut file).with_context(|| format!("writing {}", path.display()));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "refresh-token".into());
    let temp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let mut file = create(&temp).with_context(|| format!("creating {}", temp.display()))?;
    let done = write(&mut file).and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = done {
        let _ = std::fs::remove_file(&temp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The command

fn random_state() -> String {
    format!(
        "{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    )
}

fn hubspot(args: HubSpotArgs) -> anyhow::Result<ExitCode> {
    // Usage first: nothing is started when the command cannot finish.
    let var = args.client_secret_env.trim();
    if var.is_empty() {
        bail!("--client-secret-env names no variable");
    }
    let secret = match std::env::var(var) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
        Ok(_) | Err(std::env::VarError::NotPresent) => bail!(
            "the environment variable {var} holds no client secret: `export {var}=…` (the app's client secret, from its Auth settings in HubSpot), or name another with --client-secret-env"
        ),
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("the environment variable {var} is not valid UTF-8")
        }
    };
    rivulet_http::secrets::register(&secret);
    let secret = SecretString::from(secret);
    let client_id = args.client_id.trim().to_string();
    if client_id.is_empty() {
        bail!("--client-id is empty: give the app's client id");
    }
    let scopes: Vec<String> = args
        .scopes
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if scopes.is_empty() {
        bail!(
            "--scopes names none: give at least one, e.g. --scopes oauth,crm.objects.contacts.read"
        );
    }
    let base = args.base_url.trim_end_matches('/').to_string();
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        bail!("--base-url must be an http(s) URL, not `{base}`");
    }
    if std::fs::symlink_metadata(&args.out).is_ok() && !args.force {
        bail!(
            "{} exists: pass --force to replace it, or --out another file",
            args.out.display()
        );
    }
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        bail!(
            "the folder of --out, {}, does not exist: create it first",
            parent.display()
        );
    }
    let runtime = super::state::runtime()?;
    runtime.block_on(authorize(Setup {
        args,
        client_id,
        secret,
        scopes,
        base,
    }))
}

/// What the authorization runs with, checked.
struct Setup {
    args: HubSpotArgs,
    client_id: String,
    secret: SecretString,
    scopes: Vec<String>,
    /// The API base URL, without a trailing `/`.
    base: String,
}

/// Prints a line and flushes: whoever reads the output (a person, a test) sees it at once.
fn say(line: impl AsRef<str>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", rivulet_http::secrets::scrub(line.as_ref()))?;
    out.flush()?;
    Ok(())
}

async fn authorize(setup: Setup) -> anyhow::Result<ExitCode> {
    let state = random_state();
    let (tx, mut rx) = mpsc::channel(1);
    let listener = Arc::new(Listener {
        state: state.clone(),
        tx: parking_lot::Mutex::new(Some(tx)),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (port, servers) = listen(setup.args.port, listener, stop_rx).await?;
    let result = converse(&setup, &state, port, &mut rx).await;
    // The last page goes out before the process ends: the listeners finish what they answer.
    let _ = stop_tx.send(true);
    for server in servers {
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    }
    result
}

/// Prints the authorize URL, waits for the redirect and finishes the authorization.
async fn converse(
    setup: &Setup,
    state: &str,
    port: u16,
    rx: &mut mpsc::Receiver<Redirect>,
) -> anyhow::Result<ExitCode> {
    let args = &setup.args;
    let redirect_uri = format!("http://localhost:{port}/callback");
    let url = rivulet_hubspot::authorize_url(
        Some(&args.authorize_url),
        &setup.client_id,
        &redirect_uri,
        &setup.scopes,
        state,
    )
    .map_err(|e| anyhow::anyhow!("--authorize-url: {e}"))?;
    say("Open this URL in a browser, sign in to HubSpot and choose the account to connect:")?;
    say("")?;
    say(format!("  {url}"))?;
    say("")?;
    say(format!(
        "Waiting up to {} for HubSpot to send the browser back to {redirect_uri} (Ctrl-C stops) …",
        humantime_like(args.timeout)
    ))?;
    let outcome = tokio::time::timeout(args.timeout, rx.recv()).await;
    let (code, reply) = match outcome {
        Err(_) | Ok(None) => {
            eprintln!(
                "rivulet: no redirect came within {}; nothing was stored. Run the command again (--timeout waits longer)",
                humantime_like(args.timeout)
            );
            return Ok(ExitCode::from(crate::exit::FAILED));
        }
        Ok(Some(Redirect::StateMismatch)) => {
            eprintln!(
                "rivulet: refused a redirect whose state does not match this authorization (an old browser tab, or a request this run did not start); nothing was exchanged or stored. Run the command again and open the URL it prints"
            );
            return Ok(ExitCode::from(crate::exit::FAILED));
        }
        Ok(Some(Redirect::Denied(said))) => {
            eprintln!(
                "rivulet: HubSpot did not authorize the app ({}); nothing was stored",
                rivulet_http::secrets::scrub(&said)
            );
            return Ok(ExitCode::from(crate::exit::FAILED));
        }
        Ok(Some(Redirect::Malformed)) => {
            eprintln!(
                "rivulet: the redirect carried neither a code nor an error; nothing was stored"
            );
            return Ok(ExitCode::from(crate::exit::FAILED));
        }
        Ok(Some(Redirect::Code { code, reply })) => (code, reply),
    };
    let result = finish(setup, &code, &redirect_uri).await;
    let page = match &result {
        Ok(_) => Page {
            status: StatusCode::OK,
            title: "Authorized",
            text: "Rivulet stored the refresh token. You can close this tab and go back to the terminal.".into(),
        },
        Err(_) => Page {
            status: StatusCode::BAD_GATEWAY,
            title: "Authorization failed",
            text: "Rivulet could not finish the authorization; the terminal says why.".into(),
        },
    };
    let _ = reply.send(page);
    match result {
        Ok(code) => Ok(code),
        Err(Failure::Usage(e)) => Err(e),
        Err(Failure::Auth(message)) => {
            eprintln!("rivulet: {}", rivulet_http::secrets::scrub(&message));
            Ok(ExitCode::from(crate::exit::FAILED))
        }
    }
}

/// `5m`, `90s`.
fn humantime_like(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else if s > 0 {
        format!("{s}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

enum Failure {
    /// I/O: exit 2.
    Usage(anyhow::Error),
    /// The authorization did not work out: exit 1.
    Auth(String),
}

async fn finish(
    setup: &Setup,
    code: &SecretString,
    redirect_uri: &str,
) -> Result<ExitCode, Failure> {
    let Setup {
        args,
        client_id,
        secret,
        scopes,
        base,
    } = setup;
    let token_url = format!("{base}/oauth/v1/token");
    let mut app = OAuthApp::new(client_id, secret.clone());
    app.token_url = token_url.clone();
    let grant: TokenGrant = rivulet_hubspot::exchange_code(&app, code, redirect_uri)
        .await
        .map_err(|e| {
            // `Auth` describes itself as a refresh; this was the code's exchange.
            let said = match e {
                rivulet_hubspot::Error::Auth(message) => message,
                other => other.to_string(),
            };
            Failure::Auth(format!("trading the code for tokens failed: {said}"))
        })?;
    let marks = Marks::detect();
    let ok = marks.mark(Status::Ok);
    let mut granted = format!("{ok} authorized");
    if let Some(hub) = grant.hub_id {
        granted.push_str(&format!(" for account {hub}"));
    }
    if !grant.scopes.is_empty() {
        granted.push_str(&format!("; scopes: {}", grant.scopes.join(", ")));
    }
    let _ = say(granted);
    let missing: Vec<&str> = scopes
        .iter()
        .filter(|s| !grant.scopes.is_empty() && !grant.scopes.contains(s))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        let _ = say(format!(
            "{} HubSpot granted fewer scopes than asked for: not {}",
            marks.mark(Status::Warning),
            missing.join(", ")
        ));
    }
    store_secret(&args.out, grant.refresh_token.expose_secret(), args.force)
        .map_err(Failure::Usage)?;
    let shown = args.out.display().to_string();
    let _ = say(format!(
        "{ok} stored the refresh token in {shown} (mode 0600; keep it out of version control)"
    ));
    // The stored token, used the way a connection will use it: an access token from it, and
    // what that token may do.
    let mut config = ClientConfig::new(Auth::OAuth {
        client_id: client_id.to_string(),
        client_secret: secret.clone(),
        refresh_token: grant.refresh_token.clone(),
        token_url: token_url.clone(),
    })
    .base_url(base);
    config.timeout = Duration::from_secs(30);
    let client = Client::new(config)
        .map_err(|e| Failure::Auth(format!("checking the refresh token: {e}")))?;
    match client.token_info().await {
        Ok(info) => {
            let account = info
                .hub_id
                .map(|h| format!(" of account {h}"))
                .unwrap_or_default();
            let _ = say(format!(
                "{ok} the refresh token works: it got an access token{account} with {} scopes",
                info.scopes.len()
            ));
        }
        Err(e) => {
            return Err(Failure::Auth(format!(
                "the refresh token is stored in {shown}, but getting an access token with it failed: {e}"
            )));
        }
    }
    let secret_var = args.client_secret_env.trim();
    let _ = say("");
    let _ = say(
        "Put this in the HubSpot connection in connections.yaml, in place of `token:` (the client secret stays in the environment, the refresh token in its file):",
    );
    let _ = say("");
    let _ = say("      oauth:");
    let _ = say(format!(
        "        client_id: {}",
        serde_json::to_string(client_id).unwrap_or_default()
    ));
    let _ = say(format!("        client_secret: ${{{secret_var}}}"));
    // The file by its absolute path: the connections file may live anywhere.
    let stored = std::fs::canonicalize(&args.out).unwrap_or_else(|_| args.out.clone());
    let _ = say(format!(
        "        refresh_token_file: {}",
        serde_json::to_string(&stored.display().to_string()).unwrap_or_default()
    ));
    if token_url != rivulet_hubspot::DEFAULT_TOKEN_URL {
        let _ = say(format!("        token_url: {token_url}"));
    }
    if base != DEFAULT_BASE_URL {
        let _ = say(format!("      base_url: {base}"));
    }
    let _ = say("");
    let _ =
        say("Then `rivulet check` confirms the connection can read (and, with --write, write).");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_long_random_and_compared_whole() {
        let (a, b) = (random_state(), random_state());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &b));
        assert!(!same(&a, &a[..63]));
    }

    #[test]
    fn the_secret_file_is_private_and_never_overwritten_unasked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        store_secret(&path, "first", false).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let refused = store_secret(&path, "second", false).unwrap_err();
        assert!(refused.to_string().contains("--force"), "{refused}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\n");
        store_secret(&path, "second", true).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
    }
}
