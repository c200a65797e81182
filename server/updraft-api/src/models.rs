//! The response bodies, from `updraft_types::api` (shared with the web app): the handlers
//! build them and the OpenAPI document (`openapi`) is generated from them, so the document and
//! the answers cannot drift apart.

pub use updraft_types::api::*;

/// The answers shared by many routes, for their OpenAPI descriptions (`responses(…)`), so that
/// every route describes them alike. `ApiError` builds the real answers.
mod shared_answers {
    use super::Problem;

    /// A route behind a token, refused.
    #[derive(utoipa::IntoResponses)]
    #[expect(dead_code, reason = "describes answers; ApiError builds them")]
    pub enum Refused {
        /// no valid token
        #[response(status = 401)]
        Unauthorized(Problem),
        /// the role may not
        #[response(status = 403)]
        Forbidden(Problem),
    }

    /// A route naming something that does not exist.
    #[derive(utoipa::IntoResponses)]
    #[expect(dead_code, reason = "describes answers; ApiError builds them")]
    pub enum Missing {
        /// unknown DAG, run, task or object
        #[response(status = 404)]
        NotFound(Problem),
    }

    /// A route whose body did not fit.
    #[derive(utoipa::IntoResponses)]
    #[expect(dead_code, reason = "describes answers; ApiError builds them")]
    pub enum Unfit {
        /// a body of the wrong shape or types
        #[response(status = 422)]
        Unprocessable(Problem),
    }
}

pub use shared_answers::{Missing, Refused, Unfit};
