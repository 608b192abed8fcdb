//! Users, API keys and refresh tokens in Postgres: the only code with SQL on `users`,
//! `api_keys` and `refresh_tokens`. The command API manages them; both APIs authenticate an
//! API key through [`Accounts::api_key_by_hash`].

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::Role;
use crate::db::OnConstraint;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: Uuid,
    pub username: String,
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub password_hash: String,
    #[sqlx(try_from = "String")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub role: RoleColumn,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// A role as stored in a text column.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(transparent)]
pub struct RoleColumn(pub Role);

impl TryFrom<String> for RoleColumn {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        value
            .parse()
            .map(RoleColumn)
            .map_err(|_| format!("unknown role {value:?}"))
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    #[sqlx(try_from = "String")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub role: RoleColumn,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// What using a refresh token found.
pub enum RefreshUse {
    /// First use: the token is now spent; issue the next one in the same family.
    Fresh { family_id: Uuid, user: User },
    /// Used before: the token was stolen or replayed; its whole family is now revoked.
    Reused,
    /// Unknown, expired, revoked, or its user is disabled.
    Invalid,
}

/// An admin's change to an account; `None` leaves that part as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

/// What [`Accounts::update_user`] did.
#[derive(Debug)]
pub enum UserUpdate {
    Updated(User),
    NotFound,
    /// Refused: the change would leave no enabled admin, and nobody could manage accounts.
    LastAdmin,
}

/// What authentication re-reads about the user of an access token (see
/// [`super::UserStates`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserState {
    pub role: Role,
    pub disabled: bool,
}

#[derive(sqlx::FromRow)]
struct RefreshTokenRow {
    family_id: Uuid,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
    user_id: Uuid,
}

#[derive(Clone)]
pub struct Accounts {
    pool: PgPool,
}

const USER_COLUMNS: &str = "id, username, password_hash, role, disabled, created_at";
const API_KEY_COLUMNS: &str =
    "id, name, prefix, role, created_by, created_at, expires_at, revoked_at, last_used_at";

impl Accounts {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await
    }

    /// `Ok(None)` when the username is taken.
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<Option<User>, sqlx::Error> {
        sqlx::query_as(&format!(
            "INSERT INTO users (id, username, password_hash, role) VALUES ($1, $2, $3, $4) RETURNING {USER_COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(username)
        .bind(password_hash)
        .bind(role.to_string())
        .fetch_one(&self.pool)
        .await
        .map(Some)
        .on_constraint("users_username_key", |_| None)
    }

    /// Creates the first admin, only while no user exists (safe when replicas start at once).
    pub async fn bootstrap_admin(&self, username: &str, password_hash: &str) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('bootstrap_admin'))")
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO users (id, username, password_hash, role) \
             SELECT $1, $2, $3, 'admin' WHERE NOT EXISTS (SELECT 1 FROM users)",
        )
        .bind(Uuid::now_v7())
        .bind(username)
        .bind(password_hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(inserted == 1)
    }

    pub async fn list_users(&self) -> Result<Vec<User>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, username"
        ))
        .fetch_all(&self.pool)
        .await
    }

    pub async fn record_refresh_token(
        &self,
        jti: Uuid,
        family_id: Uuid,
        user_id: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO refresh_tokens (jti, family_id, user_id, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(jti)
        .bind(family_id)
        .bind(user_id)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Spends a refresh token, once. A second use revokes every token of its family, the
    /// next one included: whoever holds a copy gets nothing more from it.
    pub async fn use_refresh_token(&self, jti: Uuid) -> Result<RefreshUse, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let token: Option<RefreshTokenRow> = sqlx::query_as(
            "SELECT family_id, used_at, revoked_at, expires_at, user_id FROM refresh_tokens \
             WHERE jti = $1 FOR UPDATE",
        )
        .bind(jti)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(RefreshTokenRow {
            family_id,
            used_at,
            revoked_at,
            expires_at,
            user_id,
        }) = token
        else {
            return Ok(RefreshUse::Invalid);
        };
        if used_at.is_some() {
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
            )
            .bind(family_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(RefreshUse::Reused);
        }
        if revoked_at.is_some() || expires_at <= Utc::now() {
            return Ok(RefreshUse::Invalid);
        }
        let user: Option<User> = sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(user) = user.filter(|user| !user.disabled) else {
            return Ok(RefreshUse::Invalid);
        };
        sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE jti = $1")
            .bind(jti)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(RefreshUse::Fresh { family_id, user })
    }

    /// Changes a user's role or disabled flag. Under one lock for every change that can
    /// remove an enabled admin, so two admins demoting each other at once cannot both
    /// succeed and leave none. Disabling also revokes every refresh token of the user.
    pub async fn update_user(&self, id: Uuid, change: UserChange) -> Result<UserUpdate, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('users:enabled_admins'))")
            .execute(&mut *tx)
            .await?;
        let current: Option<User> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(current) = current else {
            return Ok(UserUpdate::NotFound);
        };
        let role = change.role.unwrap_or(current.role.0);
        let disabled = change.disabled.unwrap_or(current.disabled);
        let enabled_admin = |role: Role, disabled: bool| role == Role::Admin && !disabled;
        if enabled_admin(current.role.0, current.disabled) && !enabled_admin(role, disabled) {
            let others: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled AND id <> $1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            if others == 0 {
                return Ok(UserUpdate::LastAdmin);
            }
        }
        let user: User = sqlx::query_as(&format!(
            "UPDATE users SET role = $2, disabled = $3 WHERE id = $1 RETURNING {USER_COLUMNS}"
        ))
        .bind(id)
        .bind(role.to_string())
        .bind(disabled)
        .fetch_one(&mut *tx)
        .await?;
        if disabled {
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(UserUpdate::Updated(user))
    }

    /// The role and disabled flag of user `id`; `None` for an id no user has.
    pub async fn user_state(&self, id: Uuid) -> Result<Option<UserState>, sqlx::Error> {
        let row: Option<(String, bool)> = sqlx::query_as("SELECT role, disabled FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(role, disabled)| {
            let role: Role = role.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            Ok(UserState { role, disabled })
        })
        .transpose()
    }

    /// Logout: revokes every refresh token of the login that issued `jti` (its family). An
    /// unknown token changes nothing.
    pub async fn revoke_refresh_family(&self, jti: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now() \
             WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE jti = $1) AND revoked_at IS NULL",
        )
        .bind(jti)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn create_api_key(
        &self,
        name: &str,
        prefix: &str,
        key_hash: &str,
        role: Role,
        created_by: Option<Uuid>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<ApiKeyInfo, sqlx::Error> {
        sqlx::query_as(&format!(
            "INSERT INTO api_keys (id, name, prefix, key_hash, role, created_by, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {API_KEY_COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(name)
        .bind(prefix)
        .bind(key_hash)
        .bind(role.to_string())
        .bind(created_by)
        .bind(expires_at)
        .fetch_one(&self.pool)
        .await
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, name"
        ))
        .fetch_all(&self.pool)
        .await
    }

    /// `Ok(false)` when no such key exists. Revoking a revoked key changes nothing.
    pub async fn revoke_api_key(&self, id: Uuid) -> Result<bool, sqlx::Error> {
        let found = sqlx::query("UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(found == 1)
    }

    /// The API key stored under `key_hash` (its SHA-256): id, name, role, expiry, revocation.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<StoredApiKey>, sqlx::Error> {
        sqlx::query_as("SELECT id, name, role, expires_at, revoked_at FROM api_keys WHERE key_hash = $1")
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await
    }

    /// Records that the key was used: at most once a minute per key, so authentication is not
    /// a write on every request.
    pub async fn touch_api_key(&self, id: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = now() WHERE id = $1 \
             AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// An API key as authentication needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredApiKey {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}
