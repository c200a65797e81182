//! Encryption at rest for connection passwords, connection extras and variables:
//! ChaCha20-Poly1305 with a random nonce per value, under a 32-byte key from configuration.
//! A stored value is `v1:` + base64(nonce ‖ ciphertext); a wrong key fails authentication
//! instead of returning garbage.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// Problems with the encryption key or an encrypted value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the encryption key must be 32 bytes, base64-encoded (e.g. the output of `openssl rand -base64 32`); {0}")]
    BadKey(String),
    #[error("a stored secret cannot be decrypted with this encryption key: was UPDRAFT__CORE__ENCRYPTION_KEY changed?")]
    WrongKey,
    #[error("a stored secret is malformed")]
    Malformed,
}

/// The key that encrypts secrets in the metadata database.
#[derive(Clone)]
pub struct EncryptionKey(ChaCha20Poly1305);

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey(***)")
    }
}

impl EncryptionKey {
    /// Reads a base64-encoded 32-byte key.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|e| KeyError::BadKey(format!("not base64: {e}")))?;
        let len = bytes.len();
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyError::BadKey(format!("got {len} bytes")))?;
        Ok(EncryptionKey(ChaCha20Poly1305::new(&Key::from(bytes))))
    }

    /// A new random key, base64-encoded (for `updraft standalone`'s data folder).
    pub fn generate() -> String {
        STANDARD.encode(ChaCha20Poly1305::generate_key(&mut OsRng))
    }

    /// Encrypts a value for storage (a fresh nonce each time), as base64 text.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption with a fresh nonce and an in-memory buffer cannot fail.
        let ciphertext = self.0.encrypt(&nonce, plaintext.as_bytes()).unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("v1:{}", STANDARD.encode(out))
    }

    /// Decrypts what [`EncryptionKey::encrypt`] stored; a wrong key or damaged text is an error.
    pub fn decrypt(&self, stored: &str) -> Result<String, KeyError> {
        let encoded = stored.strip_prefix("v1:").ok_or(KeyError::Malformed)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| KeyError::Malformed)?;
        if bytes.len() < 12 {
            return Err(KeyError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| KeyError::Malformed)?;
        let plaintext = self.0.decrypt(&Nonce::from(nonce), ciphertext).map_err(|_| KeyError::WrongKey)?;
        String::from_utf8(plaintext).map_err(|_| KeyError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let key = EncryptionKey::from_base64(&EncryptionKey::generate()).expect("key");
        let stored = key.encrypt("s3cret");
        assert!(stored.starts_with("v1:") && !stored.contains("s3cret"));
        assert_eq!(key.decrypt(&stored), Ok("s3cret".to_owned()));
        assert_ne!(key.encrypt("s3cret"), stored, "a fresh nonce per value");
        let other = EncryptionKey::from_base64(&EncryptionKey::generate()).expect("key");
        assert_eq!(other.decrypt(&stored), Err(KeyError::WrongKey));
        assert!(matches!(EncryptionKey::from_base64("c2hvcnQ="), Err(KeyError::BadKey(_))));
    }
}
