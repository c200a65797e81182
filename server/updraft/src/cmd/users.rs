//! `updraft users create|list`: accounts of the API server and the web app, each with a role
//! (`admin`, `op`, `user`, `viewer`, as in Airflow). Passwords are stored as argon2 hashes.

use std::process::ExitCode;

use anyhow::bail;
use clap::{Subcommand, ValueEnum};
use updraft_api::Role;

use super::meta::{MetaArgs, runtime};

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user.
    Create {
        #[arg(long)]
        username: String,
        /// The password (default: one line read from standard input, so it stays out of the
        /// shell history).
        #[arg(long)]
        password: Option<String>,
        #[arg(long, value_enum)]
        role: RoleArg,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// List users and their roles.
    List {
        #[command(flatten)]
        meta: MetaArgs,
    },
}

/// What a user may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Reads DAGs, runs, task instances, logs, XComs, pools and import errors.
    Viewer,
    /// Also pauses DAGs, triggers, clears, marks and deletes runs.
    User,
    /// Also manages connections, variables and pools.
    Op,
    /// Everything.
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::User => Role::User,
            RoleArg::Op => Role::Op,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// Usernames are letters, digits and `_.@-`, at most 64 characters.
pub fn check_username(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c)) {
        bail!("username `{name}` is not allowed: use 1 to 64 letters, digits and _.@-");
    }
    Ok(())
}

pub fn run(command: UsersCommand) -> anyhow::Result<ExitCode> {
    match command {
        UsersCommand::Create { username, password, role, meta } => {
            check_username(&username)?;
            let password = match password {
                Some(p) => p,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            if password.len() < 8 {
                bail!("the password needs at least 8 characters");
            }
            let role = Role::from(role);
            let hash = updraft_api::hash_password(&password)?;
            runtime()?
                .block_on(async { anyhow::Ok(meta.db().await?.create_user(&username, &hash, role.as_str()).await?) })?;
            println!("created user `{username}` with role {}", role.as_str());
            Ok(ExitCode::SUCCESS)
        }
        UsersCommand::List { meta } => {
            let users = runtime()?.block_on(async { anyhow::Ok(meta.db().await?.list_users().await?) })?;
            let mut text = String::new();
            for u in users {
                let created = super::standalone::chrono_like(u.created_at.as_micros());
                let active = if u.active { "" } else { "\t(inactive)" };
                text.push_str(&format!("{}\t{}\t{created}{active}\n", u.username, u.role));
            }
            super::emit(&text)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
