//! The ECS container-credentials endpoint (`docs/ecosystem-contracts.md` §3).
//!
//! `GET /v1/credentials` with `Authorization: <token>` (the exact content of
//! `--auth-token-file`, which SDKs read through `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`) →
//! `200 {"AccessKeyId","SecretAccessKey","Token","Expiration"}`. A missing token is `401`, a
//! wrong one `403`, more than one `Authorization` header `400`; no valid credentials is `503`;
//! errors are `{"code":"…","message":"…"}`. The token is 32 random bytes in hex, written 0600
//! with no trailing newline (SDKs reject CR/LF); a valid token already in the file is reused, so
//! a restarted sidecar keeps the token that clients given it in
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN` hold.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

use http::StatusCode;
use http::request::Parts;
use subtle::ConstantTimeEq;

use super::{State, body};
use crate::fsutil;
use crate::server::Reply;

/// The authorization token's length: 32 bytes in hex.
const TOKEN_LEN: usize = 64;

/// Serves `GET /v1/credentials`.
pub(crate) fn handle(req: &Parts, s: &State) -> Reply {
    let Some(token) = &s.token else {
        return Reply::json(
            StatusCode::NOT_FOUND,
            error_body(
                "NotEnabled",
                "start serve with --auth-token-file to enable this endpoint",
            ),
        );
    };
    let mut presented = req.headers.get_all(http::header::AUTHORIZATION).iter();
    let (first, second) = (presented.next(), presented.next());
    let refuse = |status, code, message| {
        s.metrics.refused.fetch_add(1, Relaxed);
        Reply::json(status, error_body(code, message))
    };
    let Some(first) = first else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "missing Authorization header",
        );
    };
    if second.is_some() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "more than one Authorization header",
        );
    }
    if !bool::from(first.as_bytes().ct_eq(token.as_bytes())) {
        return refuse(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "wrong authorization token",
        );
    }
    match s.valid() {
        Some(c) => {
            s.metrics.served.fetch_add(1, Relaxed);
            Reply::json(StatusCode::OK, body::ecs(&c.creds))
        }
        None => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "CredentialsUnavailable",
            "no valid credentials: the refresh is failing, see the sidecar's log",
        ),
    }
}

/// An error body.
fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({"code": code, "message": message}).to_string()
}

/// How long an existing token file (a FIFO?) may take to read at start-up.
const TOKEN_FILE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The token in `path` if it holds a valid one (a restart), else a new one written there (an
/// existing file is read up to [`crate::limits::MAX_AUTH_TOKEN_FILE`] bytes). An error says
/// why the file is not used: it cannot be read (it is never replaced then: it may be another
/// user's), holds a token others may read that cannot be made private, or holds no valid
/// token and cannot be replaced.
pub(crate) fn load_or_create_token(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::PermissionsExt;
    let deadline = std::time::Instant::now() + TOKEN_FILE_WAIT;
    let because = |e: &dyn std::fmt::Display, kind: ErrorKind, why: String| {
        Error::new(kind, format!("{why}: {e}"))
    };
    let replace = |why: String| -> std::io::Result<String> {
        let t = new_token();
        fsutil::write_atomic(path, t.as_bytes()).map_err(|e| {
            because(
                &e,
                e.kind(),
                format!("{why}, and a new one cannot be written there (check that the folder exists or can be created and is writable)"),
            )
        })?;
        Ok(t)
    };
    let existing = match crate::bounded::read_file(
        path,
        crate::limits::MAX_AUTH_TOKEN_FILE,
        deadline,
    ) {
        Ok(b) => b,
        Err(crate::bounded::ReadError::Io(e)) if e.kind() == ErrorKind::NotFound => {
            return replace("there is no token yet".into());
        }
        Err(crate::bounded::ReadError::TooLarge { cap }) => {
            return replace(format!("it holds no valid token (over {cap} bytes)"));
        }
        Err(e) => {
            return Err(because(
                &e,
                ErrorKind::PermissionDenied,
                "the file exists but cannot be read, so its token cannot be reused, and it is not replaced (it may be another user's); remove it or make it readable by this user".into(),
            ));
        }
    };
    if existing.len() != TOKEN_LEN || !existing.iter().all(|b| b.is_ascii_hexdigit()) {
        return replace(format!(
            "it holds no valid token ({} bytes; expected {TOKEN_LEN} hex characters and nothing else)",
            existing.len()
        ));
    }
    // The token is a secret: make it 0600 if others may read it. A file that is already
    // private is left alone, so a read-only mount (a Kubernetes Secret with
    // `defaultMode: 0400` that the app also reads into AWS_CONTAINER_AUTHORIZATION_TOKEN)
    // works.
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
            because(
                &e,
                e.kind(),
                format!(
                    "it holds a token that group or others may read (mode {:o}) and it cannot be made private (its owner must chmod it 0600, or remove it)",
                    mode & 0o7777
                ),
            )
        })?;
    }
    Ok(String::from_utf8(existing).expect("hex is ASCII"))
}

/// A new random token (64 hex characters).
fn new_token() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("system RNG");
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::tests::{state, with_creds};

    fn get(headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::get("/v1/credentials");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn token_rules_401_403_400_503_and_200() {
        let s = state(Some("t0k"), false);
        assert_eq!(handle(&get(&[]), &s).status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            handle(&get(&[("authorization", "nope")]), &s).status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            handle(
                &get(&[("authorization", "t0k"), ("authorization", "x")]),
                &s
            )
            .status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            handle(
                &get(&[("authorization", "x"), ("authorization", "t0k")]),
                &s
            )
            .status,
            StatusCode::BAD_REQUEST
        );
        let ok = get(&[("authorization", "t0k")]);
        assert_eq!(handle(&ok, &s).status, StatusCode::SERVICE_UNAVAILABLE);
        with_creds(&s, 600);
        let r = handle(&ok, &s);
        assert_eq!(r.status, StatusCode::OK);
        let text = r.body_text();
        assert!(text.contains(r#""AccessKeyId":"ASIA1""#), "{text}");
        with_creds(&s, -1);
        assert_eq!(handle(&ok, &s).status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(s.metrics.refused.load(Relaxed), 6);
        assert_eq!(s.metrics.served.load(Relaxed), 1);
        let off = state(None, false);
        assert_eq!(handle(&ok, &off).status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_token_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("iamra-ecs-token-{}", std::process::id()));
        let path = dir.join("token");
        let first = load_or_create_token(&path).unwrap();
        assert_eq!(first.len(), TOKEN_LEN);
        assert_eq!(load_or_create_token(&path).unwrap(), first);
        std::fs::write(&path, "short\n").unwrap();
        let third = load_or_create_token(&path).unwrap();
        assert_ne!(third, first);
        assert_eq!(crate::bounded::test_read_string(&path), third);
        assert_ne!(new_token(), new_token());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_token_file_that_is_not_used_says_why() {
        let dir = std::env::temp_dir().join(format!("iamra-ecs-why-{}", std::process::id()));
        let token = dir.join("token");
        std::fs::create_dir_all(&token).unwrap();
        // Something at the path that cannot be read as a token is reported, not replaced.
        let e = load_or_create_token(&token).unwrap_err().to_string();
        assert!(
            e.contains("exists but cannot be read") && e.contains("not replaced"),
            "{e}"
        );
        assert!(token.is_dir());
        // Invalid content is replaced where the folder allows it.
        std::fs::remove_dir(&token).unwrap();
        std::fs::write(&token, "short").unwrap();
        assert_eq!(load_or_create_token(&token).unwrap().len(), TOKEN_LEN);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_private_token_file_is_not_touched_and_a_readable_one_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("iamra-ecs-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        let token = "ab".repeat(32);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for (given, kept) in [
            (0o400, 0o400),
            (0o600, 0o600),
            (0o644, 0o600),
            (0o440, 0o600),
        ] {
            std::fs::write(&path, &token).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(given)).unwrap();
            let before = std::fs::metadata(&path).unwrap().modified().unwrap();
            assert_eq!(load_or_create_token(&path).unwrap(), token);
            assert_eq!(mode(&path), kept, "{given:o}");
            assert_eq!(
                std::fs::metadata(&path).unwrap().modified().unwrap(),
                before
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
