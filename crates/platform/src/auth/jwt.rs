//! HS256 JWTs. Everything the library would otherwise default loosely is pinned: the algorithm
//! (no `none`, no algorithm switching), a small leeway, the required claims, issuer, audience,
//! and our own `typ` claim so access and refresh tokens are never interchangeable.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AuthError, Role};

pub const ACCESS_TOKEN_TTL_SECS: u64 = 30 * 60;
pub const REFRESH_TOKEN_TTL_SECS: u64 = 7 * 24 * 3600;
/// Clock skew tolerated on `exp` (jsonwebtoken's default is 60 s).
pub const MAX_LEEWAY_SECS: u64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: Uuid,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: Uuid,
    pub typ: TokenType,
    pub role: Role,
    pub username: String,
    /// Refresh-token family: every rotation of one login shares it, so reuse of an old refresh
    /// token can revoke the whole family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    /// Seconds until expiry (`expires_in` of the login answer).
    pub expires_in: u64,
    pub jti: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// Signing and verification keys; cheap to clone.
#[derive(Clone)]
pub struct JwtKeys {
    inner: Arc<Inner>,
}

struct Inner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// As `validation`, but an expired token passes: logout revokes with any token we issued.
    revocation: Validation,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// Fails only on an empty secret.
    pub fn new(secret: &[u8], issuer: &str, audience: &str) -> Result<Self, AuthError> {
        let encoding = EncodingKey::from_secret(secret).map_err(|e| AuthError::Signing(e.to_string()))?;
        let decoding = DecodingKey::from_secret(secret).map_err(|e| AuthError::Signing(e.to_string()))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = MAX_LEEWAY_SECS;
        validation.validate_exp = true;
        // `iat` is not checked by jsonwebtoken itself; our `Claims` makes it mandatory.
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        let mut revocation = validation.clone();
        revocation.validate_exp = false;
        Ok(Self {
            inner: Arc::new(Inner {
                encoding,
                decoding,
                validation,
                revocation,
                issuer: issuer.to_owned(),
                audience: audience.to_owned(),
            }),
        })
    }

    pub fn from_config(cfg: &crate::config::CommonConfig) -> Result<Self, AuthError> {
        Self::new(cfg.jwt_secret.as_bytes(), &cfg.jwt_issuer, &cfg.jwt_audience)
    }

    /// A 30-minute access token.
    pub fn issue_access(&self, user_id: Uuid, username: &str, role: Role) -> Result<IssuedToken, AuthError> {
        self.issue(
            TokenType::Access,
            user_id,
            username,
            role,
            None,
            Uuid::new_v4(),
            ACCESS_TOKEN_TTL_SECS,
        )
    }

    /// A 7-day refresh token of `family_id`, with the given `jti` (stored by the caller to
    /// detect reuse).
    pub fn issue_refresh(
        &self,
        user_id: Uuid,
        username: &str,
        role: Role,
        family_id: Uuid,
        jti: Uuid,
    ) -> Result<IssuedToken, AuthError> {
        self.issue(
            TokenType::Refresh,
            user_id,
            username,
            role,
            Some(family_id),
            jti,
            REFRESH_TOKEN_TTL_SECS,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn issue(
        &self,
        typ: TokenType,
        user_id: Uuid,
        username: &str,
        role: Role,
        fam: Option<Uuid>,
        jti: Uuid,
        ttl: u64,
    ) -> Result<IssuedToken, AuthError> {
        let now = Utc::now();
        let expires_at = now + chrono::Duration::seconds(ttl as i64);
        let claims = Claims {
            sub: user_id,
            iss: self.inner.issuer.clone(),
            aud: self.inner.audience.clone(),
            exp: expires_at.timestamp(),
            iat: now.timestamp(),
            jti,
            typ,
            role,
            username: username.to_owned(),
            fam,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.inner.encoding)
            .map_err(|e| AuthError::Signing(e.to_string()))?;
        Ok(IssuedToken {
            token,
            expires_in: ttl,
            jti,
            expires_at,
        })
    }

    pub fn verify_access(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify(token, TokenType::Access)
    }

    pub fn verify_refresh(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify(token, TokenType::Refresh)
    }

    /// The `jti` of a refresh token we signed, expired or not: what logout revokes by.
    pub fn refresh_token_id(&self, token: &str) -> Result<Uuid, AuthError> {
        self.verify_with(token, TokenType::Refresh, &self.inner.revocation)
            .map(|claims| claims.jti)
    }

    fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, AuthError> {
        self.verify_with(token, expected, &self.inner.validation)
    }

    fn verify_with(
        &self,
        token: &str,
        expected: TokenType,
        validation: &Validation,
    ) -> Result<Claims, AuthError> {
        let data = decode::<Claims>(token, &self.inner.decoding, validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            other => AuthError::InvalidToken(format!("{other:?}")),
        })?;
        if data.claims.typ != expected {
            return Err(AuthError::WrongTokenType);
        }
        if expected == TokenType::Refresh && data.claims.fam.is_none() {
            return Err(AuthError::InvalidToken("refresh token without family".into()));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::{json, Value};

    const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

    fn keys() -> JwtKeys {
        JwtKeys::new(SECRET, "sim-platform", "sim-platform-api").unwrap()
    }

    fn now() -> i64 {
        Utc::now().timestamp()
    }

    /// Valid access-token claims, as JSON so tests can remove or alter any of them.
    fn valid_claims() -> Value {
        json!({
            "sub": Uuid::new_v4(), "iss": "sim-platform", "aud": "sim-platform-api",
            "exp": now() + 600, "iat": now(), "jti": Uuid::new_v4(), "typ": "access",
            "role": "operator", "username": "alice",
        })
    }

    fn sign(claims: &Value, alg: Algorithm, secret: &[u8]) -> String {
        encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(secret).unwrap(),
        )
        .unwrap()
    }

    fn without(mut c: Value, field: &str) -> Value {
        c.as_object_mut().unwrap().remove(field);
        c
    }

    fn with(mut c: Value, field: &str, v: Value) -> Value {
        c[field] = v;
        c
    }

    #[test]
    fn issued_access_token_verifies() {
        let user = Uuid::new_v4();
        let issued = keys().issue_access(user, "alice", Role::Operator).unwrap();
        assert_eq!(issued.expires_in, 1800);
        let claims = keys().verify_access(&issued.token).unwrap();
        assert_eq!(claims.sub, user);
        assert_eq!(claims.username, "alice");
        assert_eq!(claims.role, Role::Operator);
        assert_eq!(claims.typ, TokenType::Access);
        assert_eq!(claims.jti, issued.jti);
        assert_eq!(claims.exp - claims.iat, 1800);
        // The hand-built claims are valid too, so the refusals below are about one change each.
        assert!(keys()
            .verify_access(&sign(&valid_claims(), Algorithm::HS256, SECRET))
            .is_ok());
    }

    #[test]
    fn issued_refresh_token_verifies_with_family() {
        let (fam, jti) = (Uuid::new_v4(), Uuid::new_v4());
        let issued = keys()
            .issue_refresh(Uuid::new_v4(), "bob", Role::Viewer, fam, jti)
            .unwrap();
        assert_eq!(issued.expires_in, 7 * 24 * 3600);
        let claims = keys().verify_refresh(&issued.token).unwrap();
        assert_eq!(
            (claims.fam, claims.jti, claims.typ),
            (Some(fam), jti, TokenType::Refresh)
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&valid_claims()).unwrap());
        for token in [format!("{header}.{payload}."), format!("{header}.{payload}")] {
            assert!(keys().verify_access(&token).is_err(), "{token}");
        }
    }

    #[test]
    fn wrong_signature_is_refused() {
        let token = sign(
            &valid_claims(),
            Algorithm::HS256,
            b"another-secret-another-secret-xx",
        );
        assert!(matches!(
            keys().verify_access(&token),
            Err(AuthError::InvalidToken(_))
        ));
        // A tampered payload under the original signature.
        let good = keys()
            .issue_access(Uuid::new_v4(), "v", Role::Viewer)
            .unwrap()
            .token;
        let parts: Vec<&str> = good.split('.').collect();
        let forged = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&with(valid_claims(), "role", json!("admin"))).unwrap());
        let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
        assert!(keys().verify_access(&tampered).is_err());
    }

    #[test]
    fn hs512_is_refused() {
        let token = sign(&valid_claims(), Algorithm::HS512, SECRET);
        assert!(matches!(
            keys().verify_access(&token),
            Err(AuthError::InvalidToken(_))
        ));
    }

    #[test]
    fn audience_rules() {
        let missing = sign(&without(valid_claims(), "aud"), Algorithm::HS256, SECRET);
        assert!(keys().verify_access(&missing).is_err());
        let wrong = sign(
            &with(valid_claims(), "aud", json!("other-api")),
            Algorithm::HS256,
            SECRET,
        );
        assert!(keys().verify_access(&wrong).is_err());
    }

    #[test]
    fn issuer_rules() {
        let missing = sign(&without(valid_claims(), "iss"), Algorithm::HS256, SECRET);
        assert!(keys().verify_access(&missing).is_err());
        let wrong = sign(
            &with(valid_claims(), "iss", json!("evil")),
            Algorithm::HS256,
            SECRET,
        );
        assert!(keys().verify_access(&wrong).is_err());
    }

    #[test]
    fn missing_exp_iat_or_sub_is_refused() {
        for field in ["exp", "iat", "sub", "typ"] {
            let token = sign(&without(valid_claims(), field), Algorithm::HS256, SECRET);
            assert!(keys().verify_access(&token).is_err(), "missing {field} accepted");
        }
    }

    #[test]
    fn expired_beyond_leeway_is_refused() {
        let token = sign(
            &with(valid_claims(), "exp", json!(now() - 30)),
            Algorithm::HS256,
            SECRET,
        );
        assert!(matches!(keys().verify_access(&token), Err(AuthError::Expired)));
    }

    #[test]
    fn token_types_are_not_interchangeable() {
        let k = keys();
        let access = k.issue_access(Uuid::new_v4(), "a", Role::Admin).unwrap().token;
        let refresh = k
            .issue_refresh(Uuid::new_v4(), "a", Role::Admin, Uuid::new_v4(), Uuid::new_v4())
            .unwrap()
            .token;
        assert!(matches!(
            k.verify_access(&refresh),
            Err(AuthError::WrongTokenType)
        ));
        assert!(matches!(
            k.verify_refresh(&access),
            Err(AuthError::WrongTokenType)
        ));
    }

    #[test]
    fn an_expired_refresh_token_still_names_its_id_for_logout() {
        let jti = Uuid::new_v4();
        let mut claims = with(valid_claims(), "typ", json!("refresh"));
        claims = with(claims, "fam", json!(Uuid::new_v4()));
        claims = with(with(claims, "jti", json!(jti)), "exp", json!(now() - 3600));
        let expired = sign(&claims, Algorithm::HS256, SECRET);
        assert!(matches!(keys().verify_refresh(&expired), Err(AuthError::Expired)));
        assert_eq!(keys().refresh_token_id(&expired).unwrap(), jti);
        let forged = sign(&claims, Algorithm::HS256, b"another-secret-another-secret-xx");
        assert!(keys().refresh_token_id(&forged).is_err());
        let access = keys()
            .issue_access(Uuid::new_v4(), "a", Role::Admin)
            .unwrap()
            .token;
        assert!(matches!(
            keys().refresh_token_id(&access),
            Err(AuthError::WrongTokenType)
        ));
    }

    #[test]
    fn empty_secret_is_refused() {
        assert!(JwtKeys::new(b"", "i", "a").is_err());
    }
}
