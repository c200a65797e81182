//! What a user may do: the API checks it on every request, the web app reads it to hide what
//! the user may not do (the API decides). Serialised lowercase (`viewer`, `user`, `op`,
//! `admin`), as in tokens, the users table and the session answer.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A user's role; each includes the ones before it, so roles compare by strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads DAGs, runs, task instances, logs, XComs, pools and import errors.
    Viewer,
    /// Also pauses DAGs, triggers, clears, marks and deletes runs.
    User,
    /// Also manages connections, variables and pools.
    Op,
    /// May do everything.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::User, Role::Op, Role::Admin];

    /// The role's name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::User => "user",
            Role::Op => "op",
            Role::Admin => "admin",
        }
    }

    /// The role named `text` (exactly as [`Role::as_str`] writes it), if any.
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_roles_are_ordered() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(serde_json::to_string(&role).ok(), Some(format!("\"{role}\"")));
        }
        assert_eq!(Role::parse("Admin"), None);
        assert!(Role::Viewer < Role::User && Role::User < Role::Op && Role::Op < Role::Admin);
    }
}
