-- DKIM signing keys of local domains (RFC 6376; RFC 8463 for ed25519), made by
-- `postar dkim keygen`; removed with their domain.
--   algorithm: 'rsa' or 'ed25519', the k= tag of the published key record.
--   private_key: PKCS#1 PEM (rsa) or the base64 seed (ed25519). Secret: this file is mode 0600.
--   public_key: base64, the p= tag.
CREATE TABLE dkim_keys (
    id           INTEGER PRIMARY KEY,
    domain_id    INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    selector     TEXT NOT NULL COLLATE NOCASE,
    algorithm    TEXT NOT NULL,
    private_key  TEXT NOT NULL,
    public_key   TEXT NOT NULL,
    created      REAL NOT NULL,
    UNIQUE (domain_id, selector)
)
