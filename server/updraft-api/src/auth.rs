//! Who is calling and what they may do: users with a role, argon2 password hashes, HS512 JWT
//! bearer tokens with an expiry (`POST /auth/token`, the official client's flow), a session
//! cookie for the web app (`POST /auth/login`: HttpOnly, SameSite=Strict, with a CSRF token
//! that every change must repeat in `X-CSRF-Token`), and the extractors that turn a request
//! into a [`Caller`] (401 without a valid token) and check its role (403).
//!
//! Roles have the meanings of Airflow's simple auth manager, each including the one before:
//! `viewer` reads DAGs, runs, task instances, logs, XComs, pools and import errors; `user`
//! also pauses DAGs, triggers, clears, marks and deletes runs; `op` also manages connections,
//! variables and pools; `admin` may do everything.

use std::time::Duration;

use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;

/// What a user may do, shared with the web app (`updraft_types::role`).
pub use updraft_types::role::Role;

/// Hashes a password for storage (argon2id, random salt, the crate's default parameters).
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| ApiError::Internal(format!("hashing a password: {e}")))
}

/// Whether `password` matches a stored hash. A malformed hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|parsed| argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// `n` random bytes from the operating system.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0; n];
    // The OS random source failing is a broken machine, not an input error.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    bytes
}

/// A random password of 20 letters and digits (for `updraft standalone`'s admin).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    // 256 is not a multiple of the alphabet's size: draw bytes and reject the biased ones.
    let limit = 256 - 256 % ALPHABET.len();
    let mut out = String::with_capacity(20);
    while out.len() < 20 {
        for b in random_bytes(32) {
            if usize::from(b) < limit && out.len() < 20 {
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    out
}

/// A new random JWT signing secret, base64 (for the data folder's key file).
pub fn generate_secret() -> String {
    base64::engine::general_purpose::STANDARD.encode(random_bytes(64))
}

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    /// Session tokens (the web app's cookie) only: the CSRF token that unsafe requests must
    /// repeat in `X-CSRF-Token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf: Option<String>,
}

const AUDIENCE: &str = "updraft";
const HEADER: &str = r#"{"alg":"HS512","typ":"JWT"}"#;

/// Issues and checks HS512 JWTs with one secret.
#[derive(Clone)]
pub struct Tokens {
    secret: Vec<u8>,
    lifetime: Duration,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("lifetime", &self.lifetime).finish_non_exhaustive()
    }
}

impl Tokens {
    /// Signs and checks tokens with `secret`; each lives for `lifetime`.
    pub fn new(secret: &[u8], lifetime: Duration) -> Tokens {
        Tokens { secret: secret.to_vec(), lifetime }
    }

    fn mac(&self) -> Hmac<hmac_sha2::Sha512> {
        // HMAC takes a key of any length.
        #[allow(clippy::expect_used)]
        Hmac::new_from_slice(&self.secret).expect("HMAC accepts any key length")
    }

    /// A bearer token for `username` with `role`, valid from now for the configured lifetime.
    pub fn issue(&self, username: &str, role: Role) -> String {
        self.sign(username, role, None)
    }

    /// A session token for the web app's cookie, bound to a CSRF token.
    pub fn issue_session(&self, username: &str, role: Role, csrf: &str) -> String {
        self.sign(username, role, Some(csrf.to_owned()))
    }

    fn sign(&self, username: &str, role: Role, csrf: Option<String>) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: username.to_owned(),
            role,
            aud: AUDIENCE.to_owned(),
            iat: now,
            nbf: now,
            exp: now + i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX / 2),
            jti: hex(&random_bytes(16)),
            csrf,
        };
        let payload = serde_json::to_vec(&claims).unwrap_or_default();
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER), URL_SAFE_NO_PAD.encode(payload));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = mac.finalize().into_bytes();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The claims of a token this server signed that has not expired; `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let (signing_input, signature) = token.rsplit_once('.')?;
        let (header, payload) = signing_input.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&signature).ok()?;
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS512") {
            return None;
        }
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let now = chrono::Utc::now().timestamp();
        // A minute of leeway for clocks of several API servers.
        (claims.aud == AUDIENCE && claims.exp > now && claims.nbf <= now + 60).then_some(claims)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The web app's session cookie (HttpOnly, SameSite=Strict) holding a session token.
pub const SESSION_COOKIE: &str = "updraft_session";
/// The header that unsafe requests authenticated by the cookie must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The authenticated user of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub username: String,
    pub role: Role,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    /// A bearer token (API clients), else the session cookie (the web app); with the cookie,
    /// a request that changes something must also carry the session's CSRF token in
    /// `X-CSRF-Token`, which a page of another site cannot read.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        if let Some(token) = bearer {
            let claims = state.tokens().verify(token.trim()).ok_or(ApiError::Unauthenticated)?;
            // A session token is for the cookie only, where CSRF is checked.
            if claims.csrf.is_some() {
                return Err(ApiError::Unauthenticated);
            }
            return Ok(Caller { username: claims.sub, role: claims.role });
        }
        let token = cookie(parts, SESSION_COOKIE).ok_or(ApiError::Unauthenticated)?;
        let claims = state.tokens().verify(token).ok_or(ApiError::Unauthenticated)?;
        let Some(csrf) = claims.csrf else { return Err(ApiError::Unauthenticated) };
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        let sent = parts.headers.get(CSRF_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
        if !safe && !same(sent, csrf.as_bytes()) {
            return Err(ApiError::Forbidden(
                "a request made with the session cookie must repeat the session's CSRF token in X-CSRF-Token".into(),
            ));
        }
        Ok(Caller { username: claims.sub, role: claims.role })
    }
}

/// A caller whose role is at least `MIN` (0 viewer, 1 user, 2 op, 3 admin); 403 otherwise.
/// Handlers name the permission they need in their signature: `Viewer`, `UserRole`, `Op`.
#[derive(Debug, Clone)]
pub struct Allowed<const MIN: u8>(pub Caller);

/// Any signed-in role may read.
pub type Viewer = Allowed<0>;
/// Users and above: trigger, clear, mark, edit DAG files.
pub type UserRole = Allowed<1>;
/// Operators and above: connections, variables, pools, plugins.
pub type Op = Allowed<2>;
/// Admins only: accounts.
pub type Admin = Allowed<3>;

impl<const MIN: u8> FromRequestParts<AppState> for Allowed<MIN> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let needed = Role::ALL[usize::from(MIN).min(3)];
        if caller.role < needed {
            return Err(ApiError::Forbidden(format!(
                "user `{}` has role `{}`; this needs role `{}` or higher",
                caller.username,
                caller.role.as_str(),
                needed.as_str()
            )));
        }
        Ok(Allowed(caller))
    }
}

/// `/auth/token` (API clients), `/auth/login` and `/auth/logout` (the web app's session).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/token", post(token))
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/session", get(session))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct Credentials {
    username: String,
    password: String,
}

/// Reads credentials from a JSON or form body.
async fn credentials(state: &AppState, req: Request) -> Result<Credentials, ApiError> {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        Form::<Credentials>::from_request(req, state)
            .await
            .map(|Form(c)| c)
            .map_err(|r| ApiError::Rejected { status: r.status(), detail: r.body_text() })
    } else {
        Ok(crate::extract::JsonBody::<Credentials>::from_request(req, state).await?.0)
    }
}

/// The role of a user whose password matches; 401 otherwise.
async fn authenticate(state: &AppState, credentials: Credentials) -> Result<Role, ApiError> {
    if let Some(left) = state.throttle().locked(&credentials.username) {
        return Err(ApiError::TooManyAttempts { retry_after: left.as_secs().max(1) });
    }
    let user = state.db().get_user(&credentials.username).await?;
    // Hash checks are slow on purpose: off the async workers. An unknown user is checked
    // against a fixed hash so that the answer takes as long as for a known one.
    let (hash, role) = match &user {
        Some(u) if u.active => (u.password_hash.clone(), Role::parse(&u.role)),
        _ => (state.dummy_hash().to_owned(), None),
    };
    let password = credentials.password;
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(format!("password check: {e}")))?;
    match role.filter(|_| matches) {
        Some(role) => {
            state.throttle().succeeded(&credentials.username);
            Ok(role)
        }
        None => {
            state.throttle().failed(&credentials.username);
            Err(ApiError::InvalidCredentials)
        }
    }
}

/// `POST /auth/token` with `{"username", "password"}` as JSON or a form: 201
/// `{"access_token": …}`, 401 for a wrong username or password, 429 after too many of those
/// for one username (`throttle`).
#[utoipa::path(
    post,
    path = "/auth/token",
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 201, description = "a bearer token", body = crate::models::TokenResponse),
        (status = 401, description = "wrong username or password", body = crate::models::Problem),
        crate::models::Unfit,
        (status = 429, description = "too many failed sign-ins for this user; see Retry-After", body = crate::models::Problem),
    )
)]
pub(crate) async fn token(State(state): State<AppState>, req: Request) -> Result<impl IntoResponse, ApiError> {
    let credentials = credentials(&state, req).await?;
    let username = credentials.username.clone();
    let role = authenticate(&state, credentials).await?;
    let token = state.tokens().issue(&username, role);
    Ok((StatusCode::CREATED, Json(crate::models::TokenResponse { access_token: token })))
}

/// `POST /auth/login`: the session cookie (HttpOnly, SameSite=Strict) and, in the body, the
/// CSRF token the web app sends back in `X-CSRF-Token` with every change.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 200, description = "the session cookie is set; the body holds the CSRF token", body = Object),
        (status = 401, description = "wrong username or password", body = crate::models::Problem),
        crate::models::Unfit,
        (status = 429, description = "too many failed sign-ins for this user; see Retry-After", body = crate::models::Problem),
    )
)]
pub(crate) async fn login(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let credentials = credentials(&state, req).await?;
    let username = credentials.username.clone();
    let role = authenticate(&state, credentials).await?;
    let csrf = hex(&random_bytes(32));
    let token = state.tokens().issue_session(&username, role, &csrf);
    let max_age = state.tokens().lifetime.as_secs();
    let secure = if state.secure_cookies() { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}");
    let body = serde_json::json!({ "username": username, "role": role, "csrf_token": csrf });
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(format!("cookie: {e}")))?,
    );
    Ok(response)
}

/// `GET /auth/session`: the user the session cookie signs in, with the session's CSRF token
/// (the cookie is HttpOnly, so the web app asks for both after a reload); 401 without one.
#[utoipa::path(
    get,
    path = "/auth/session",
    tag = "auth",
    responses(
        (status = 200, body = updraft_types::api::SessionResponse),
        (status = 401, description = "no valid session cookie", body = crate::models::Problem),
    )
)]
pub(crate) async fn session(
    State(state): State<AppState>,
    parts: Parts,
) -> Result<Json<updraft_types::api::SessionResponse>, ApiError> {
    let token = cookie(&parts, SESSION_COOKIE).ok_or(ApiError::Unauthenticated)?;
    let claims = state.tokens().verify(token).ok_or(ApiError::Unauthenticated)?;
    let Some(csrf_token) = claims.csrf else { return Err(ApiError::Unauthenticated) };
    Ok(Json(updraft_types::api::SessionResponse {
        username: claims.sub,
        role: claims.role.as_str().to_owned(),
        csrf_token,
    }))
}

/// `POST /auth/logout`: clears the session cookie (the token itself lasts until it expires).
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    responses(
        (status = 204, description = "the session cookie is cleared"),
    )
)]
pub(crate) async fn logout() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering_and_expiry() {
        let tokens = Tokens::new(b"secret", Duration::from_secs(60));
        let token = tokens.issue("ann", Role::Op);
        let claims = tokens.verify(&token).expect("valid");
        assert_eq!((claims.sub.as_str(), claims.role), ("ann", Role::Op));
        assert!(Tokens::new(b"other", Duration::from_secs(60)).verify(&token).is_none(), "another secret");
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Claims { role: Role::Admin, ..claims.clone() }).expect("json"));
        parts[1] = &forged;
        assert!(tokens.verify(&parts.join(".")).is_none(), "claims changed after signing");
        let expired = Tokens::new(b"secret", Duration::from_secs(0)).issue("ann", Role::Op);
        assert!(tokens.verify(&expired).is_none(), "expired");
        assert!(tokens.verify("not.a.token").is_none());
    }

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("hunter2").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("hunter2", &hash));
        assert!(!verify_password("hunter3", &hash));
        assert!(!verify_password("hunter2", "not a hash"));
        let generated = generate_password();
        assert_eq!(generated.len(), 20);
        assert!(generated.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
