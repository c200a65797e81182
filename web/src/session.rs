//! The session: who is signed in and with which role, whether the app has asked the server
//! yet, and how that changes (signing in, signing out, the server answering 401). The app
//! (`app::App`) starts it once and provides it as context; pages read it with [`use_session`].
//! The role only hides what the user may not do: the API decides.

use leptos::prelude::*;
use leptos::task::spawn_local;
use updraft_types::api::SessionResponse;
pub use updraft_types::role::Role;

use crate::api;

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub username: String,
    pub role: Role,
}

/// Who is signed in; `checked` once the app has asked the server.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    pub user: RwSignal<Option<User>>,
    pub checked: RwSignal<bool>,
}

impl Session {
    /// A new session, provided as context: it asks the server who the session cookie belongs
    /// to, and forgets the user whenever the server says the session is gone.
    pub fn start() -> Session {
        let session = Session { user: RwSignal::new(None), checked: RwSignal::new(false) };
        provide_context(session);
        api::on_signed_out(move || session.forget());
        spawn_local(async move {
            if let Ok(answer) = api::get::<SessionResponse>("/auth/session").await {
                session.sign_in(answer);
            }
            session.checked.set(true);
        });
        session
    }

    /// Whether the signed-in user has at least `role` (what the API checks again).
    pub fn can(&self, role: Role) -> bool {
        self.user.with(|u| u.as_ref().is_some_and(|u| u.role >= role))
    }

    pub fn is_signed_in(&self) -> bool {
        self.user.with(Option::is_some)
    }

    /// The server's answer to a sign-in (or to `/auth/session`): its user and CSRF token. A
    /// role this app does not know counts as the weakest.
    pub fn sign_in(&self, answer: SessionResponse) {
        api::set_csrf(Some(answer.csrf_token));
        let role = Role::parse(&answer.role).unwrap_or(Role::Viewer);
        self.user.set(Some(User { username: answer.username, role }));
    }

    /// Ends the session at the server, then here.
    pub async fn sign_out(self) {
        let _ = api::call("POST", "/auth/logout", None).await;
        self.forget();
    }

    /// Forgets the user and the CSRF token.
    fn forget(&self) {
        api::set_csrf(None);
        self.user.set(None);
    }
}

/// The app's session (outside the app: a checked session with nobody signed in).
pub fn use_session() -> Session {
    use_context::<Session>().unwrap_or_else(|| Session { user: RwSignal::new(None), checked: RwSignal::new(true) })
}
