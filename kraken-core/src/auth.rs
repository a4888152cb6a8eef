//! Users, sessions, password hashing and per-project roles.
//!
//! Passwords are hashed with Argon2id. Hashes made by the original server
//! (passlib `$pbkdf2-sha256$rounds$salt$checksum`) are verified too, so users
//! imported from it can log in. Session tokens are 128 random bits as 32
//! lowercase hex characters, the format of the original's tokens.

use std::collections::HashMap;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;

use crate::error::{Error, Result};
use crate::model::Role;

pub mod cache;
pub mod limiter;

/// An Argon2id hash with the parameters of [`hash_password`], of a random
/// password nobody knows. A login for a user that does not exist is checked
/// against it, so it costs as much as one for a real user and its time says
/// nothing about which user names exist.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$RSxN1rBeQDL+ljjq7U9xog$lnHANpk3JI1ZivGvDoXsqmKQXB3GSUGEb6eem8waYWw";

/// Hash a password with Argon2id (PHC string).
pub fn hash_password(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("cannot hash password: {e}")))
}

/// Check a password against a stored hash (Argon2 PHC or passlib pbkdf2-sha256).
/// An empty or unknown hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    if hash.starts_with("$argon2") {
        Argon2::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok()
    } else if let Some(rest) = hash.strip_prefix("$pbkdf2-sha256$") {
        verify_passlib_pbkdf2_sha256(password, rest)
    } else {
        false
    }
}

/// passlib's format after the prefix: `<rounds>$<salt ab64>$<checksum ab64>`,
/// where "ab64" is base64 with `.` for `+` and no padding.
fn verify_passlib_pbkdf2_sha256(password: &str, rest: &str) -> bool {
    let mut parts = rest.split('$');
    let (Some(rounds), Some(salt), Some(checksum), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(rounds) = rounds.parse::<u32>() else {
        return false;
    };
    let decode =
        |s: &str| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s.replace('.', "+"));
    let (Ok(salt), Ok(expected)) = (decode(salt), decode(checksum)) else {
        return false;
    };
    if expected.is_empty() || rounds == 0 {
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &salt, rounds, &mut out);
    constant_time_eq(&out, &expected)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new random session token: 128 bits, 32 lowercase hex characters.
pub fn new_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who is calling: the user behind a session token, or the local operator of
/// an in-process [`crate::api::Kraken`].
#[derive(Debug, Clone)]
pub struct Principal {
    /// User id.
    pub user_id: i64,
    /// User name.
    pub name: String,
    /// May do everything.
    pub superadmin: bool,
    /// Disabled users may do nothing.
    pub enabled: bool,
    /// The session used, if any.
    pub session_id: Option<i64>,
    /// The token used, if any.
    pub token: Option<String>,
    /// Roles per project id.
    pub roles: HashMap<i64, Role>,
}

impl Principal {
    /// The in-process operator: acts as the `admin` user with every right.
    pub fn local_admin(user_id: i64) -> Principal {
        Principal {
            user_id,
            name: "admin".to_string(),
            superadmin: true,
            enabled: true,
            session_id: None,
            token: None,
            roles: HashMap::new(),
        }
    }

    fn check_enabled(&self) -> Result<()> {
        if self.enabled {
            Ok(())
        } else {
            Err(Error::forbidden(format!("User {} is disabled", self.name)))
        }
    }

    /// Allow only superadmins (global actions); `msg` says what was refused.
    pub fn require_superadmin(&self, msg: &str) -> Result<()> {
        self.check_enabled()?;
        if self.superadmin {
            Ok(())
        } else {
            Err(Error::forbidden(msg))
        }
    }

    /// Allow superadmins and users with at least `role` in the project.
    pub fn require(&self, project_id: i64, role: Role, msg: &str) -> Result<()> {
        self.check_enabled()?;
        if self.can(project_id, role) {
            Ok(())
        } else {
            Err(Error::forbidden(msg))
        }
    }

    /// Whether the principal has at least `role` in the project.
    pub fn can(&self, project_id: i64, role: Role) -> bool {
        self.superadmin || self.roles.get(&project_id).is_some_and(|r| *r >= role)
    }

    /// Require `view` on a project.
    pub fn require_view(&self, project_id: i64) -> Result<()> {
        self.require(
            project_id,
            Role::Viewer,
            "missing view permission on the project",
        )
    }
    /// Require `pwrusr` on a project.
    pub fn require_pwrusr(&self, project_id: i64) -> Result<()> {
        self.require(
            project_id,
            Role::Pwrusr,
            "missing pwrusr role on the project",
        )
    }
    /// Require `admin` on a project.
    pub fn require_admin(&self, project_id: i64) -> Result<()> {
        self.require(project_id, Role::Admin, "missing admin role on the project")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3creT", &h));
    }

    #[test]
    fn the_dummy_hash_has_the_parameters_of_new_hashes() {
        let h = hash_password("x").unwrap();
        let params = |h: &str| h.rsplitn(3, '$').nth(2).map(str::to_string);
        assert_eq!(params(DUMMY_HASH), params(&h));
        assert!(!verify_password("", DUMMY_HASH));
        assert!(!verify_password("admin", DUMMY_HASH));
    }

    #[test]
    fn passlib_pbkdf2_sha256_hashes_verify() {
        // Made by passlib 1.7 `pbkdf2_sha256.hash('admin')`, as the original stores.
        let h = "$pbkdf2-sha256$29000$UMqZkxKilHIupbRWaq0VYg$HV2hi85dZns6C2t01jx/otk7DYD9D5BOQpNTEkgdm4I";
        assert!(verify_password("admin", h));
        assert!(!verify_password("admin2", h));
        // Made with Python's hashlib and checked with passlib.
        let h2 = "$pbkdf2-sha256$29000$AQJrcmFrZW4tc2FsdC0xNmI$R7Q5rZ4h0Js5.Rh/UFb0lvo4XGnDDKzgsHFsWdALKgw";
        assert!(verify_password("demo", h2));
    }

    #[test]
    fn malformed_hashes_never_match() {
        for h in [
            "",
            "admin",
            "$pbkdf2-sha256$",
            "$pbkdf2-sha256$x$y$z",
            "$pbkdf2-sha256$0$$",
            "$argon2id$bad",
        ] {
            assert!(!verify_password("admin", h), "{h}");
        }
    }

    #[test]
    fn tokens_are_128_bit_hex_and_unique() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn roles_are_ordered() {
        let mut p = Principal::local_admin(1);
        p.superadmin = false;
        p.roles.insert(7, Role::Pwrusr);
        assert!(p.can(7, Role::Viewer));
        assert!(p.can(7, Role::Pwrusr));
        assert!(!p.can(7, Role::Admin));
        assert!(!p.can(8, Role::Viewer));
        assert!(p.require_admin(7).is_err());
        p.enabled = false;
        assert!(p.require_view(7).is_err());
    }
}
