use serde_json::json;
use uuid::Uuid;

use super::Role;
use crate::error::ApiError;

/// Who is calling. Extract it in a handler (`principal: Principal`) to require credentials;
/// see [`super::Authenticator`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: PrincipalKind,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    User { id: Uuid, username: String },
    ApiKey { id: Uuid, name: String },
}

impl Principal {
    /// The event-metadata actor: `user:<username>` or `api_key:<name>`. Readable for
    /// auditors; use [`Principal::subject_id`] where a stable id is needed.
    pub fn actor(&self) -> String {
        match &self.subject {
            PrincipalKind::User { username, .. } => format!("user:{username}"),
            PrincipalKind::ApiKey { name, .. } => format!("api_key:{name}"),
        }
    }

    /// The user's or the API key's id.
    pub fn subject_id(&self) -> Uuid {
        match &self.subject {
            PrincipalKind::User { id, .. } | PrincipalKind::ApiKey { id, .. } => *id,
        }
    }

    /// The user id when the caller is a user (e.g. `created_by` of an API key).
    pub fn user_id(&self) -> Option<Uuid> {
        match &self.subject {
            PrincipalKind::User { id, .. } => Some(*id),
            PrincipalKind::ApiKey { .. } => None,
        }
    }

    /// 403 `FORBIDDEN` naming the required role unless this principal's role allows it.
    pub fn require(&self, required: Role) -> Result<(), ApiError> {
        if self.role.allows(required) {
            Ok(())
        } else {
            Err(
                ApiError::forbidden("FORBIDDEN", format!("this action requires the {required} role"))
                    .with_details(json!({ "required_role": required, "role": self.role })),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role) -> Principal {
        Principal {
            subject: PrincipalKind::User {
                id: Uuid::nil(),
                username: "alice".into(),
            },
            role,
        }
    }

    #[test]
    fn actor_names() {
        assert_eq!(user(Role::Viewer).actor(), "user:alice");
        let key = Principal {
            subject: PrincipalKind::ApiKey {
                id: Uuid::nil(),
                name: "ci".into(),
            },
            role: Role::Operator,
        };
        assert_eq!(key.actor(), "api_key:ci");
        assert_eq!(key.user_id(), None);
    }

    #[test]
    fn require_checks_the_hierarchy() {
        assert!(user(Role::Admin).require(Role::Operator).is_ok());
        assert!(user(Role::Operator).require(Role::Operator).is_ok());
        let err = user(Role::Viewer).require(Role::Operator).unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::FORBIDDEN);
        assert_eq!(err.code, "FORBIDDEN");
        assert!(err.message.contains("operator"));
        assert_eq!(err.details.unwrap()["required_role"], "operator");
    }
}
