-- Sign-on users. Passwords are kept as the lower-case hex SHA-256 of the password, never in
-- plain text. The ADMIN user is not here: its password is a setting.
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    password_sha256 TEXT NOT NULL CHECK (length(password_sha256) = 64)
);
