"""Authentication shared by every protocol: argon2id passwords, SASL, login limits."""
